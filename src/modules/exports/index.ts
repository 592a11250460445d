export { csvField, csvLine } from './exports.csv.ts';
export { exportRoutes, prefersHtml } from './exports.routes.ts';
export {
  type AccessExport,
  accessExport,
  consentValue,
  EXPORT_PAGE_SIZE,
  type ExportFormat,
  type ExportKind,
  type ExportRequest,
  exportFormats,
  exportKinds,
  type OpenedExport,
  openExport,
  profileColumns,
} from './exports.service.ts';

export { parseMapOption } from './imports.columns.ts';
export { importRoutes } from './imports.routes.ts';
export {
  getImport,
  type ImportOptions,
  type ImportSummary,
  importContactsFile,
  type OnDuplicate,
  type ProgressListener,
  rejectsCsv,
} from './imports.service.ts';

export { purposeRoutes } from './purposes.routes.ts';
export {
  ensureBuiltinPurposes,
  findPurposeVersions,
  getPurpose,
  type LegalBasis,
  listPurposes,
  localized,
  type Purpose,
  type PurposeVersion,
  peekPurposes,
  requirePurpose,
  wordingText,
} from './purposes.service.ts';

export { suppressionRoutes } from './suppressions.routes.ts';
export {
  addressHash,
  addSuppressions,
  liftSuppressions,
  type SuppressionReason,
  suppressionReasons,
} from './suppressions.service.ts';

export { collectionRoutes, evidenceOf, messageRoutes } from './collection.routes.ts';
export {
  type Evidence,
  linkFor,
  preferencesLink,
  registerCollection,
  unsubscribeLink,
} from './collection.service.ts';

export { findContactRow, findContactRows, touchInteractionRows, updateContactRow } from './contacts.repository.ts';
export { ContactIdParams, contactRoutes } from './contacts.routes.ts';
export {
  type Contact,
  contactForEmail,
  effectiveLifecycle,
  getContactRow,
  toContact,
} from './contacts.service.ts';
export type { ContactsTable } from './contacts.table.ts';

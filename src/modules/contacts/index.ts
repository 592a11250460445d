export {
  findContactRow,
  findContactRowByAddress,
  findContactRows,
  insertContactRows,
  touchInteractionRows,
  updateContactRow,
} from './contacts.repository.ts';
export { ContactIdParams, contactRoutes } from './contacts.routes.ts';
export { ContactSchema } from './contacts.schema.ts';
export {
  type Contact,
  contactForEmail,
  effectiveLifecycle,
  getContactRow,
  newContactRow,
  storeContactPatch,
  storeNewContact,
  toContact,
} from './contacts.service.ts';
export { CONTACT_COLUMNS, type ContactsTable } from './contacts.table.ts';

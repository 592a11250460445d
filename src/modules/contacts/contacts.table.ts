export interface ContactsTable {
  id: string;
  email: string | null;
  email_hash: string | null;
  phone: string | null;
  phone_hash: string | null;
  first_name: string | null;
  last_name: string | null;
  locale: string | null;
  kind: string;
  lifecycle: string;
  last_purchase_at: string | null;
  source: string | null;
  attributes: string; // JSON object of declared fields
  created_at: string;
  updated_at: string;
  last_interaction_at: string | null;
  erased_at: string | null;
}

export interface FieldsTable {
  key: string;
  type: string;
  purpose_key: string;
  retention_days: number;
  created_at: string;
}

/** The columns of contacts, in table order: what the multi-row writers and the benches bind. */
export const CONTACT_COLUMNS = [
  'id',
  'email',
  'email_hash',
  'phone',
  'phone_hash',
  'first_name',
  'last_name',
  'locale',
  'kind',
  'lifecycle',
  'last_purchase_at',
  'source',
  'attributes',
  'created_at',
  'updated_at',
  'last_interaction_at',
  'erased_at',
] as const satisfies ReadonlyArray<keyof ContactsTable>;

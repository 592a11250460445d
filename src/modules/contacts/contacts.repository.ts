import type { Executor } from '../../database.ts';
import type { ContactsTable, FieldsTable } from './contacts.table.ts';

export const findContactRow = (db: Executor, id: string) => db.selectFrom('contacts').selectAll().where('id', '=', id).executeTakeFirst();

export const findContactRows = (db: Executor, ids: string[]) =>
  ids.length === 0 ? Promise.resolve([]) : db.selectFrom('contacts').selectAll().where('id', 'in', ids).execute();

export const findContactRowByAddress = (db: Executor, by: { email?: string; phone?: string }) => {
  let query = db.selectFrom('contacts').selectAll();
  if (by.email !== undefined && by.phone !== undefined) {
    query = query.where((eb) => eb.or([eb('email', '=', by.email as string), eb('phone', '=', by.phone as string)]));
  } else if (by.email !== undefined) query = query.where('email', '=', by.email);
  else if (by.phone !== undefined) query = query.where('phone', '=', by.phone);
  else return Promise.resolve(undefined);
  return query.executeTakeFirst();
};

export const findContactRowsByEmail = (db: Executor, emails: string[]) =>
  emails.length === 0 ? Promise.resolve([]) : db.selectFrom('contacts').selectAll().where('email', 'in', emails).execute();

export const listContactRows = (db: Executor, after: string | undefined, limit: number) => {
  let query = db.selectFrom('contacts').selectAll().orderBy('id').limit(limit);
  if (after) query = query.where('id', '>', after);
  return query.execute();
};

export const insertContactRows = async (db: Executor, rows: ContactsTable[]) => {
  if (rows.length === 0) return;
  await db.insertInto('contacts').values(rows).execute();
  // Every contact starts an empty proof chain: the head row is what concurrent writers lock.
  await db
    .insertInto('chain_heads')
    .values(rows.map((r) => ({ contact_id: r.id, seq: 0, hash: '0'.repeat(64) })))
    .execute();
};

export const updateContactRow = (db: Executor, id: string, patch: Partial<ContactsTable>) =>
  db.updateTable('contacts').set(patch).where('id', '=', id).execute();

/** Records that the person acted (RULES 16): only ever moves forward. */
export const touchInteractionRows = (db: Executor, ids: string[], at: string) =>
  ids.length === 0
    ? Promise.resolve()
    : db
        .updateTable('contacts')
        .set({ last_interaction_at: at })
        .where('id', 'in', ids)
        .where((eb) => eb.or([eb('last_interaction_at', 'is', null), eb('last_interaction_at', '<', at)]))
        .execute();

export const listFieldsQuery = (db: Executor) => db.selectFrom('fields').selectAll().orderBy('key').compile();

export const insertFieldRow = (db: Executor, row: FieldsTable) =>
  db
    .insertInto('fields')
    .values(row)
    .onConflict((oc) => oc.column('key').doNothing())
    .executeTakeFirst();

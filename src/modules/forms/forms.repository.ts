import type { Database, Executor } from '../../database.ts';

export type FormRow = Database['forms'];
export type FormRenderRow = Database['form_renders'];

export const findFormRow = (db: Executor, key: string) => db.selectFrom('forms').selectAll().where('key', '=', key).executeTakeFirst();

export const listFormRows = (db: Executor) => db.selectFrom('forms').selectAll().orderBy('key').execute();

/** Inserts a new form; 0 rows when the key is taken. */
export const insertFormRow = async (db: Executor, row: FormRow): Promise<number> => {
  const result = await db
    .insertInto('forms')
    .values(row)
    .onConflict((oc) => oc.column('key').doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0);
};

/** Replaces the definition if the version is still the one read; 0 rows when another writer won. */
export const updateFormRow = async (
  db: Executor,
  key: string,
  readVersion: number,
  patch: Pick<FormRow, 'version' | 'definition' | 'updated_at'>,
): Promise<number> => {
  const result = await db.updateTable('forms').set(patch).where('key', '=', key).where('version', '=', readVersion).executeTakeFirst();
  return Number(result.numUpdatedRows);
};

/** The exact markup a form showed, stored once per hash. */
export const insertRenderRow = (db: Executor, row: FormRenderRow) =>
  db
    .insertInto('form_renders')
    .values(row)
    .onConflict((oc) => oc.column('hash').doNothing())
    .execute();

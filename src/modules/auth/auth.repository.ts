import type { Executor } from '../../database.ts';
import type { ApiKeysTable } from './auth.table.ts';

export const insertKeyRow = (db: Executor, row: ApiKeysTable) =>
  db
    .insertInto('api_keys')
    .values(row)
    .onConflict((oc) => oc.column('name').doNothing())
    .executeTakeFirst();

export const listKeyRows = (db: Executor) => db.selectFrom('api_keys').selectAll().orderBy('created_at').execute();

export const findKeyRowByName = (db: Executor, name: string) =>
  db.selectFrom('api_keys').selectAll().where('name', '=', name).executeTakeFirst();

export const revokeKeyRow = (db: Executor, name: string, at: string) =>
  db.updateTable('api_keys').set({ revoked_at: at }).where('name', '=', name).where('revoked_at', 'is', null).execute();

export const touchKeyRow = (db: Executor, id: string, at: string) =>
  db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', id).execute();

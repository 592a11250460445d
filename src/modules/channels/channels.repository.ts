import type { Executor } from '../../database.ts';
import type { ChannelsTable } from './channels.table.ts';

export const listChannelRows = (db: Executor) => db.selectFrom('channels').selectAll().orderBy('key').execute();

export const findChannelRow = (db: Executor, key: string) =>
  db.selectFrom('channels').selectAll().where('key', '=', key).executeTakeFirst();

export const insertChannelRow = (db: Executor, row: ChannelsTable) =>
  db.insertInto('channels').values(row).onConflict((oc) => oc.column('key').doNothing()).executeTakeFirst();

export const updateChannelRow = (db: Executor, key: string, patch: Partial<ChannelsTable>) =>
  db.updateTable('channels').set(patch).where('key', '=', key).execute();

import type { Executor } from '../../database.ts';
import type { ChannelsTable } from './channels.table.ts';

/** A query, not rows: configuration is read through the hot-path reader (never waits on a writer). */
export const listChannelsQuery = (db: Executor) => db.selectFrom('channels').selectAll().orderBy('key').compile();

export const findChannelRow = (db: Executor, key: string) =>
  db.selectFrom('channels').selectAll().where('key', '=', key).executeTakeFirst();

export const insertChannelRow = (db: Executor, row: ChannelsTable) =>
  db
    .insertInto('channels')
    .values(row)
    .onConflict((oc) => oc.column('key').doNothing())
    .executeTakeFirst();

export const updateChannelRow = (db: Executor, key: string, patch: Partial<ChannelsTable>) =>
  db.updateTable('channels').set(patch).where('key', '=', key).execute();

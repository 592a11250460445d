import type { Executor } from '../../database.ts';
import type { SuppressionsTable } from './suppressions.table.ts';

export const insertSuppressionRows = (db: Executor, rows: SuppressionsTable[]) =>
  rows.length === 0
    ? Promise.resolve()
    : db
        .insertInto('suppressions')
        .values(rows)
        .onConflict((oc) => oc.columns(['channel_key', 'address_hash', 'reason']).doNothing())
        .execute();

export const findSuppressionRows = (db: Executor, channelKey: string, hash: string) =>
  db
    .selectFrom('suppressions')
    .selectAll()
    .where('channel_key', '=', channelKey)
    .where('address_hash', '=', hash)
    .orderBy('created_at')
    .execute();

export const deleteSuppressionRows = (db: Executor, channelKey: string, hash: string, reasons: string[]) =>
  db
    .deleteFrom('suppressions')
    .where('channel_key', '=', channelKey)
    .where('address_hash', '=', hash)
    .where('reason', 'in', reasons)
    .execute();

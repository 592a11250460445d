import type { Database, Executor } from '../../database.ts';
import type { Filter } from './segments.filter.ts';
import { type SegmentScope, segmentWhere } from './segments.sql.ts';

export type SegmentRow = Database['segments'];

export const findSegmentRow = (db: Executor, key: string) =>
  db.selectFrom('segments').selectAll().where('key', '=', key).executeTakeFirst();

export const listSegmentRows = (db: Executor) => db.selectFrom('segments').selectAll().orderBy('key').execute();

/** Inserts a new segment; 0 rows when the key is taken. */
export const insertSegmentRow = async (db: Executor, row: SegmentRow): Promise<number> => {
  const result = await db
    .insertInto('segments')
    .values(row)
    .onConflict((oc) => oc.column('key').doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0);
};

/** 0 rows when there is no such segment. */
export const updateSegmentRow = async (
  db: Executor,
  key: string,
  patch: Pick<SegmentRow, 'name' | 'filter' | 'updated_at'>,
): Promise<number> => {
  const result = await db.updateTable('segments').set(patch).where('key', '=', key).executeTakeFirst();
  return Number(result.numUpdatedRows);
};

export const countMembers = async (db: Executor, filter: Filter, scope: SegmentScope): Promise<number> => {
  const row = await db
    .selectFrom('contacts as c')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .where(segmentWhere(filter, 'c', scope))
    .executeTakeFirstOrThrow();
  return Number(row.n);
};

/** One page of members in id order, after the id `after` (exclusive). */
export const listMemberRows = (db: Executor, filter: Filter, scope: SegmentScope, after: string | undefined, limit: number) => {
  let query = db
    .selectFrom('contacts as c')
    .selectAll('c')
    .where(segmentWhere(filter, 'c', scope))
    .orderBy('c.id')
    .limit(limit);
  if (after !== undefined) query = query.where('c.id', '>', after);
  return query.execute();
};

/** Declared attribute fields among `keys`, with their types. */
export const findFieldTypes = (db: Executor, keys: string[]) =>
  keys.length === 0 ? Promise.resolve([]) : db.selectFrom('fields').select(['key', 'type']).where('key', 'in', keys).execute();

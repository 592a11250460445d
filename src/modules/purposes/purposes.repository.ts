import type { Executor } from '../../database.ts';
import type { PurposesTable, PurposeVersionsTable } from './purposes.table.ts';

/** A query, not rows: configuration is read through the hot-path reader (never waits on a writer). */
export const listPurposesQuery = (db: Executor) =>
  db
    .selectFrom('purposes')
    .innerJoin('purpose_versions', (j) =>
      j.onRef('purpose_versions.purpose_key', '=', 'purposes.key').onRef('purpose_versions.version', '=', 'purposes.version'),
    )
    .selectAll('purposes')
    .select(['purpose_versions.title', 'purpose_versions.description', 'purpose_versions.wording_hash'])
    .orderBy('purposes.key')
    .compile();

export type PurposeRow = ReturnType<typeof listPurposesQuery> extends import('kysely').CompiledQuery<infer R> ? R : never;

export const findPurposeRow = (db: Executor, key: string) =>
  db.selectFrom('purposes').selectAll().where('key', '=', key).executeTakeFirst();

export const insertPurposeRow = (db: Executor, row: PurposesTable) =>
  db
    .insertInto('purposes')
    .values(row)
    .onConflict((oc) => oc.column('key').doNothing())
    .executeTakeFirst();

export const updatePurposeRow = (db: Executor, key: string, patch: Partial<PurposesTable>) =>
  db.updateTable('purposes').set(patch).where('key', '=', key).execute();

export const insertPurposeVersionRow = (db: Executor, row: PurposeVersionsTable) => db.insertInto('purpose_versions').values(row).execute();

export const findPurposeVersionRows = (db: Executor, pairs: Array<{ purpose: string; version: number }>) =>
  pairs.length === 0
    ? Promise.resolve([])
    : db
        .selectFrom('purpose_versions')
        .selectAll()
        .where((eb) => eb.or(pairs.map((p) => eb.and([eb('purpose_key', '=', p.purpose), eb('version', '=', p.version)]))))
        .orderBy('purpose_key')
        .orderBy('version')
        .execute();

export const listPurposeVersionRows = (db: Executor, key: string) =>
  db.selectFrom('purpose_versions').selectAll().where('purpose_key', '=', key).orderBy('version').execute();

/** Whether any person withdrew, refused or objected to this purpose: the basis is then locked (RULES 6). */
export const hasWithdrawals = async (db: Executor, key: string) =>
  (await db
    .selectFrom('consent_states')
    .select('contact_id')
    .where('purpose_key', '=', key)
    .where('status', 'in', ['withdrawn', 'refused', 'objected'])
    .limit(1)
    .executeTakeFirst()) !== undefined;

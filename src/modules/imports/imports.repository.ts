import { type SqlBool, sql } from 'kysely';
import type { Dialect, Executor } from '../../database.ts';
import type { AppContext } from '../../platform/context.ts';
import { insertRows } from '../consents/consents.bulk.ts';
import { GENESIS_HASH } from '../consents/consents.ledger.ts';
import { CONTACT_COLUMNS, type ContactsTable } from '../contacts/index.ts';
import type { ImportRejectsTable, ImportsTable } from './imports.table.ts';

/** Values per `in (…)` list: a batch of 1,000 rows looks its addresses up in one or two queries. */
const CHUNK = 1_000;

async function inChunks<T>(items: T[], work: (chunk: T[]) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += CHUNK) await work(items.slice(i, i + CHUNK));
}

/**
 * A lookup list padded (with its own last value, which changes nothing) to a few fixed lengths:
 * each `in (…)` text is then prepared once and reused from SQLite's statement cache, instead of
 * one prepared statement per odd length.
 */
function padded<T>(values: T[]): T[] {
  const length = [10, 100, CHUNK].find((n) => n >= values.length) ?? values.length;
  const out = values.slice();
  while (out.length < length) out.push(values[values.length - 1] as T);
  return out;
}

export const insertImportRow = (db: Executor, row: ImportsTable) => db.insertInto('imports').values(row).execute();

export const findImportRow = (db: Executor, id: string) => db.selectFrom('imports').selectAll().where('id', '=', id).executeTakeFirst();

/** The first completed, real (not dry-run) import of a file: the one a re-run would repeat. */
export const findCompletedImportOfFile = (db: Executor, fileHash: string) =>
  db
    .selectFrom('imports')
    .select(['id', 'completed_at'])
    .where('file_hash', '=', fileHash)
    .where('status', '=', 'completed')
    .where('dry_run', '=', 0)
    .orderBy('created_at')
    .orderBy('id')
    .limit(1)
    .executeTakeFirst();

export const updateImportRow = (db: Executor, id: string, patch: Partial<ImportsTable>) =>
  db.updateTable('imports').set(patch).where('id', '=', id).execute();

/** Imports still marked running (by this process, another one, or one that is gone). */
export const listRunningImports = (db: Executor) =>
  db.selectFrom('imports').selectAll().where('status', '=', 'running').orderBy('created_at').orderBy('id').execute();

/**
 * Takes a stale running import over (or closes it) if nobody else did meanwhile: the update holds
 * only while its owner and heartbeat are still the ones read. True when this caller got it.
 */
export async function claimImport(
  db: Executor,
  seen: Pick<ImportsTable, 'id' | 'owner' | 'heartbeat_at'>,
  patch: Partial<ImportsTable>,
): Promise<boolean> {
  let query = db.updateTable('imports').set(patch).where('id', '=', seen.id).where('status', '=', 'running');
  query = seen.owner === null ? query.where('owner', 'is', null) : query.where('owner', '=', seen.owner);
  query = seen.heartbeat_at === null ? query.where('heartbeat_at', 'is', null) : query.where('heartbeat_at', '=', seen.heartbeat_at);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export const insertRejectRows = (db: Executor, rows: ImportRejectsTable[]) =>
  inChunks(rows, (chunk) => db.insertInto('import_rejects').values(chunk).execute());

export const pageRejectRows = (db: Executor, importId: string, afterSeq: number, limit: number) =>
  db
    .selectFrom('import_rejects')
    .select(['seq', 'line', 'column', 'reason'])
    .where('import_id', '=', importId)
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)
    .execute();

/** Declared attribute fields (key and type): which columns may fill attributes. */
export const listFieldTypes = (db: Executor) => db.selectFrom('fields').select(['key', 'type']).orderBy('key').execute();

/**
 * `column` is one of `values`: on PostgreSQL `= any($1)` with one array (a short text to parse and
 * plan), on SQLite an `in (…)` list padded to a fixed length.
 */
const oneOf = (dialect: Dialect, column: string, values: string[]) =>
  dialect === 'postgres'
    ? sql<SqlBool>`${sql.ref(column)} = any(${values}::text[])`
    : sql<SqlBool>`${sql.ref(column)} in (${sql.join(padded(values))})`;

/** Contacts already holding one of these normalised emails or phones (erased ones hold none). */
export async function findContactsByAddresses(
  db: Executor,
  dialect: Dialect,
  emails: string[],
  phones: string[],
): Promise<ContactsTable[]> {
  const out: ContactsTable[] = [];
  await inChunks(emails, async (chunk) =>
    out.push(
      ...(await db
        .selectFrom('contacts')
        .selectAll()
        .where(oneOf(dialect, 'email', chunk))
        .execute()),
    ),
  );
  await inChunks(phones, async (chunk) =>
    out.push(
      ...(await db
        .selectFrom('contacts')
        .selectAll()
        .where(oneOf(dialect, 'phone', chunk))
        .execute()),
    ),
  );
  return out;
}

/** Current consent states of these contacts: what an import may not override. */
export async function findStatesOfContacts(db: Executor, contactIds: string[]) {
  const out: Array<{ contact_id: string; purpose_key: string; channel_key: string; status: string; since: string }> = [];
  await inChunks(contactIds, async (chunk) =>
    out.push(
      ...(await db
        .selectFrom('consent_states')
        .select(['contact_id', 'purpose_key', 'channel_key', 'status', 'since'])
        .where('contact_id', 'in', padded(chunk))
        .execute()),
    ),
  );
  return out;
}

/** Which of these address hashes are on the suppression list of these channels (the key's order: channel first). */
export async function findSuppressedHashes(db: Executor, dialect: Dialect, channels: string[], hashes: string[]) {
  const out: Array<{ channel_key: string; address_hash: string }> = [];
  if (channels.length === 0) return out;
  await inChunks(hashes, async (chunk) =>
    out.push(
      ...(await db
        .selectFrom('suppressions')
        .select(['channel_key', 'address_hash'])
        .where('channel_key', 'in', channels)
        .where(oneOf(dialect, 'address_hash', chunk))
        .execute()),
    ),
  );
  return out;
}

/** A batch's new contacts, with prepared multi-row INSERTs (their chain heads come with their first events). */
export const insertNewContacts = (ctx: AppContext, db: Executor, rows: ContactsTable[]) =>
  insertRows(db, ctx.db.dialect, 'contacts', CONTACT_COLUMNS, rows);

/** The empty proof chain of new contacts that got no event (what insertContactRows gives every contact). */
export const insertGenesisHeads = (ctx: AppContext, db: Executor, contactIds: string[]) =>
  insertRows(
    db,
    ctx.db.dialect,
    'chain_heads',
    ['contact_id', 'seq', 'hash'] as const,
    contactIds.map((id) => ({ contact_id: id, seq: 0, hash: GENESIS_HASH })),
  );

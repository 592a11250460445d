import { CompiledQuery } from 'kysely';
import type { Dialect, Executor } from '../../database.ts';
import type { ContactsTable } from '../contacts/index.ts';
import {
  type ChainHeadsTable,
  type ConsentEventsTable,
  type ConsentStatesTable,
  EVENT_COLUMNS,
  HEAD_COLUMNS,
  STATE_COLUMNS,
} from './consents.table.ts';

const CHUNK = 400;

async function inChunks<T>(rows: T[], write: (chunk: T[]) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < rows.length; i += CHUNK) await write(rows.slice(i, i + CHUNK));
}

export const findEventsByIdempotencyKeys = (db: Executor, keys: string[]) =>
  keys.length === 0 ? Promise.resolve([]) : db.selectFrom('consent_events').selectAll().where('idempotency_key', 'in', keys).execute();

/**
 * Locks the chain heads of these contacts (PostgreSQL), in a fixed order to avoid deadlocks. On
 * SQLite the transaction already holds the write lock (BEGIN IMMEDIATE): the heads are read with
 * one statement prepared once, whatever the number of contacts (their ids as one JSON array).
 */
export async function lockChainHeads(db: Executor, contactIds: string[], dialect: Dialect): Promise<ChainHeadsTable[]> {
  if (contactIds.length === 0) return [];
  if (dialect === 'sqlite') return byIds<ChainHeadsTable>(db, SQLITE_HEADS_OF, contactIds);
  return db.selectFrom('chain_heads').selectAll().where('contact_id', 'in', contactIds).orderBy('contact_id').forUpdate().execute();
}

export const findStatesOfContacts = (db: Executor, contactIds: string[]) =>
  contactIds.length === 0
    ? Promise.resolve([])
    : db.selectFrom('consent_states').selectAll().where('contact_id', 'in', contactIds).execute();

// The append path on SQLite: statement texts that depend on nothing but the table (ids travel as
// one JSON array, rows in statements of a few fixed sizes), so each is prepared once and kept in
// the writer's statement cache, and no query is built per batch. PostgreSQL keeps the builder.
const SQLITE_HEADS_OF = 'select * from chain_heads where contact_id in (select value from json_each(?)) order by contact_id';
// The states of exactly these (contact, purpose, channel) triples, one primary-key lookup each.
const SQLITE_STATES_FOR =
  'select s.* from json_each(?) j join consent_states s on s.contact_id = j.value ->> 0 and s.purpose_key = j.value ->> 1 and s.channel_key = j.value ->> 2';
const SQLITE_CONTACTS_OF =
  'select id, locale, email_hash, phone_hash, erased_at from contacts where id in (select value from json_each(?))';

async function byIds<R>(db: Executor, sql: string, ids: unknown[]): Promise<R[]> {
  return (await db.executeQuery<R>(CompiledQuery.raw(sql, [JSON.stringify(ids)]))).rows as R[];
}

/**
 * The states of these (contact, purpose, channel) triples, those that exist. On PostgreSQL every
 * state of their contacts comes back (a superset: one indexed range per contact).
 */
export function findStatesFor(db: Executor, dialect: Dialect, keys: Array<[string, string, string]>): Promise<ConsentStatesTable[]> {
  if (keys.length === 0) return Promise.resolve([]);
  if (dialect === 'sqlite') return byIds<ConsentStatesTable>(db, SQLITE_STATES_FOR, keys);
  return findStatesOfContacts(db, [...new Set(keys.map(([contactId]) => contactId))]);
}

/** What recording consent needs of a contact: whether it exists and is erased, its locale and address digests. */
export type LedgerContact = Pick<ContactsTable, 'id' | 'locale' | 'email_hash' | 'phone_hash' | 'erased_at'>;

export function findLedgerContacts(db: Executor, dialect: Dialect, ids: string[]): Promise<LedgerContact[]> {
  if (ids.length === 0) return Promise.resolve([]);
  if (dialect === 'sqlite') return byIds<LedgerContact>(db, SQLITE_CONTACTS_OF, ids);
  return db.selectFrom('contacts').select(['id', 'locale', 'email_hash', 'phone_hash', 'erased_at']).where('id', 'in', ids).execute();
}

/** Rows per statement on SQLite: a few fixed sizes, so a few statement texts, each prepared once. */
const SQLITE_STATEMENT_ROWS = [100, 10, 1];

function sqliteInsert<T>(table: string, columns: ReadonlyArray<keyof T & string>, conflict: string) {
  const texts = new Map<number, string>();
  const tuple = `(${columns.map(() => '?').join(',')})`;
  const textOf = (rows: number) => {
    let text = texts.get(rows);
    if (!text) {
      text = `insert into ${table} (${columns.map((c) => `"${c}"`).join(',')}) values ${Array(rows).fill(tuple).join(',')}${conflict}`;
      texts.set(rows, text);
    }
    return text;
  };
  return async (db: Executor, rows: T[]): Promise<void> => {
    let at = 0;
    for (const size of SQLITE_STATEMENT_ROWS) {
      while (rows.length - at >= size) {
        const params: unknown[] = new Array(size * columns.length);
        let p = 0;
        for (let r = at; r < at + size; r += 1) {
          const row = rows[r] as T;
          for (const c of columns) params[p++] = row[c] ?? null;
        }
        await db.executeQuery(CompiledQuery.raw(textOf(size), params));
        at += size;
      }
    }
  };
}

const sqliteInsertEvents = sqliteInsert<ConsentEventsTable>('consent_events', EVENT_COLUMNS, '');
const sqliteUpsertStates = sqliteInsert<ConsentStatesTable>(
  'consent_states',
  STATE_COLUMNS,
  ` on conflict (contact_id, purpose_key, channel_key) do update set ${STATE_COLUMNS.slice(3)
    .map((c) => `"${c}" = excluded."${c}"`)
    .join(', ')}`,
);
const sqliteUpsertHeads = sqliteInsert<ChainHeadsTable>(
  'chain_heads',
  HEAD_COLUMNS,
  ' on conflict (contact_id) do update set "seq" = excluded."seq", "hash" = excluded."hash"',
);

const byStateKey = (a: ConsentStatesTable, b: ConsentStatesTable) =>
  a.contact_id < b.contact_id
    ? -1
    : a.contact_id > b.contact_id
      ? 1
      : a.purpose_key < b.purpose_key
        ? -1
        : a.purpose_key > b.purpose_key
          ? 1
          : a.channel_key < b.channel_key
            ? -1
            : a.channel_key > b.channel_key
              ? 1
              : 0;

/**
 * Writes one batch of the ledger: its events (in the order given: their ids rise), then the states
 * and heads they moved, each in key order (neighbouring keys share B-tree pages). Same rows on
 * both stores; on SQLite through the fixed statements above.
 */
export async function writeLedgerRows(
  db: Executor,
  dialect: Dialect,
  rows: { events: ConsentEventsTable[]; states: ConsentStatesTable[]; heads: ChainHeadsTable[] },
): Promise<void> {
  const states = [...rows.states].sort(byStateKey);
  const heads = [...rows.heads].sort((a, b) => (a.contact_id < b.contact_id ? -1 : a.contact_id > b.contact_id ? 1 : 0));
  if (dialect === 'sqlite') {
    await sqliteInsertEvents(db, rows.events);
    await sqliteUpsertStates(db, states);
    await sqliteUpsertHeads(db, heads);
    return;
  }
  await insertEventRows(db, rows.events);
  await upsertStateRows(db, states);
  await upsertHeadRows(db, heads);
}

export const insertEventRows = (db: Executor, rows: ConsentEventsTable[]) =>
  inChunks(rows, (chunk) => db.insertInto('consent_events').values(chunk).execute());

export const upsertStateRows = (db: Executor, rows: ConsentStatesTable[]) =>
  inChunks(rows, (chunk) =>
    db
      .insertInto('consent_states')
      .values(chunk)
      .onConflict((oc) =>
        oc.columns(['contact_id', 'purpose_key', 'channel_key']).doUpdateSet((eb) => ({
          status: eb.ref('excluded.status'),
          since: eb.ref('excluded.since'),
          expires_at: eb.ref('excluded.expires_at'),
          confirmed: eb.ref('excluded.confirmed'),
          purpose_version: eb.ref('excluded.purpose_version'),
          last_event_id: eb.ref('excluded.last_event_id'),
          proof_grade: eb.ref('excluded.proof_grade'),
          updated_at: eb.ref('excluded.updated_at'),
        })),
      )
      .execute(),
  );

export const upsertHeadRows = (db: Executor, rows: ChainHeadsTable[]) =>
  inChunks(rows, (chunk) =>
    db
      .insertInto('chain_heads')
      .values(chunk)
      .onConflict((oc) => oc.column('contact_id').doUpdateSet((eb) => ({ seq: eb.ref('excluded.seq'), hash: eb.ref('excluded.hash') })))
      .execute(),
  );

export const listEventsOfContact = (db: Executor, contactId: string) =>
  db.selectFrom('consent_events').selectAll().where('contact_id', '=', contactId).orderBy('seq').execute();

export const findHead = (db: Executor, contactId: string) =>
  db.selectFrom('chain_heads').selectAll().where('contact_id', '=', contactId).executeTakeFirst();

export const listStatesOfContact = (db: Executor, contactId: string) =>
  db.selectFrom('consent_states').selectAll().where('contact_id', '=', contactId).execute();

export const updateEventEvidence = (db: Executor, id: string, evidence: string) =>
  db.updateTable('consent_events').set({ evidence }).where('id', '=', id).execute();

/** Heads after `after` (by contact id), for walking every chain in pages. */
export const pageHeads = (db: Executor, after: string, limit: number) =>
  db.selectFrom('chain_heads').selectAll().where('contact_id', '>', after).orderBy('contact_id').limit(limit).execute();

export const eventsOfContacts = (db: Executor, contactIds: string[]) =>
  db.selectFrom('consent_events').selectAll().where('contact_id', 'in', contactIds).orderBy('contact_id').orderBy('seq').execute();

export const countEvents = async (db: Executor) =>
  Number(
    (
      await db
        .selectFrom('consent_events')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

export const findOrphanEvent = (db: Executor) =>
  db
    .selectFrom('consent_events as e')
    .leftJoin('chain_heads as h', 'h.contact_id', 'e.contact_id')
    .select(['e.id', 'e.contact_id', 'e.seq'])
    .where('h.contact_id', 'is', null)
    .limit(1)
    .executeTakeFirst();

import type { Executor } from '../../database.ts';
import type { ChainHeadsTable, ConsentEventsTable, ConsentStatesTable } from './consents.table.ts';

const CHUNK = 400;

async function inChunks<T>(rows: T[], write: (chunk: T[]) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < rows.length; i += CHUNK) await write(rows.slice(i, i + CHUNK));
}

export const findEventsByIdempotencyKeys = (db: Executor, keys: string[]) =>
  keys.length === 0 ? Promise.resolve([]) : db.selectFrom('consent_events').selectAll().where('idempotency_key', 'in', keys).execute();

/** Locks the chain heads of these contacts (PostgreSQL), in a fixed order to avoid deadlocks. */
export function lockChainHeads(db: Executor, contactIds: string[], dialect: 'sqlite' | 'postgres') {
  let query = db.selectFrom('chain_heads').selectAll().where('contact_id', 'in', contactIds).orderBy('contact_id');
  if (dialect === 'postgres') query = query.forUpdate();
  return query.execute();
}

export const findStatesOfContacts = (db: Executor, contactIds: string[]) =>
  contactIds.length === 0
    ? Promise.resolve([])
    : db.selectFrom('consent_states').selectAll().where('contact_id', 'in', contactIds).execute();

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

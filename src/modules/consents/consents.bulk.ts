// Appending many consent events at once, for a caller that already holds the contacts and the
// resolved purposes and channels (the CSV import): the same events, chains, states and hooks as
// recordConsents, without its per-input lookups, and written with few prepared multi-row statements.
import { CompiledQuery } from 'kysely';
import type { Dialect, Executor } from '../../database.ts';
import { addressKindFor } from '../../platform/addresses.ts';
import { iso } from '../../platform/clock.ts';
import type { AppContext } from '../../platform/context.ts';
import { sha256Hex } from '../../platform/crypto.ts';
import { DomainError } from '../../platform/errors.ts';
import type { Channel } from '../channels/index.ts';
import { touchInteractionRows } from '../contacts/index.ts';
import { type Purpose, wordingText } from '../purposes/index.ts';
import { liftSuppressions } from '../suppressions/index.ts';
import { type Evidence, eventHash, evidenceHash, GENESIS_HASH } from './consents.ledger.ts';
import { findStatesOfContacts, lockChainHeads } from './consents.repository.ts';
import {
  type Action,
  expiresAfter,
  foldEvent,
  isExplicitPersonGrant,
  personSources,
  type State,
  type Status,
  statusAfter,
} from './consents.state.ts';
import {
  type ChainHeadsTable,
  type ConsentEventsTable,
  type ConsentStatesTable,
  EVENT_COLUMNS,
  HEAD_COLUMNS,
  STATE_COLUMNS,
} from './consents.table.ts';

/** One event to append: its contact as the caller holds it (in this transaction), resolved purpose and channel. */
export interface BulkConsent {
  contact: {
    id: string;
    locale: string | null;
    email_hash: string | null;
    phone_hash: string | null;
    erased_at: string | null;
    /** Written in this same transaction: it has no chain and no states yet (nothing to read). */
    isNew: boolean;
  };
  purpose: Purpose;
  channel: Channel;
  action: Exclude<Action, 'expired' | 'requested'>;
  source: { type: string; ref: string | null };
  evidence: Record<string, unknown> & { text?: string; locale?: string };
  /** Already an ISO instant, not in the future (the caller checked it). */
  occurredAt: string;
  /** Set on the state this event leads (proof grade of an imported consent), else null. */
  stateProofGrade?: string | null;
}

/** Rows per statement on SQLite, under its limit on bound values. */
const rowsPerStatement = (columns: number, _dialect: Dialect) => Math.min(250, Math.floor(30_000 / columns));

/**
 * The statement sizes a batch is cut into. On SQLite every statement text is prepared once and
 * kept in the writer's statement cache: the rest of a batch goes in statements of 50, 10 and 1 rows
 * (a few texts, all reused) rather than one statement of each odd size, each prepared and cached.
 * PostgreSQL prepares nothing across calls: one statement takes the rest.
 */
function cutSizes(rows: number, full: number, dialect: Dialect): number[] {
  const sizes: number[] = [];
  let left = rows;
  for (const size of dialect === 'sqlite' ? [full, 50, 10, 1] : [full]) {
    while (left >= size) {
      sizes.push(size);
      left -= size;
    }
  }
  if (left > 0) sizes.push(left);
  return sizes;
}

/** Column types of a table on PostgreSQL (what its `unnest` arrays are cast to), read once. */
const pgTypes = new Map<string, Promise<Map<string, string>>>();

function columnTypes(db: Executor, table: string): Promise<Map<string, string>> {
  let types = pgTypes.get(table);
  if (!types) {
    types = db
      .executeQuery<{ column_name: string; data_type: string }>(
        CompiledQuery.raw(
          'select column_name, data_type from information_schema.columns where table_schema = current_schema() and table_name = $1',
          [table],
        ),
      )
      .then((r) => new Map(r.rows.map((c) => [c.column_name, c.data_type])));
    types.catch(() => pgTypes.delete(table));
    pgTypes.set(table, types);
  }
  return types;
}

/**
 * Inserts rows in few statements whose text depends only on the table, the columns and the row
 * count (no query builder per batch). On PostgreSQL: one `insert … select * from unnest(…)` with
 * one array a column (a short text to parse and plan, whatever the row count). `conflict` is
 * appended as is (an upsert clause).
 */
export async function insertRows<T>(
  db: Executor,
  dialect: Dialect,
  table: string,
  columns: ReadonlyArray<keyof T & string>,
  rows: T[],
  conflict = '',
): Promise<void> {
  if (rows.length === 0) return;
  const names = columns.map((c) => `"${c}"`).join(',');
  const tail = conflict ? ` ${conflict}` : '';
  if (dialect === 'postgres') {
    const types = await columnTypes(db, table);
    const arrays = columns.map((c) => rows.map((row) => row[c] ?? null));
    const casts = columns.map((c, i) => `$${i + 1}::${types.get(c) ?? 'text'}[]`).join(',');
    await db.executeQuery(CompiledQuery.raw(`insert into ${table} (${names}) select * from unnest(${casts})${tail}`, arrays));
    return;
  }
  let at = 0;
  for (const size of cutSizes(rows.length, rowsPerStatement(columns.length, dialect), dialect)) {
    const params: unknown[] = [];
    const tuples: string[] = [];
    for (const row of rows.slice(at, at + size)) {
      for (const c of columns) params.push(row[c] ?? null);
      tuples.push(`(${columns.map(() => '?').join(',')})`);
    }
    at += size;
    await db.executeQuery(CompiledQuery.raw(`insert into ${table} (${names}) values ${tuples.join(',')}${tail}`, params));
  }
}

const STATE_UPSERT = `on conflict (contact_id, purpose_key, channel_key) do update set ${STATE_COLUMNS.slice(3)
  .map((c) => `"${c}" = excluded."${c}"`)
  .join(', ')}`;
const HEAD_UPSERT = 'on conflict (contact_id) do update set "seq" = excluded."seq", "hash" = excluded."hash"';

const stateKey = (contactId: string, purpose: string, channel: string) => `${contactId}\u0000${purpose}\u0000${channel}`;

const toState = (row: ConsentStatesTable): State => ({
  status: row.status as Status,
  since: row.since,
  expiresAt: row.expires_at,
  confirmed: row.confirmed === 1,
  purposeVersion: row.purpose_version,
  lastEventId: row.last_event_id,
});

/**
 * Appends the events in order inside the caller's transaction, exactly as recordConsents would
 * (same chain arithmetic, state projection, interactions, suppression lifts and consent hooks;
 * work for after the commit goes to `afterCommit`). Returns the id of each input's event.
 */
export async function appendConsentsBulk(
  ctx: AppContext,
  trx: Executor,
  inputs: BulkConsent[],
  afterCommit: Array<() => void>,
): Promise<string[]> {
  if (inputs.length === 0) return [];
  const recordedAt = iso(ctx.clock.now());
  const dialect = ctx.db.dialect;

  const contactIds = [...new Set(inputs.map((i) => i.contact.id))].sort();
  const known = [...new Set(inputs.flatMap((i) => (i.contact.isNew ? [] : [i.contact.id])))].sort();
  const heads = new Map<string, { contact_id: string; seq: number; hash: string }>();
  const states = new Map<string, State>();
  if (known.length > 0) {
    for (let i = 0; i < known.length; i += 400) {
      const chunk = known.slice(i, i + 400);
      for (const h of await lockChainHeads(trx, chunk, dialect)) heads.set(h.contact_id, h);
      for (const s of await findStatesOfContacts(trx, chunk)) states.set(stateKey(s.contact_id, s.purpose_key, s.channel_key), toState(s));
    }
  }

  const eventRows: ConsentEventsTable[] = [];
  const changedStates = new Map<string, ConsentStatesTable>();
  const interactions = new Map<string, string>();
  const lifts: Array<{ channel: string; hash: string }> = [];
  const ids: string[] = [];
  const textHashes = new Map<string, string>();

  for (const input of inputs) {
    const { contact, purpose, channel, action } = input;
    if (contact.erased_at) throw new DomainError('contact_erased', 'This contact was erased: record consent for a new contact instead');
    if (!purpose.channels.includes(channel.key)) {
      throw new DomainError('channel_not_in_purpose', `Purpose "${purpose.key}" does not use channel "${channel.key}"`);
    }
    const key = stateKey(contact.id, purpose.key, channel.key);
    const prev = states.get(key);
    const sourceType = input.source.type;
    const occurredAt = input.occurredAt;
    if (action === 'confirmed' && prev?.status !== 'pending') {
      throw new DomainError('nothing_to_confirm', 'There is no pending consent for this purpose and channel to confirm');
    }
    const rules = { doubleOptIn: purpose.doubleOptIn && channel.kind === 'email', expiryAfterDays: purpose.expiry.afterDays };
    const late = prev !== undefined && occurredAt < prev.since;
    const status: Status = late ? prev.status : statusAfter(prev, action, rules, sourceType);
    const expiresAt = late ? null : expiresAfter(status, action, occurredAt, rules);

    const locale = typeof input.evidence.locale === 'string' ? input.evidence.locale : contact.locale;
    const text = input.evidence.text ?? wordingText(purpose, locale);
    let textHash = textHashes.get(text);
    if (textHash === undefined) {
      textHash = sha256Hex(text);
      if (text.length < 2_000) textHashes.set(text, textHash);
    }
    const evidence: Evidence = { ...input.evidence, text, textHash, wordingHash: purpose.wordingHash };
    if (locale) evidence.locale = locale;

    const head = heads.get(contact.id) ?? { contact_id: contact.id, seq: 0, hash: GENESIS_HASH };
    const row: ConsentEventsTable = {
      id: ctx.newId(),
      contact_id: contact.id,
      seq: head.seq + 1,
      purpose_key: purpose.key,
      purpose_version: purpose.version,
      channel_key: channel.key,
      action,
      status,
      legal_basis: purpose.legalBasis,
      source_type: sourceType,
      source_ref: input.source.ref,
      evidence: JSON.stringify(evidence),
      evidence_hash: evidenceHash(ctx.secret, evidence),
      expires_at: expiresAt,
      occurred_at: occurredAt,
      recorded_at: recordedAt,
      idempotency_key: null,
      request_hash: null,
      prev_hash: head.hash,
      hash: '',
    };
    row.hash = eventHash(row);
    heads.set(contact.id, { contact_id: contact.id, seq: row.seq, hash: row.hash });
    eventRows.push(row);
    ids.push(row.id);

    if (!late) {
      const next = foldEvent(prev, {
        id: row.id,
        action: row.action,
        status,
        sourceType,
        occurredAt,
        expiresAt,
        purposeVersion: row.purpose_version,
      });
      states.set(key, next);
      changedStates.set(key, {
        contact_id: contact.id,
        purpose_key: purpose.key,
        channel_key: channel.key,
        status: next.status,
        since: next.since,
        expires_at: next.expiresAt,
        confirmed: next.confirmed ? 1 : 0,
        purpose_version: next.purposeVersion,
        last_event_id: next.lastEventId,
        // recordConsents writes null, then the import sets the grade on the states its events lead.
        proof_grade: input.stateProofGrade ?? null,
        updated_at: recordedAt,
      });
    }
    if (personSources.has(sourceType)) {
      const last = interactions.get(contact.id);
      if (!last || last < occurredAt) interactions.set(contact.id, occurredAt);
    }
    if (isExplicitPersonGrant(action, sourceType)) {
      const kind = addressKindFor(channel.kind);
      const hash = kind === 'email' ? contact.email_hash : kind === 'phone' ? contact.phone_hash : null;
      if (hash) lifts.push({ channel: channel.key, hash });
    }
  }

  await insertRows(trx, dialect, 'consent_events', EVENT_COLUMNS, eventRows);
  const isNew = new Set(inputs.flatMap((i) => (i.contact.isNew ? [i.contact.id] : [])));
  // Rows of contacts written in this transaction are plain inserts (nothing to conflict with).
  const write = async <T extends { contact_id: string }>(
    table: string,
    columns: ReadonlyArray<keyof T & string>,
    rows: T[],
    upsert: string,
  ) => {
    await insertRows(
      trx,
      dialect,
      table,
      columns,
      rows.filter((r) => isNew.has(r.contact_id)),
    );
    await insertRows(
      trx,
      dialect,
      table,
      columns,
      rows.filter((r) => !isNew.has(r.contact_id)),
      upsert,
    );
  };
  await write('consent_states', STATE_COLUMNS, [...changedStates.values()], STATE_UPSERT);
  await write(
    'chain_heads',
    HEAD_COLUMNS,
    contactIds.map((id) => heads.get(id) as ChainHeadsTable),
    HEAD_UPSERT,
  );
  const byTime = new Map<string, string[]>();
  for (const [id, at] of interactions) byTime.set(at, [...(byTime.get(at) ?? []), id]);
  for (const [at, idsAt] of byTime) await touchInteractionRows(trx, idsAt, at);
  for (const lift of lifts) await liftSuppressions(trx, lift.channel, lift.hash);

  const summary = eventRows.map((e) => ({
    id: e.id,
    contactId: e.contact_id,
    purpose: e.purpose_key,
    channel: e.channel_key,
    action: e.action,
    status: e.status,
    sourceType: e.source_type,
  }));
  for (const hook of ctx.consentHooks) {
    const then = await hook(trx, summary);
    if (then) afterCommit.push(then);
  }
  return ids;
}

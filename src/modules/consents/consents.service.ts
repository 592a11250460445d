// Recording consent: every change is one ledger event, chained to the contact's previous event,
// with the state projection updated in the same transaction.
import type { Executor } from '../../database.ts';
import { addressKindFor } from '../../platform/addresses.ts';
import { iso, parseInstant } from '../../platform/clock.ts';
import type { AppContext, RequestContext } from '../../platform/context.ts';
import { canonicalJson, sha256Hex } from '../../platform/crypto.ts';
import { DomainError, type FieldError } from '../../platform/errors.ts';
import { type Channel, listChannels } from '../channels/index.ts';
import { contactForEmail, getContactRow, touchInteractionRows } from '../contacts/index.ts';
import { findPurposeVersions, listPurposes, type Purpose, type PurposeVersion, wordingText } from '../purposes/index.ts';
import { liftSuppressions } from '../suppressions/index.ts';
import { type ChainBreak, type Evidence, eventHash, evidenceHash, verifyChain } from './consents.ledger.ts';
import {
  findEventsByIdempotencyKeys,
  findHead,
  findLedgerContacts,
  findStatesFor,
  type LedgerContact,
  listEventsOfContact,
  listStatesOfContact,
  lockChainHeads,
  writeLedgerRows,
} from './consents.repository.ts';
import {
  type Action,
  actionsByVerb,
  expiresAfter,
  foldEvent,
  isExplicitPersonGrant,
  personSources,
  type State,
  type Status,
  statusAfter,
  type Verb,
} from './consents.state.ts';
import type { ConsentEventsTable, ConsentStatesTable } from './consents.table.ts';

export interface ConsentInput {
  contactId?: string;
  email?: string;
  purpose: string;
  channel: string;
  action: Verb | Action;
  source?: { type: string; ref?: string | null };
  evidence?: { ip?: string; userAgent?: string; url?: string; text?: string; method?: string; locale?: string } & Record<string, unknown>;
  occurredAt?: string;
  idempotencyKey?: string;
}

export interface ConsentEvent {
  id: string;
  contactId: string;
  seq: number;
  purpose: string;
  purposeVersion: number;
  channel: string;
  action: string;
  status: string;
  legalBasis: string;
  source: { type: string; ref: string | null };
  evidence: Evidence;
  expiresAt: string | null;
  occurredAt: string;
  recordedAt: string;
  idempotencyKey: string | null;
  prevHash: string;
  hash: string;
}

export interface ConsentState {
  purpose: string;
  channel: string;
  status: Status;
  since: string | null;
  expiresAt: string | null;
  confirmed: boolean;
  purposeVersion: number | null;
  lastEventId: string | null;
  proofGrade: string | null;
}

export interface RecordOptions {
  /** Prefix of error paths, e.g. "/items/3" in a batch. */
  paths?: string[];
  /** Internal callers (expiry job) may record actions the API does not take. */
  internal?: boolean;
  /** More writes that must commit or roll back with the events (a spent link token, a suppression). */
  inTransaction?: (trx: Executor) => Promise<void>;
  /**
   * Write only what changes a state (a withdrawal of what is already withdrawn writes nothing),
   * judged under the chain lock, so two identical requests at once record one event. The answer
   * then lists only the events written.
   */
  onlyChanges?: boolean;
  /**
   * Record inside a transaction the caller already opened (e.g. with the contact it just wrote).
   * Work to do once it commits (sending the double opt-in mail) is added to `afterCommit`.
   */
  within?: { trx: Executor; afterCommit: Array<() => void> };
}

const FUTURE_SKEW_MS = 5 * 60_000;

export const toEvent = (row: ConsentEventsTable): ConsentEvent => eventOf(row, JSON.parse(row.evidence));

/** The API's event from a stored row and its evidence, parsed. */
function eventOf(row: ConsentEventsTable, evidence: Evidence): ConsentEvent {
  return {
    id: row.id,
    contactId: row.contact_id,
    seq: row.seq,
    purpose: row.purpose_key,
    purposeVersion: row.purpose_version,
    channel: row.channel_key,
    action: row.action,
    status: row.status,
    legalBasis: row.legal_basis,
    source: { type: row.source_type, ref: row.source_ref },
    evidence,
    expiresAt: row.expires_at,
    occurredAt: row.occurred_at,
    recordedAt: row.recorded_at,
    idempotencyKey: row.idempotency_key,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

const toState = (row: ConsentStatesTable): State => ({
  status: row.status as Status,
  since: row.since,
  expiresAt: row.expires_at,
  confirmed: row.confirmed === 1,
  purposeVersion: row.purpose_version,
  lastEventId: row.last_event_id,
});

/** Whether JSON.parse(JSON.stringify(o)) gives back o's keys and values: strings, booleans, null, finite numbers. */
function scalarsOnly(o: Record<string, unknown>): boolean {
  for (const key in o) {
    const v = o[key];
    if (v !== null && typeof v !== 'string' && typeof v !== 'boolean' && !(typeof v === 'number' && Number.isFinite(v))) return false;
  }
  return true;
}

const stateKey = (contactId: string, purpose: string, channel: string) => `${contactId}\u0000${purpose}\u0000${channel}`;

interface Prepared {
  input: ConsentInput;
  path: string;
  action: Action;
  purpose: Purpose;
  channel: Channel;
  occurredAt: string | undefined;
  requestHash: string | null;
}

/** Purposes and channels by key, read once for a whole request (both are cached). */
interface Catalogue {
  purposes: Map<string, Purpose>;
  channels: Map<string, Channel>;
}

async function catalogue(ctx: AppContext): Promise<Catalogue> {
  return {
    purposes: new Map((await listPurposes(ctx)).map((p) => [p.key, p])),
    channels: new Map((await listChannels(ctx)).map((c) => [c.key, c])),
  };
}

const knownActions: ReadonlySet<string> = new Set<string>(Object.values(actionsByVerb));
const internalActions: ReadonlySet<string> = new Set<string>([...knownActions, 'expired', 'requested']);

function prepare(ctx: AppContext, known: Catalogue, input: ConsentInput, path: string, internal: boolean): Prepared {
  const errors: FieldError[] = [];
  const action: Action | undefined = input.action in actionsByVerb ? actionsByVerb[input.action as Verb] : (input.action as Action);
  const allowed = internal ? internalActions : knownActions;
  if (!action || !allowed.has(action)) errors.push({ path: `${path}/action`, message: `unknown action "${input.action}"` });
  if (input.source?.type === 'system' && !internal) {
    errors.push({ path: `${path}/source/type`, message: '"system" is reserved to Assent itself' });
  }
  if (!input.contactId && !input.email) errors.push({ path: `${path}/contactId`, message: 'contactId or email is required' });
  let occurredAt: string | undefined;
  if (input.occurredAt !== undefined) {
    const at = parseInstant(input.occurredAt);
    const now = ctx.clock.now();
    if (!at) errors.push({ path: `${path}/occurredAt`, message: 'must be an ISO-8601 date-time' });
    else if (at.getTime() > now.getTime() + FUTURE_SKEW_MS) {
      throw new DomainError('occurred_in_future', 'occurredAt is in the future', [
        { path: `${path}/occurredAt`, message: 'is in the future' },
      ]);
    } else {
      // A time within the tolerated skew ahead of our clock is taken as now: kept ahead, it would
      // make the person's next action (a withdrawal a minute later) look late, and so ignored.
      occurredAt = iso(at.getTime() > now.getTime() ? now : at);
    }
  }
  if (errors.length > 0) throw new DomainError('validation_failed', errors.map((e) => `${e.path} ${e.message}`).join('; '), errors);

  const purpose = known.purposes.get(input.purpose);
  if (!purpose) {
    throw new DomainError('unknown_purpose', `There is no purpose "${input.purpose}"`, [
      { path: `${path}/purpose`, message: 'unknown purpose' },
    ]);
  }
  const channel = known.channels.get(input.channel);
  if (!channel) {
    throw new DomainError('unknown_channel', `There is no channel "${input.channel}"`, [
      { path: `${path}/channel`, message: 'unknown channel' },
    ]);
  }
  if (!internal && !purpose.channels.includes(channel.key)) {
    throw new DomainError('channel_not_in_purpose', `Purpose "${purpose.key}" does not use channel "${channel.key}"`, [
      { path: `${path}/channel`, message: `not one of ${purpose.channels.join(', ')}` },
    ]);
  }
  let requestHash: string | null = null;
  if (input.idempotencyKey) {
    const { idempotencyKey: _key, ...body } = input;
    requestHash = sha256Hex(canonicalJson({ ...body, action }));
  }
  return { input, path, action: action as Action, purpose, channel, occurredAt, requestHash };
}

/**
 * Records consent events, in order, in one transaction. Same idempotency key and same request:
 * the stored event comes back (`created: false`); same key, other request: idempotency_conflict.
 */
export async function recordConsents(
  ctx: AppContext,
  req: RequestContext,
  inputs: ConsentInput[],
  options: RecordOptions = {},
): Promise<Array<{ event: ConsentEvent; created: boolean }>> {
  const known = await catalogue(ctx);
  const prepared: Prepared[] = [];
  for (const [i, input] of inputs.entries()) {
    prepared.push(prepare(ctx, known, input, options.paths?.[i] ?? '', options.internal ?? false));
  }
  const keys = prepared.flatMap((p) => (p.input.idempotencyKey ? [p.input.idempotencyKey] : []));
  if (new Set(keys).size !== keys.length) {
    throw new DomainError('idempotency_conflict', 'The same idempotency key appears twice in one request');
  }

  const afterCommit: Array<() => void> = [];
  const work = async (trx: Executor) => {
    afterCommit.length = 0;
    const results: Array<{ event: ConsentEvent; created: boolean } | undefined> = new Array(prepared.length);
    const existing = new Map((await findEventsByIdempotencyKeys(trx, keys)).map((r) => [r.idempotency_key, r]));
    const todo: Array<{ index: number; p: Prepared }> = [];
    for (const [index, p] of prepared.entries()) {
      const found = p.input.idempotencyKey ? existing.get(p.input.idempotencyKey) : undefined;
      if (!found) {
        todo.push({ index, p });
        continue;
      }
      if (found.request_hash !== p.requestHash) {
        throw new DomainError('idempotency_conflict', 'This idempotency key was used with another request', [
          { path: `${p.path}/idempotencyKey`, message: 'already used with another body' },
        ]);
      }
      results[index] = { event: toEvent(found), created: false };
    }
    if (todo.length > 0) {
      await appendEvents(ctx, trx, req, todo, results, options.onlyChanges ?? false);
      const created = todo.flatMap(({ index }) => (results[index] ? [results[index].event] : []));
      const summary = created.map((e) => ({
        id: e.id,
        contactId: e.contactId,
        purpose: e.purpose,
        channel: e.channel,
        action: e.action,
        status: e.status,
        sourceType: e.source.type,
      }));
      for (const hook of ctx.consentHooks) {
        const then = await hook(trx, summary);
        if (then) afterCommit.push(then);
      }
    }
    await options.inTransaction?.(trx);
    return (options.onlyChanges ? results.filter(Boolean) : results) as Array<{ event: ConsentEvent; created: boolean }>;
  };

  // Inside the caller's transaction: its commit is theirs, and so is what runs after it.
  if (options.within) {
    const results = await work(options.within.trx);
    options.within.afterCommit.push(...afterCommit);
    return results;
  }

  const run = () => ctx.db.kysely.transaction().execute(work);
  try {
    const results = await run();
    for (const then of afterCommit) then();
    return results;
  } catch (error) {
    // Two requests raced: on one idempotency key, or creating the same contact by email. The
    // loser runs again and now reads the winner's rows.
    const e = error as { code?: string; message?: string };
    if (e.code === '23505' || /UNIQUE constraint failed/.test(e.message ?? '')) {
      const results = await run();
      for (const then of afterCommit) then();
      return results;
    }
    throw error;
  }
}

async function appendEvents(
  ctx: AppContext,
  trx: Executor,
  req: RequestContext,
  todo: Array<{ index: number; p: Prepared }>,
  results: Array<{ event: ConsentEvent; created: boolean } | undefined>,
  onlyChanges: boolean,
): Promise<void> {
  const now = ctx.clock.now();
  const recordedAt = iso(now);

  // Resolve contacts: by id (must exist and not be erased), or by email (created when new).
  const dialect = ctx.db.dialect;
  const ids = [...new Set(todo.flatMap(({ p }) => (p.input.contactId ? [p.input.contactId] : [])))].sort();
  const contacts = new Map<string, LedgerContact>((await findLedgerContacts(trx, dialect, ids)).map((r) => [r.id, r]));
  const contactOf: LedgerContact[] = [];
  for (const { p } of todo) {
    let contact: LedgerContact | undefined;
    if (p.input.contactId) {
      contact = contacts.get(p.input.contactId);
      if (!contact)
        throw new DomainError('contact_not_found', `There is no contact "${p.input.contactId}"`, [
          { path: `${p.path}/contactId`, message: 'unknown contact' },
        ]);
    } else {
      contact = await contactForEmail(ctx, trx, p.input.email as string);
      contacts.set(contact.id, contact);
    }
    if (contact.erased_at) throw new DomainError('contact_erased', 'This contact was erased: record consent for a new contact instead');
    contactOf.push(contact);
  }

  const contactIds = [...new Set(contactOf.map((c) => c.id))].sort();
  const heads = new Map((await lockChainHeads(trx, contactIds, dialect)).map((h) => [h.contact_id, h]));
  // Only the states this batch moves (one lookup each), not every state of its contacts.
  const wanted = new Map<string, [string, string, string]>();
  for (const [n, { p }] of todo.entries()) {
    const id = (contactOf[n] as LedgerContact).id;
    wanted.set(stateKey(id, p.purpose.key, p.channel.key), [id, p.purpose.key, p.channel.key]);
  }
  const states = new Map<string, State>(
    (await findStatesFor(trx, dialect, [...wanted.values()])).map((s) => [
      stateKey(s.contact_id, s.purpose_key, s.channel_key),
      toState(s),
    ]),
  );

  const eventRows: ConsentEventsTable[] = [];
  const changedStates = new Map<string, ConsentStatesTable>();
  const interactions = new Map<string, string>();
  const lifts: Array<{ channel: string; hash: string }> = [];

  for (const [n, { index, p }] of todo.entries()) {
    const contact = contactOf[n] as LedgerContact;
    const key = stateKey(contact.id, p.purpose.key, p.channel.key);
    const prev = states.get(key);
    const sourceType = p.input.source?.type ?? 'api';
    const sourceRef = p.input.source?.ref ?? (p.input.source ? null : (req.actor.name ?? null));
    const occurredAt = p.occurredAt ?? recordedAt;

    if (p.action === 'confirmed' && prev?.status !== 'pending') {
      throw new DomainError('nothing_to_confirm', 'There is no pending consent for this purpose and channel to confirm', [
        { path: `${p.path}/action`, message: `the state is ${prev?.status ?? 'none'}` },
      ]);
    }

    const rules = {
      doubleOptIn: p.purpose.doubleOptIn && p.channel.kind === 'email',
      expiryAfterDays: p.purpose.expiry.afterDays,
    };
    const late = prev !== undefined && occurredAt < prev.since;
    const status: Status = late ? prev.status : statusAfter(prev, p.action, rules, sourceType);
    if (onlyChanges && prev && (late || status === prev.status)) continue;
    const expiresAt = late ? null : expiresAfter(status, p.action, occurredAt, rules);

    const locale = typeof p.input.evidence?.locale === 'string' ? p.input.evidence.locale : contact.locale;
    const text = p.input.evidence?.text ?? wordingText(p.purpose, locale);
    const evidence: Evidence = {
      ...(p.input.evidence ?? {}),
      text,
      textHash: sha256Hex(text),
      wordingHash: p.purpose.wordingHash,
    };
    if (locale) evidence.locale = locale;

    const head = heads.get(contact.id) ?? { contact_id: contact.id, seq: 0, hash: '0'.repeat(64) };
    const row: ConsentEventsTable = {
      id: ctx.newId(),
      contact_id: contact.id,
      seq: head.seq + 1,
      purpose_key: p.purpose.key,
      purpose_version: p.purpose.version,
      channel_key: p.channel.key,
      action: p.action,
      status,
      legal_basis: p.purpose.legalBasis,
      source_type: sourceType,
      source_ref: sourceRef,
      evidence: JSON.stringify(evidence),
      evidence_hash: evidenceHash(ctx.secret, evidence),
      expires_at: expiresAt,
      occurred_at: occurredAt,
      recorded_at: recordedAt,
      idempotency_key: p.input.idempotencyKey ?? null,
      request_hash: p.requestHash,
      prev_hash: head.hash,
      hash: '',
    };
    row.hash = eventHash(row);
    heads.set(contact.id, { contact_id: contact.id, seq: row.seq, hash: row.hash });
    eventRows.push(row);

    const next = late
      ? (prev as State)
      : foldEvent(prev, {
          id: row.id,
          action: row.action,
          status,
          sourceType,
          occurredAt,
          expiresAt,
          purposeVersion: row.purpose_version,
        });
    if (!late) {
      states.set(key, next);
      changedStates.set(key, {
        contact_id: contact.id,
        purpose_key: p.purpose.key,
        channel_key: p.channel.key,
        status: next.status,
        since: next.since,
        expires_at: next.expiresAt,
        confirmed: next.confirmed ? 1 : 0,
        purpose_version: next.purposeVersion,
        last_event_id: next.lastEventId,
        proof_grade: null,
        updated_at: recordedAt,
      });
    }

    if (personSources.has(sourceType)) {
      const last = interactions.get(contact.id);
      if (!last || last < occurredAt) interactions.set(contact.id, occurredAt);
    }
    if (isExplicitPersonGrant(p.action, sourceType)) {
      const kind = addressKindFor(p.channel.kind);
      const hash = kind === 'email' ? contact.email_hash : kind === 'phone' ? contact.phone_hash : null;
      if (hash) lifts.push({ channel: p.channel.key, hash });
    }
    // Evidence of JSON scalars only is its own parse (same keys, order and values): no need to run it.
    results[index] = { event: scalarsOnly(evidence) ? eventOf(row, evidence) : toEvent(row), created: true };
  }

  await writeLedgerRows(trx, dialect, {
    events: eventRows,
    states: [...changedStates.values()],
    // Only the heads that moved (with onlyChanges a contact may get no event).
    heads: [...new Set(eventRows.map((e) => e.contact_id))].map((id) => heads.get(id) as { contact_id: string; seq: number; hash: string }),
  });
  const byTime = new Map<string, string[]>();
  for (const [id, at] of interactions) byTime.set(at, [...(byTime.get(at) ?? []), id]);
  for (const [at, idsAt] of byTime) await touchInteractionRows(trx, idsAt, at);
  for (const lift of lifts) await liftSuppressions(trx, lift.channel, lift.hash);
}

export async function recordConsent(
  ctx: AppContext,
  req: RequestContext,
  input: ConsentInput,
): Promise<{ event: ConsentEvent; created: boolean }> {
  const [result] = await recordConsents(ctx, req, [input]);
  return result as { event: ConsentEvent; created: boolean };
}

/** Current state for every purpose and channel (status "none" where nothing was recorded). */
export async function consentStates(ctx: AppContext, contactId: string): Promise<ConsentState[]> {
  await getContactRow(ctx, contactId);
  const rows = new Map((await listStatesOfContact(ctx.db.kysely, contactId)).map((s) => [`${s.purpose_key}\u0000${s.channel_key}`, s]));
  const channels = new Set((await listChannels(ctx)).map((c) => c.key));
  const out: ConsentState[] = [];
  for (const purpose of await listPurposes(ctx)) {
    for (const channel of purpose.channels) {
      if (!channels.has(channel)) continue;
      const s = rows.get(`${purpose.key}\u0000${channel}`);
      rows.delete(`${purpose.key}\u0000${channel}`);
      out.push(
        s
          ? stateOut(s)
          : {
              purpose: purpose.key,
              channel,
              status: 'none',
              since: null,
              expiresAt: null,
              confirmed: false,
              purposeVersion: null,
              lastEventId: null,
              proofGrade: null,
            },
      );
    }
  }
  // States of channels a purpose no longer uses stay visible: they are still proof.
  for (const s of rows.values()) out.push(stateOut(s));
  return out;
}

const stateOut = (s: ConsentStatesTable): ConsentState => ({
  purpose: s.purpose_key,
  channel: s.channel_key,
  status: s.status as Status,
  since: s.since,
  expiresAt: s.expires_at,
  confirmed: s.confirmed === 1,
  purposeVersion: s.purpose_version,
  lastEventId: s.last_event_id,
  proofGrade: s.proof_grade,
});

export async function consentHistory(ctx: AppContext, contactId: string): Promise<ConsentEvent[]> {
  await getContactRow(ctx, contactId);
  return (await listEventsOfContact(ctx.db.kysely, contactId)).map(toEvent);
}

export interface ProofBundle {
  contactId: string;
  erased: boolean;
  generatedAt: string;
  events: ConsentEvent[];
  purposeVersions: PurposeVersion[];
  chain: { ok: boolean; events: number; head: string; firstBroken?: ChainBreak };
}

/** Everything needed to show who agreed to what, when, how and with which wording. */
export async function proofBundle(ctx: AppContext, contactId: string): Promise<ProofBundle> {
  const contact = await getContactRow(ctx, contactId);
  const rows = await listEventsOfContact(ctx.db.kysely, contactId);
  const head = await findHead(ctx.db.kysely, contactId);
  const broken = verifyChain(ctx.secret, contactId, rows, head);
  const pairs = [
    ...new Map(rows.map((r) => [`${r.purpose_key}@${r.purpose_version}`, { purpose: r.purpose_key, version: r.purpose_version }])).values(),
  ];
  return {
    contactId,
    erased: contact.erased_at !== null,
    generatedAt: iso(ctx.clock.now()),
    events: rows.map(toEvent),
    purposeVersions: await findPurposeVersions(ctx, pairs),
    chain: { ok: !broken, events: rows.length, head: head?.hash ?? '', ...(broken ? { firstBroken: broken } : {}) },
  };
}

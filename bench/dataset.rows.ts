// Deterministic rows for the bench database: contact i always gets the same id, addresses and
// three consent events, hashed and chained exactly as the service does (same functions), so the
// ledger verifies and the state table is the ledger's projection.

import { type Evidence, eventHash, evidenceHash, GENESIS_HASH } from '../src/modules/consents/consents.ledger.ts';
import { type Action, expiresAfter, foldEvent, type State, statusAfter } from '../src/modules/consents/consents.state.ts';
import {
  type ChainHeadsTable,
  type ConsentEventsTable,
  type ConsentStatesTable,
  EVENT_COLUMNS,
  HEAD_COLUMNS,
  STATE_COLUMNS,
} from '../src/modules/consents/consents.table.ts';
import { CONTACT_COLUMNS, type ContactsTable } from '../src/modules/contacts/index.ts';
import { addressHash } from '../src/modules/suppressions/index.ts';
import { sha256Hex } from '../src/platform/crypto.ts';
import { rng } from './common.ts';

// The tables' column lists, as the app's writers bind them (for the bench's raw writers too).
export { CONTACT_COLUMNS, EVENT_COLUMNS, HEAD_COLUMNS, STATE_COLUMNS };

// The column lists must name every column: a schema change breaks the type check here first.
type Covers<Table, Listed> = Exclude<keyof Table, Listed> extends never ? true : Exclude<keyof Table, Listed>;
export const columnsCovered: [
  Covers<ContactsTable, (typeof CONTACT_COLUMNS)[number]>,
  Covers<ConsentEventsTable, (typeof EVENT_COLUMNS)[number]>,
  Covers<ConsentStatesTable, (typeof STATE_COLUMNS)[number]>,
  Covers<ChainHeadsTable, (typeof HEAD_COLUMNS)[number]>,
] = [true, true, true, true];

export const EVENTS_PER_CONTACT = 3;

/** What the generator needs to know of a purpose (plain data: it crosses to worker threads). */
export interface PurposeFacts {
  key: string;
  version: number;
  legalBasis: string;
  doubleOptIn: boolean;
  expiryAfterDays: number | null;
  wordingHash: string;
  /** wordingText(purpose, locale) for fr and en. */
  text: { fr: string; en: string };
}

export interface GeneratorConfig {
  secret: string;
  purposes: Record<string, PurposeFacts>;
  /** Channel key → kind. */
  channels: Record<string, string>;
}

/** Flat, positional rows per table (cheap to pass between threads and to bind). */
export interface RowChunk {
  start: number;
  count: number;
  contacts: unknown[];
  events: unknown[];
  states: unknown[];
  heads: unknown[];
}

const T0 = Date.parse('2025-01-01T00:00:00.000Z');
const CONTACT_SPACING_MS = 20_000;
const EVENT_SPACING_MS = 5_000;
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A ULID with the given time and deterministic "random" part. */
export function ulidAt(ms: number, random: () => number): string {
  let time = '';
  let t = ms;
  for (let i = 0; i < 10; i += 1) {
    time = CROCKFORD[t % 32] + time;
    t = Math.floor(t / 32);
  }
  let rest = '';
  for (let i = 0; i < 16; i += 1) rest += CROCKFORD[Math.floor(random() * 32)];
  return time + rest;
}

const firstNames = ['camille', 'lea', 'louis', 'hugo', 'chloe', 'jules', 'emma', 'lucas', 'manon', 'nathan', 'ines', 'arthur'];
const lastNames = ['martin', 'bernard', 'dubois', 'thomas', 'robert', 'richard', 'petit', 'durand', 'leroy', 'moreau'];
const domains = ['example.com', 'example.org', 'example.net', 'mail.example.fr', 'corp.example.com'];
const userAgent = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';

/** The email of contact i (the bench finds contacts by it). */
export function emailOf(i: number): string {
  return `${firstNames[i % firstNames.length]}.${lastNames[(i >> 3) % lastNames.length]}.${i}@${domains[i % domains.length]}`;
}

interface PlannedEvent {
  purpose: string;
  channel: string;
  action: Action;
  source: string;
  ref: string | null;
}

const P = (purpose: string, channel: string, action: Action, source: string, ref: string | null): PlannedEvent => ({
  purpose,
  channel,
  action,
  source,
  ref,
});

/** Four histories, in turn: grants, refusals, withdrawals, objections, re-grants, over three sources. */
const patterns: PlannedEvent[][] = [
  [
    P('commercial-email', 'email', 'granted', 'form', 'signup'),
    P('commercial-sms', 'sms', 'granted', 'form', 'signup'),
    P('commercial-email', 'email', 'withdrawn', 'unsubscribe', null),
  ],
  [
    P('commercial-email', 'email', 'granted', 'import', 'crm-2025'),
    P('commercial-sms', 'sms', 'refused', 'form', 'checkout'),
    P('commercial-phone', 'phone', 'objected', 'api', 'call-centre'),
  ],
  [
    P('commercial-sms', 'sms', 'granted', 'api', 'pos'),
    P('commercial-email', 'email', 'granted', 'form', 'checkout'),
    P('commercial-sms', 'sms', 'withdrawn', 'sms_reply', null),
  ],
  [
    P('commercial-email', 'email', 'granted', 'form', 'signup'),
    P('commercial-email', 'email', 'withdrawn', 'preference_centre', null),
    P('commercial-email', 'email', 'granted', 'preference_centre', null),
  ],
];

const personSources = new Set(['form', 'double_opt_in', 'preference_centre', 'campaign', 'unsubscribe', 'sms_reply']);

function evidenceFor(source: string, i: number): Evidence {
  const ip = `198.51.${(i >> 8) & 255}.${i & 255}`;
  switch (source) {
    case 'form':
      return { ip, userAgent, url: 'https://shop.example.com/account/signup', method: 'checkbox' };
    case 'unsubscribe':
    case 'preference_centre':
      return { ip, userAgent, url: 'https://assent.example.com/p/token', method: 'link' };
    case 'api':
      return { ip };
    default:
      return {};
  }
}

/** Contact i's own facts; `random` continues the deterministic sequence its event ids use. */
function contactFacts(i: number) {
  const random = rng(i + 1);
  const createdMs = T0 + i * CONTACT_SPACING_MS;
  const locale: 'fr' | 'en' = i % 5 === 0 ? 'en' : 'fr';
  const customer = i % 3 === 0;
  return {
    random,
    createdMs,
    createdAt: new Date(createdMs).toISOString(),
    id: ulidAt(createdMs, random),
    email: emailOf(i),
    phone: i % 2 === 0 ? `+336${String(i % 100_000_000).padStart(8, '0')}` : null,
    locale,
    kind: i % 10 === 3 ? 'professional' : 'person',
    customer,
    lastPurchaseAt: customer ? new Date(createdMs + 86_400_000).toISOString() : null,
  };
}

function contactRow(secret: string, i: number, lastInteraction: string | null): unknown[] {
  const c = contactFacts(i);
  return [
    c.id,
    c.email,
    addressHash(secret, c.email),
    c.phone,
    c.phone ? addressHash(secret, c.phone) : null,
    firstNames[i % firstNames.length],
    lastNames[(i >> 3) % lastNames.length],
    c.locale,
    c.kind,
    c.customer ? 'customer' : 'prospect',
    c.lastPurchaseAt,
    'bench',
    '{}',
    c.createdAt,
    c.createdAt,
    lastInteraction,
    null,
  ];
}

/** Contacts i = start… without events (empty chains), as a fresh import would leave them. */
export function newContacts(secret: string, start: number, count: number): { contacts: unknown[]; heads: unknown[]; ids: string[] } {
  const contacts: unknown[] = [];
  const heads: unknown[] = [];
  const ids: string[] = [];
  for (let i = start; i < start + count; i += 1) {
    const row = contactRow(secret, i, null);
    contacts.push(...row);
    heads.push(row[0], 0, GENESIS_HASH);
    ids.push(row[0] as string);
  }
  return { contacts, heads, ids };
}

export function generateChunk(config: GeneratorConfig, start: number, count: number): RowChunk {
  const contacts: unknown[] = [];
  const events: unknown[] = [];
  const states: unknown[] = [];
  const heads: unknown[] = [];
  const textHashes = new Map<string, string>();
  const textHashOf = (text: string) => {
    // The service hashes the text on every event; the cache only keeps the build fast and
    // yields the same digest.
    let h = textHashes.get(text);
    if (!h) {
      h = sha256Hex(text);
      textHashes.set(text, h);
    }
    return h;
  };

  for (let i = start; i < start + count; i += 1) {
    const { random, createdMs, id, locale } = contactFacts(i);

    let prevHash = GENESIS_HASH;
    let lastInteraction: string | null = null;
    const contactStates = new Map<string, { purpose: string; channel: string; state: State; updatedAt: string }>();
    const plan = patterns[i % patterns.length] as PlannedEvent[];
    for (const [n, planned] of plan.entries()) {
      const purpose = config.purposes[planned.purpose] as PurposeFacts;
      const channelKind = config.channels[planned.channel];
      const rules = { doubleOptIn: purpose.doubleOptIn && channelKind === 'email', expiryAfterDays: purpose.expiryAfterDays };
      const occurredMs = createdMs + (n + 1) * EVENT_SPACING_MS;
      const occurredAt = new Date(occurredMs).toISOString();
      const stateKey = `${planned.purpose}\u0000${planned.channel}`;
      const prev = contactStates.get(stateKey)?.state;
      const status = statusAfter(prev, planned.action, rules, planned.source);
      const expiresAt = expiresAfter(status, planned.action, occurredAt, rules);
      const text = purpose.text[locale];
      // Same shape and key order as the service builds it.
      const evidence: Evidence = { ...evidenceFor(planned.source, i), text, textHash: textHashOf(text), wordingHash: purpose.wordingHash };
      evidence.locale = locale;
      const row = {
        id: ulidAt(occurredMs, random),
        contact_id: id,
        seq: n + 1,
        purpose_key: planned.purpose,
        purpose_version: purpose.version,
        channel_key: planned.channel,
        action: planned.action,
        status,
        legal_basis: purpose.legalBasis,
        source_type: planned.source,
        source_ref: planned.ref,
        evidence_hash: evidenceHash(config.secret, evidence),
        expires_at: expiresAt,
        occurred_at: occurredAt,
        recorded_at: occurredAt,
        idempotency_key: null,
        request_hash: null,
        prev_hash: prevHash,
      };
      const hash = eventHash(row);
      events.push(
        row.id,
        row.contact_id,
        row.seq,
        row.purpose_key,
        row.purpose_version,
        row.channel_key,
        row.action,
        row.status,
        row.legal_basis,
        row.source_type,
        row.source_ref,
        JSON.stringify(evidence),
        row.evidence_hash,
        row.expires_at,
        row.occurred_at,
        row.recorded_at,
        null,
        null,
        row.prev_hash,
        hash,
      );
      prevHash = hash;
      const next = foldEvent(prev, {
        id: row.id,
        action: row.action,
        status,
        sourceType: planned.source,
        occurredAt,
        expiresAt,
        purposeVersion: row.purpose_version,
      });
      contactStates.set(stateKey, { purpose: planned.purpose, channel: planned.channel, state: next, updatedAt: occurredAt });
      if (personSources.has(planned.source) && (!lastInteraction || lastInteraction < occurredAt)) lastInteraction = occurredAt;
    }

    contacts.push(...contactRow(config.secret, i, lastInteraction));
    for (const { purpose, channel, state, updatedAt } of contactStates.values()) {
      states.push(
        id,
        purpose,
        channel,
        state.status,
        state.since,
        state.expiresAt,
        state.confirmed ? 1 : 0,
        state.purposeVersion,
        state.lastEventId,
        null,
        updatedAt,
      );
    }
    heads.push(id, plan.length, prevHash);
  }
  return { start, count, contacts, events, states, heads };
}

// "May we contact this person on this channel for this purpose?" — the one place that answers.
import { type CompiledQuery, sql } from 'kysely';
import { addressKindFor, normalizeEmail, normalizePhone } from '../../platform/addresses.ts';
import { iso } from '../../platform/clock.ts';
import type { AppContext } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { type Channel, listChannels, peekChannels } from '../channels/index.ts';
import { effectiveLifecycle } from '../contacts/index.ts';
import { type LegalBasis, listPurposes, type Purpose, peekPurposes } from '../purposes/index.ts';

export const reasonCodes = {
  consent: 'Consent is granted (and confirmed where double opt-in applies) and not expired',
  soft_opt_in: 'Legitimate interest: a customer with a recorded purchase, on email or SMS (soft opt-in)',
  b2b_opt_out: 'Legitimate interest: a professional contacted by email about their job, with opt-out',
  opt_out_channel: 'Legitimate interest on a channel where an opt-out suffices (postal; phone before the switch date)',
  contract: 'The purpose rests on a contract',
  legal_obligation: 'The purpose rests on a legal obligation',
  unknown_contact: 'No contact has this id, email or phone',
  erased: 'The contact was erased',
  suppressed: 'The address is on the suppression list for this channel',
  channel_not_in_purpose: 'The purpose does not use this channel',
  no_address: 'The contact has no address on this channel',
  objected: 'The person objected (or withdrew) for this purpose and channel',
  no_consent: 'No consent was recorded',
  refused: 'The person refused',
  withdrawn: 'The person withdrew their consent',
  doi_pending: 'Waiting for the double opt-in confirmation',
  consent_expired: 'The consent expired',
  soft_opt_in_not_eligible: 'Legitimate interest does not reach this person on this channel: consent is needed',
  phone_consent_required: 'Phone canvassing of a consumer needs consent since the switch date (Loi 2025-594)',
} as const;

export type ReasonCode = keyof typeof reasonCodes;

export interface Decision {
  allowed: boolean;
  basis: LegalBasis | null;
  reason: ReasonCode;
  evidenceEventId: string | null;
  expiresAt: string | null;
}

export interface DecisionRequest {
  contactId?: string;
  email?: string;
  phone?: string;
  purpose: string;
  channel: string;
  at?: string;
}

/** What the decision reads, in one row: the contact, its state for the pair, its suppression. */
export interface DecisionFacts {
  id: string;
  kind: string;
  lifecycle: string;
  last_purchase_at: string | null;
  erased_at: string | null;
  has_address: number;
  status: string | null;
  expires_at: string | null;
  confirmed: number | null;
  last_event_id: string | null;
  suppression: string | null;
  /** Set when the person objected on any channel of the purpose (RULES 7: it stops them all). */
  objected?: number | null;
}

const deny = (reason: ReasonCode, basis: LegalBasis | null, facts?: DecisionFacts | undefined): Decision => ({
  allowed: false,
  basis,
  reason,
  evidenceEventId: facts?.last_event_id ?? null,
  expiresAt: null,
});

// Built at module level, not as closures per call: decisions are the hottest path.
const grantedByConsent = (facts: DecisionFacts): Decision => ({
  allowed: true,
  basis: 'consent',
  reason: 'consent',
  evidenceEventId: facts.last_event_id,
  expiresAt: facts.expires_at,
});

const allowedByInterest = (reason: ReasonCode, facts: DecisionFacts): Decision => ({
  allowed: true,
  basis: 'legitimate_interest',
  reason,
  evidenceEventId: facts.last_event_id,
  expiresAt: null,
});

/** The rules (RULES.md 6–8, 10–13, France defaults), as a pure function of the facts. */
export function decideFromFacts(
  facts: DecisionFacts | undefined,
  purpose: Purpose,
  channel: Channel,
  at: Date,
  settings: { formerCustomerAfterDays: number; phoneConsentRequiredFrom: string },
): Decision {
  const basis = purpose.legalBasis;
  if (!facts) return deny('unknown_contact', basis);
  if (facts.erased_at) return deny('erased', basis);
  if (facts.suppression) return deny('suppressed', basis, facts);
  if (!purpose.channels.includes(channel.key)) return deny('channel_not_in_purpose', basis, facts);
  if (addressKindFor(channel.kind) && !facts.has_address) return deny('no_address', basis, facts);

  const status = facts.status ?? 'none';
  if (status === 'objected' || facts.objected) return deny('objected', basis, facts);

  // The time is formatted only where a rule compares it (most decisions never do).
  const expired = facts.expires_at !== null && facts.expires_at <= iso(at);
  const doiUnconfirmed = purpose.doubleOptIn && channel.kind === 'email' && facts.confirmed !== 1;
  const consentValid = status === 'granted' && !expired && !doiUnconfirmed;

  if (basis === 'consent') {
    if (consentValid) return grantedByConsent(facts);
    if (status === 'granted' && expired) return deny('consent_expired', basis, facts);
    if (status === 'granted' || status === 'pending') return deny('doi_pending', basis, facts);
    if (status === 'expired') return deny('consent_expired', basis, facts);
    if (status === 'refused') return deny('refused', basis, facts);
    if (status === 'withdrawn') return deny('withdrawn', basis, facts);
    return deny('no_consent', basis, facts);
  }

  if (basis === 'contract' || basis === 'legal_obligation') {
    if (status === 'withdrawn' || status === 'refused') return deny('objected', basis, facts);
    return { allowed: true, basis, reason: basis, evidenceEventId: facts.last_event_id, expiresAt: null };
  }

  // Legitimate interest: a withdrawal or refusal for this pair is an objection (RULES 6–7).
  if (status === 'withdrawn' || status === 'refused') return deny('objected', basis, facts);
  if (consentValid) return grantedByConsent(facts);
  const lifecycle = effectiveLifecycle(facts, at, settings.formerCustomerAfterDays);
  const customer = lifecycle === 'customer' && facts.last_purchase_at !== null;
  switch (channel.kind) {
    case 'email':
      if (facts.kind === 'professional') return allowedByInterest('b2b_opt_out', facts);
      return customer ? allowedByInterest('soft_opt_in', facts) : deny('soft_opt_in_not_eligible', basis, facts);
    case 'sms':
      return customer ? allowedByInterest('soft_opt_in', facts) : deny('soft_opt_in_not_eligible', basis, facts);
    case 'phone':
      if (iso(at) < `${settings.phoneConsentRequiredFrom}T00:00:00.000Z`) return allowedByInterest('opt_out_channel', facts);
      if (facts.kind === 'professional' || customer) return allowedByInterest('opt_out_channel', facts);
      return deny('phone_consent_required', basis, facts);
    default:
      return allowedByInterest('opt_out_channel', facts);
  }
}

type Lookup = 'id' | 'email' | 'phone';
type AddressColumn = 'email_hash' | 'phone_hash' | null;

// Marker values replaced by the real parameters at run time: the SQL is built once per shape.
const M = { purpose: '\u0000purpose', channel: '\u0000channel', lookup: '\u0000lookup' } as const;

function buildFactsQuery(ctx: AppContext, lookup: Lookup, address: AddressColumn): CompiledQuery<DecisionFacts> {
  const db = ctx.db.kysely;
  const query = db
    .selectFrom('contacts as c')
    // Every state of the purpose (one index range, usually one or two rows): the pair's own state
    // and whether any channel of the purpose carries an objection (RULES 7) come from one read.
    .leftJoin('consent_states as s', (j) => j.onRef('s.contact_id', '=', 'c.id').on('s.purpose_key', '=', M.purpose))
    .select([
      's.channel_key',
      'c.id',
      'c.kind',
      'c.lifecycle',
      'c.last_purchase_at',
      'c.erased_at',
      's.status',
      's.expires_at',
      's.confirmed',
      's.last_event_id',
    ])
    .select(
      address ? sql<number>`case when c.${sql.ref(address)} is null then 0 else 1 end`.as('has_address') : sql<number>`1`.as('has_address'),
    )
    .select((eb) =>
      address
        ? eb
            .selectFrom('suppressions as sp')
            .select('sp.reason')
            .where('sp.channel_key', '=', M.channel)
            .whereRef('sp.address_hash', '=', `c.${address}`)
            .limit(1)
            .as('suppression')
        : sql<string | null>`null`.as('suppression'),
    )
    .where(`c.${lookup}`, '=', M.lookup);
  return query.compile() as CompiledQuery<DecisionFacts>;
}

/** A compiled facts query and, per parameter, what fills it: 0 as compiled, 1 purpose, 2 channel, 3 lookup value. */
interface FactsShape {
  compiled: CompiledQuery<DecisionFacts>;
  slots: number[];
}

const shapeKeys: Record<Lookup, Record<'email_hash' | 'phone_hash' | 'none', string>> = {
  id: { email_hash: 'decision-sql:id:email_hash', phone_hash: 'decision-sql:id:phone_hash', none: 'decision-sql:id:null' },
  email: { email_hash: 'decision-sql:email:email_hash', phone_hash: 'decision-sql:email:phone_hash', none: 'decision-sql:email:null' },
  phone: { email_hash: 'decision-sql:phone:email_hash', phone_hash: 'decision-sql:phone:phone_hash', none: 'decision-sql:phone:null' },
};

function factsShape(ctx: AppContext, lookup: Lookup, address: AddressColumn): FactsShape {
  const cacheKey = shapeKeys[lookup][address ?? 'none'];
  let shape = ctx.cache.get(cacheKey)?.value as FactsShape | undefined;
  if (!shape) {
    const compiled = buildFactsQuery(ctx, lookup, address);
    const slots = compiled.parameters.map((p) => (p === M.purpose ? 1 : p === M.channel ? 2 : p === M.lookup ? 3 : 0));
    shape = { compiled, slots };
    // Compiled SQL never goes stale: keep it far beyond the cache's age limit.
    ctx.cache.set(cacheKey, { at: Number.MAX_SAFE_INTEGER / 2, value: shape });
  }
  return shape;
}

/** The facts query for this lookup and channel, its parameters filled by position (no per-call lookup table). */
function factsQuery(ctx: AppContext, lookup: Lookup, value: string, purpose: string, channel: Channel): CompiledQuery<FactsRow> {
  const kind = addressKindFor(channel.kind);
  const address: AddressColumn = kind === 'email' ? 'email_hash' : kind === 'phone' ? 'phone_hash' : null;
  const { compiled, slots } = factsShape(ctx, lookup, address);
  const parameters: unknown[] = new Array(slots.length);
  for (let k = 0; k < slots.length; k += 1) {
    const slot = slots[k];
    parameters[k] = slot === 0 ? compiled.parameters[k] : slot === 1 ? purpose : slot === 2 ? channel.key : value;
  }
  return { query: compiled.query, queryId: compiled.queryId, sql: compiled.sql, parameters } as CompiledQuery<FactsRow>;
}

type FactsRow = DecisionFacts & { channel_key: string | null };

/** One row per state of the purpose (or one with no state): the pair's own, and whether any objects. */
function factsOf(rows: FactsRow[], channel: Channel): DecisionFacts | undefined {
  const first = rows[0];
  if (!first) return undefined;
  let own: FactsRow | undefined;
  let objected = 0;
  for (const row of rows) {
    if (row.channel_key === channel.key) own = row;
    if (row.status === 'objected') objected = 1;
  }
  // Rows are fresh objects from the reader: completed in place.
  if (own) {
    own.objected = objected;
    return own;
  }
  first.status = null;
  first.expires_at = null;
  first.confirmed = null;
  first.last_event_id = null;
  first.objected = objected;
  return first;
}

function byKey<T extends { key: string }>(items: T[], key: string): T | undefined {
  for (const item of items) if (item.key === key) return item;
  return undefined;
}

/** A decision request checked and resolved: what to read, and what the rules need besides. */
interface Asked {
  query: CompiledQuery<FactsRow>;
  purpose: Purpose;
  channel: Channel;
  at: Date;
}

/** Checks the request against the purposes and channels given, and makes its facts query. Throws DomainError. */
function ask(ctx: AppContext, request: DecisionRequest, path: string, purposes: Purpose[], channels: Channel[]): Asked {
  const purpose = byKey(purposes, request.purpose);
  if (!purpose) {
    throw new DomainError('unknown_purpose', `There is no purpose "${request.purpose}"`, [
      { path: `${path}/purpose`, message: 'unknown purpose' },
    ]);
  }
  const channel = byKey(channels, request.channel);
  if (!channel) {
    throw new DomainError('unknown_channel', `There is no channel "${request.channel}"`, [
      { path: `${path}/channel`, message: 'unknown channel' },
    ]);
  }
  let at = ctx.clock.now();
  if (request.at !== undefined) {
    at = new Date(request.at);
    if (Number.isNaN(at.getTime()))
      throw new DomainError('validation_failed', 'at must be an ISO-8601 date-time', [
        { path: `${path}/at`, message: 'invalid date-time' },
      ]);
  }

  let lookup: Lookup;
  let value: string | undefined;
  if (request.contactId !== undefined) {
    lookup = 'id';
    value = request.contactId;
  } else if (request.email !== undefined) {
    lookup = 'email';
    value = normalizeEmail(request.email);
    if (!value)
      throw new DomainError('invalid_email', 'is not a valid email address', [{ path: `${path}/email`, message: 'invalid email' }]);
  } else if (request.phone !== undefined) {
    lookup = 'phone';
    value = normalizePhone(request.phone, ctx.config.defaultRegion);
    if (!value)
      throw new DomainError('invalid_phone', 'is not a valid phone number', [{ path: `${path}/phone`, message: 'invalid phone' }]);
  } else {
    throw new DomainError('validation_failed', 'Name the contact by contactId, email or phone', [
      { path: `${path}/contactId`, message: 'contactId, email or phone is required' },
    ]);
  }
  return { query: factsQuery(ctx, lookup, value, purpose.key, channel), purpose, channel, at };
}

const conclude = (ctx: AppContext, asked: Asked, rows: FactsRow[]): Decision =>
  decideFromFacts(factsOf(rows, asked.channel), asked.purpose, asked.channel, asked.at, ctx.config);

export async function decide(ctx: AppContext, request: DecisionRequest, path = ''): Promise<Decision> {
  const asked = ask(ctx, request, path, peekPurposes(ctx) ?? (await listPurposes(ctx)), peekChannels(ctx) ?? (await listChannels(ctx)));
  return conclude(ctx, asked, await ctx.db.read(asked.query));
}

/**
 * decide(), answered at once when it can be: on SQLite (a synchronous read) with the purposes and
 * channels freshly cached — the steady state of a server. Otherwise undefined: call decide().
 * Throws DomainError as decide() rejects with it.
 */
export function decideNow(ctx: AppContext, request: DecisionRequest, path = ''): Decision | undefined {
  const { readNow } = ctx.db;
  const purposes = peekPurposes(ctx);
  const channels = peekChannels(ctx);
  if (readNow === undefined || purposes === undefined || channels === undefined) return undefined;
  const asked = ask(ctx, request, path, purposes, channels);
  return conclude(ctx, asked, readNow(asked.query));
}

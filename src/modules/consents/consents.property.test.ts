// Property: for random sequences of consent actions, backdated times, clock moves and scheduler
// runs, the state table is a replay of the ledger, agrees with a simple model written here, the
// chains verify, and a rebuild changes nothing.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/build-app.ts';
import { dialects } from '../../../test/helpers/dialects.ts';
import { buildContact } from '../../../test/helpers/factories.ts';
import type { RequestContext } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { runDueJobs } from '../scheduler/index.ts';
import { type StoredEvent, verifyChain } from './consents.ledger.ts';
import { foldEvent, type State } from './consents.state.ts';
import { type ConsentInput, rebuildState, recordConsents, verifyLedger } from './index.ts';

const DAY = 86_400_000;
const MINUTE = 60_000;
const req: RequestContext = { actor: { type: 'api_key', name: 'prop' } };

// Purposes under test: what matters to the model is double opt-in and expiry.
const purposes = {
  plain: { doubleOptIn: false, afterDays: null },
  doi: { doubleOptIn: true, afterDays: null },
  expiring: { doubleOptIn: false, afterDays: 2 },
  'doi-expiring': { doubleOptIn: true, afterDays: 5 },
} as const;
type PurposeKey = keyof typeof purposes;
const purposeKeys = Object.keys(purposes) as PurposeKey[];
const channels = ['email', 'sms'] as const;
type ChannelKey = (typeof channels)[number];

type Verb = 'grant' | 'confirm' | 'renew' | 'refuse' | 'withdraw' | 'object';
type When = { kind: 'now' } | { kind: 'back'; ms: number } | { kind: 'since'; deltaMs: number } | { kind: 'ahead'; ms: number };

interface ItemSpec {
  /** Act on the same purpose and channel as the previous item (grant then confirm, and so on). */
  sticky: boolean;
  purpose: PurposeKey;
  channel: ChannelKey;
  verb: Verb;
  source: string | null;
  when: When;
  ip: boolean;
}

type Step = { kind: 'record'; items: ItemSpec[]; advanceMs: number } | { kind: 'schedule'; advanceMs: number };

const whenArb: fc.Arbitrary<When> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'now' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('back' as const), ms: fc.integer({ min: 1, max: 60 * DAY }) }) },
  // Exactly at, just before and just after the pair's current `since`: the "late event" edge.
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('since' as const), deltaMs: fc.constantFrom(-1, 0, 1) }) },
  // Slightly ahead of the clock, within the accepted skew: stamped as now.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('ahead' as const), ms: fc.integer({ min: 1, max: 4 * MINUTE }) }) },
);

const itemArb: fc.Arbitrary<ItemSpec> = fc.record({
  sticky: fc.boolean(),
  purpose: fc.constantFrom(...purposeKeys),
  channel: fc.oneof({ weight: 2, arbitrary: fc.constant<ChannelKey>('email') }, { weight: 1, arbitrary: fc.constant<ChannelKey>('sms') }),
  verb: fc.oneof(
    { weight: 4, arbitrary: fc.constant<Verb>('grant') },
    { weight: 2, arbitrary: fc.constant<Verb>('confirm') },
    { weight: 1, arbitrary: fc.constant<Verb>('renew') },
    { weight: 1, arbitrary: fc.constant<Verb>('refuse') },
    { weight: 2, arbitrary: fc.constant<Verb>('withdraw') },
    { weight: 1, arbitrary: fc.constant<Verb>('object') },
  ),
  source: fc.constantFrom(null, 'api', 'form', 'double_opt_in', 'import', 'preference_centre'),
  when: whenArb,
  ip: fc.boolean(),
});

const advanceArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 3 * DAY }) },
  { weight: 1, arbitrary: fc.integer({ min: 3 * DAY, max: 12 * DAY }) },
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('record' as const),
      items: fc.array(itemArb, { minLength: 1, maxLength: 3 }),
      advanceMs: advanceArb,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('schedule' as const), advanceMs: advanceArb }) },
);

// ---- The model: what the state of a pair should be, written from the rules, not from the code.

interface ModelState {
  status: string;
  since: string;
  expiresAt: string | null;
  confirmed: boolean;
  lastEventId: string;
}

type ModelAction = Verb | 'expire';

interface Expected {
  late: boolean;
  /** Status written on the event: the new status, or the unchanged one for a late event. */
  eventStatus: string;
  eventExpiresAt: string | null;
  next: ModelState | undefined;
}

const pairKey = (purpose: string, channel: string) => `${purpose}/${channel}`;

function expectedAfter(
  prev: ModelState | undefined,
  purpose: PurposeKey,
  channel: ChannelKey,
  action: ModelAction,
  source: string,
  occurredAt: string,
  eventId: string,
): Expected {
  // An event that happened before the state's start is kept in the ledger but moves nothing.
  if (prev && occurredAt < prev.since) return { late: true, eventStatus: prev.status, eventExpiresAt: null, next: prev };
  const { doubleOptIn, afterDays } = purposes[purpose];
  const needsConfirmation = doubleOptIn && channel === 'email';
  const wasConfirmedGrant = prev?.status === 'granted' && prev.confirmed;
  let status: string;
  let confirmed = false;
  switch (action) {
    case 'grant':
      if (!needsConfirmation || source === 'double_opt_in') {
        status = 'granted';
        confirmed = source === 'double_opt_in' || wasConfirmedGrant;
      } else if (wasConfirmedGrant) {
        status = 'granted';
        confirmed = true;
      } else status = 'pending';
      break;
    case 'confirm':
    case 'renew':
      status = 'granted';
      confirmed = true;
      break;
    case 'refuse':
      status = 'refused';
      break;
    case 'withdraw':
      status = 'withdrawn';
      break;
    case 'object':
      status = 'objected';
      break;
    case 'expire':
      status = 'expired';
      break;
  }
  const startsValidity = status === 'granted' && action !== 'expire' && afterDays !== null;
  const expiresAt = startsValidity ? new Date(Date.parse(occurredAt) + afterDays * DAY).toISOString() : null;
  return {
    late: false,
    eventStatus: status,
    eventExpiresAt: expiresAt,
    next: { status, since: occurredAt, expiresAt, confirmed, lastEventId: eventId },
  };
}

function occurredAtFor(when: When, prev: ModelState | undefined, now: Date): string | undefined {
  switch (when.kind) {
    case 'now':
      return undefined;
    case 'back':
      return new Date(now.getTime() - when.ms).toISOString();
    case 'ahead':
      return new Date(now.getTime() + when.ms).toISOString();
    case 'since':
      return new Date((prev ? Date.parse(prev.since) : now.getTime()) + when.deltaMs).toISOString();
  }
}

type Pair = { purpose: PurposeKey; channel: ChannelKey };

/**
 * A confirm acts on a pending pair when there is one (else it is refused: nothing_to_confirm); a
 * sticky item acts on the previous item's pair (grant then withdraw, and so on).
 */
function resolvePair(spec: ItemSpec, draft: Map<string, ModelState>, lastPair: Pair | undefined): Pair {
  if (spec.verb === 'confirm') {
    const pending = [...draft.entries()]
      .filter(([, s]) => s.status === 'pending')
      .map(([key]) => key)
      .sort();
    const key = pending[spec.sticky ? 0 : pending.length - 1];
    if (key) {
      const [purpose, channel] = key.split('/') as [PurposeKey, ChannelKey];
      return { purpose, channel };
    }
  }
  if (spec.sticky && lastPair) return lastPair;
  return { purpose: spec.purpose, channel: spec.channel };
}

/** The time an event is stamped with: the one given, but never ahead of the clock (skew is taken as now). */
function effectiveTime(occurredAt: string | undefined, now: Date): string {
  if (occurredAt === undefined || Date.parse(occurredAt) > now.getTime()) return now.toISOString();
  return occurredAt;
}

// ---- Reading the store.

interface StateRow {
  key: string;
  status: string;
  since: string;
  expiresAt: string | null;
  confirmed: boolean;
  purposeVersion: number;
  lastEventId: string;
}

const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

async function storedStates(t: TestApp, contactId?: string): Promise<StateRow[]> {
  let query = t.ctx.db.kysely.selectFrom('consent_states').selectAll();
  if (contactId) query = query.where('contact_id', '=', contactId);
  const rows = await query.execute();
  return rows
    .map((r) => ({
      key: `${r.contact_id}/${r.purpose_key}/${r.channel_key}`,
      status: r.status,
      since: r.since,
      expiresAt: r.expires_at,
      confirmed: Number(r.confirmed) === 1,
      purposeVersion: Number(r.purpose_version),
      lastEventId: r.last_event_id,
    }))
    .sort(byKey);
}

/** The states a replay of every ledger event gives, folded per (contact, purpose, channel) in seq order. */
async function replayedStates(t: TestApp): Promise<StateRow[]> {
  const events = await t.ctx.db.kysely.selectFrom('consent_events').selectAll().orderBy('contact_id').orderBy('seq').execute();
  const folded = new Map<string, State>();
  for (const e of events) {
    const key = `${e.contact_id}/${e.purpose_key}/${e.channel_key}`;
    folded.set(
      key,
      foldEvent(folded.get(key), {
        id: e.id,
        action: e.action,
        status: e.status,
        sourceType: e.source_type,
        occurredAt: e.occurred_at,
        expiresAt: e.expires_at,
        purposeVersion: Number(e.purpose_version),
      }),
    );
  }
  return [...folded.entries()]
    .map(([key, s]) => ({
      key,
      status: s.status,
      since: s.since,
      expiresAt: s.expiresAt,
      confirmed: s.confirmed,
      purposeVersion: s.purposeVersion,
      lastEventId: s.lastEventId,
    }))
    .sort(byKey);
}

async function eventsOf(t: TestApp, contactId: string) {
  return t.ctx.db.kysely.selectFrom('consent_events').selectAll().where('contact_id', '=', contactId).orderBy('seq').execute();
}

// ---- One run.

async function runSequence(t: TestApp, steps: Step[]): Promise<void> {
  const contact = await t.call('POST', '/v1/contacts', { body: { ...buildContact(), phone: null } });
  expect(contact.statusCode, contact.body).toBe(201);
  const contactId: string = contact.json().id;
  const model = new Map<string, ModelState>();
  let events = 0;
  let lastPair: Pair | undefined;

  for (const step of steps) {
    t.clock.set(new Date(t.clock.now().getTime() + step.advanceMs));
    const now = t.clock.now();

    if (step.kind === 'schedule') {
      // Granted consents past their expiry, and double opt-in requests pending longer than the
      // setting (7 days), each get an `expired` event at the moment they ran out.
      const pendingDays = t.ctx.config.doubleOptInExpiryDays * 86_400_000;
      const endOf = (s: ModelState) =>
        s.status === 'granted'
          ? s.expiresAt
          : s.status === 'pending'
            ? new Date(new Date(s.since).getTime() + pendingDays).toISOString()
            : null;
      const due = [...model.entries()].filter(([, s]) => {
        const end = endOf(s);
        return end !== null && end <= now.toISOString();
      });
      await runDueJobs(t.ctx, now);
      const added = (await eventsOf(t, contactId)).slice(events);
      expect(added.map((e) => pairKey(e.purpose_key, e.channel_key)).sort()).toEqual(due.map(([key]) => key).sort());
      for (const e of added) {
        const key = pairKey(e.purpose_key, e.channel_key);
        const [, s] = due.find(([k]) => k === key) as [string, ModelState];
        expect(e.action).toBe('expired');
        expect(e.occurred_at).toBe(endOf(s));
        const expected = expectedAfter(
          model.get(key),
          e.purpose_key as PurposeKey,
          e.channel_key as ChannelKey,
          'expire',
          'system',
          e.occurred_at,
          e.id,
        );
        expect(expected.late).toBe(false);
        expect(e.status).toBe('expired');
        model.set(key, expected.next as ModelState);
      }
      events += added.length;
      continue;
    }

    // Simulate the batch on a copy: it is recorded all or nothing.
    const draft = new Map(model);
    const inputs: ConsentInput[] = [];
    const pairs: Pair[] = [];
    let illegal = false;
    for (const spec of step.items) {
      const pair = resolvePair(spec, draft, lastPair);
      const item = { ...spec, ...pair };
      lastPair = pair;
      pairs.push(pair);
      const key = pairKey(item.purpose, item.channel);
      const prev = draft.get(key);
      if (item.verb === 'confirm' && prev?.status !== 'pending') illegal = true;
      const occurredAt = occurredAtFor(item.when, prev, now);
      inputs.push({
        contactId,
        purpose: item.purpose,
        channel: item.channel,
        action: item.verb,
        ...(item.source ? { source: { type: item.source, ref: 'prop' } } : {}),
        ...(item.ip ? { evidence: { ip: '203.0.113.7', userAgent: 'prop-test' } } : {}),
        ...(occurredAt ? { occurredAt } : {}),
      });
      const expected = expectedAfter(
        prev,
        item.purpose,
        item.channel,
        item.verb,
        item.source ?? 'api',
        effectiveTime(occurredAt, now),
        `draft-${inputs.length}`,
      );
      if (expected.next) draft.set(key, expected.next);
    }

    if (illegal) {
      const error = await recordConsents(t.ctx, req, inputs).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(DomainError);
      expect((error as DomainError).code).toBe('nothing_to_confirm');
      continue;
    }

    const results = await recordConsents(t.ctx, req, inputs);
    expect(results).toHaveLength(inputs.length);
    for (const [i, { event, created }] of results.entries()) {
      const item = { ...(step.items[i] as ItemSpec), ...pairs[i] };
      const key = pairKey(item.purpose, item.channel);
      const occurredAt = effectiveTime(inputs[i]?.occurredAt, now);
      const expected = expectedAfter(model.get(key), item.purpose, item.channel, item.verb, item.source ?? 'api', occurredAt, event.id);
      expect(created).toBe(true);
      expect(event.occurredAt).toBe(occurredAt);
      expect({ status: event.status, expiresAt: event.expiresAt }).toEqual({
        status: expected.eventStatus,
        expiresAt: expected.eventExpiresAt,
      });
      if (expected.next) model.set(key, expected.next);
    }
    events += results.length;
  }

  // The contact's ledger holds exactly the events the model counted, in one verifying chain.
  const ledger = await eventsOf(t, contactId);
  expect(ledger).toHaveLength(events);
  const head = await t.ctx.db.kysely
    .selectFrom('chain_heads')
    .select(['seq', 'hash'])
    .where('contact_id', '=', contactId)
    .executeTakeFirst();
  if (events > 0) {
    expect(
      verifyChain(t.ctx.secret, contactId, ledger as StoredEvent[], head ? { seq: Number(head.seq), hash: head.hash } : undefined),
    ).toBeUndefined();
  }

  // (b) the model agrees with the stored state of this contact.
  const stored = await storedStates(t, contactId);
  const modelled = [...model.entries()]
    .map(([key, s]) => ({
      key: `${contactId}/${key}`,
      status: s.status,
      since: s.since,
      expiresAt: s.expiresAt,
      confirmed: s.confirmed,
      lastEventId: s.lastEventId,
    }))
    .sort(byKey);
  expect(stored.map(({ purposeVersion: _v, ...s }) => s)).toEqual(modelled);

  // (a) the state table is a replay of the ledger (every contact so far, not only this one).
  const before = await storedStates(t);
  expect(before).toEqual(await replayedStates(t));

  // (c) every chain and checkpoint verifies.
  const verified = await verifyLedger(t.ctx);
  expect(verified.firstBroken).toBeUndefined();
  expect(verified.ok).toBe(true);

  // (d) rebuilding the projection from the ledger changes nothing.
  await rebuildState(t.ctx);
  expect(await storedStates(t)).toEqual(before);
}

describe.each(dialects)('consent ledger properties on %s', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp(dialect);
    for (const [key, p] of Object.entries(purposes)) {
      const res = await t.call('POST', '/v1/purposes', {
        body: { key, title: { fr: key }, channels: [...channels], doubleOptIn: p.doubleOptIn, expiry: { afterDays: p.afterDays } },
      });
      expect(res.statusCode, res.body).toBe(201);
    }
  });
  afterAll(async () => t.close());

  it('keeps the state equal to a replay of the ledger, and the chains verifying, for any sequence', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 25, size: 'max' }), (steps) => runSequence(t, steps)),
      { numRuns: dialect === 'sqlite' ? 40 : 15, interruptAfterTimeLimit: 45_000, markInterruptAsFailure: true },
    );
  }, 120_000);
});

// Property: for random contacts (fields, attributes, consent states, campaign deliveries) and
// random filters, the one SQL query segmentWhere compiles selects exactly the contacts that a
// plain evaluator, written here from the filter's meaning, selects — on every store.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/build-app.ts';
import { dialects } from '../../../test/helpers/dialects.ts';
import type { Database } from '../../database.ts';
import { iso, parseInstant } from '../../platform/clock.ts';
import { checkFilter, type Filter, segmentScope, segmentWhere, validateFilter } from './index.ts';

const NOW = '2026-11-22T10:00:00.000Z';
const DAY = 86_400_000;
const at = (ms: number) => iso(new Date(Date.parse(NOW) + ms));
const FORMER_AFTER_DAYS = 365;

// ---- The data: small domains, so that filters and contacts meet often. ------------------------

const instants = [at(-400 * DAY), at(-365 * DAY - 1), at(-365 * DAY), at(-365 * DAY + 1), at(-30 * DAY), at(-1), NOW] as const;
const sources = [null, 'shop', 'Shop Paris', 'fair_100%', 'import'] as const;
const words = ['ann', 'Bob', 'a_b', 'x%y', 'zoe'] as const;
const domains = ['example.com', 'Example.org', 'mail.fr'] as const;
const locales = [null, 'fr', 'en', 'fr-FR'] as const;
const numbers = [-1, 0, 2.5, 3, 10] as const;
const strings = ['Paris', 'paris', 'Lyon', 'a_b', 'x%y'] as const;
const dates = ['2024-01-10', '2025-06-30', '2025-06-30T12:00:00Z', '2026-01-01T00:00:00.000Z'] as const;
const statuses = ['granted', 'pending', 'refused', 'withdrawn', 'objected', 'expired'] as const;
const grades = [null, 'weak', 'strong'] as const;
const pairs = [
  { purpose: 'commercial-email', channel: 'email' },
  { purpose: 'commercial-sms', channel: 'sms' },
] as const;
const campaigns = ['k1', 'k2'] as const;
const events = ['received', 'clicked', 'confirmed', 'unsubscribed', 'bounced'] as const;
const eventColumns = {
  received: 'sent_at',
  clicked: 'clicked_at',
  confirmed: 'confirmed_at',
  unsubscribed: 'unsubscribed_at',
  bounced: 'bounced_at',
} as const;

interface ContactSpec {
  emailWord: string | null;
  domain: string;
  phone: boolean;
  locale: string | null;
  kind: string;
  lifecycle: string;
  lastPurchaseAt: string | null;
  source: string | null;
  createdAt: string;
  lastInteractionAt: string | null;
  erased: boolean;
  attributes: { n?: number; b?: boolean; s?: string; d?: string };
  states: Array<{ status: string; grade: string | null } | null>;
  deliveries: Array<
    Array<{
      sent_at: string | null;
      clicked_at: string | null;
      confirmed_at: string | null;
      unsubscribed_at: string | null;
      bounced_at: string | null;
    }>
  >;
}

const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const stamp = fc.option(fc.constantFrom(...instants), { nil: null });

const contactArb: fc.Arbitrary<ContactSpec> = fc.record({
  emailWord: fc.option(fc.constantFrom(...words), { nil: null }),
  domain: fc.constantFrom(...domains),
  phone: fc.boolean(),
  locale: fc.constantFrom(...locales),
  kind: fc.constantFrom('person', 'professional'),
  lifecycle: fc.constantFrom('prospect', 'customer', 'former_customer'),
  lastPurchaseAt: fc.option(fc.constantFrom(...instants), { nil: null }),
  source: fc.constantFrom(...sources),
  createdAt: fc.constantFrom(...instants),
  lastInteractionAt: stamp,
  erased: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
  attributes: fc
    .record({
      n: maybe(fc.constantFrom(...numbers)),
      b: maybe(fc.boolean()),
      s: maybe(fc.constantFrom(...strings)),
      d: maybe(fc.constantFrom(...dates)),
    })
    .map((a) => Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined))),
  states: fc.tuple(
    ...pairs.map(() => fc.option(fc.record({ status: fc.constantFrom(...statuses), grade: fc.constantFrom(...grades) }), { nil: null })),
  ),
  deliveries: fc.tuple(
    ...campaigns.map(() =>
      fc.array(
        fc.record({
          sent_at: stamp,
          clicked_at: stamp,
          confirmed_at: stamp,
          unsubscribed_at: stamp,
          bounced_at: stamp,
        }),
        { maxLength: 2 },
      ),
    ),
  ),
});

// ---- The filters: only valid ones, typed as the declared fields are. ---------------------------

const sub = <T>(items: readonly T[]) => fc.subarray([...items], { minLength: 1 });
const textValues = (field: string): readonly string[] => {
  if (field === 'email') return ['ann@example.com', 'ANN0@EXAMPLE.COM', 'zoe3@mail.fr', 'nobody@example.com'];
  if (field === 'phone') return ['+33612340000', '+33612340001'];
  if (field === 'locale') return ['fr', 'en', 'fr-FR', 'de'];
  return ['shop', 'Shop Paris', 'fair_100%', 'import', 'fair'];
};
const fragments = ['ann', 'EXAMPLE', 'a_b', '%', '_', 'shop', 'PAR', '100%', 'r_1', 'fr', '+336'] as const;
const dateValues = ['2025-11-22', '2025-11-22T10:00:00Z', '2026-10-23T10:00:00.000Z', NOW, '2026-11-22T11:00:00+01:00'] as const;

const fieldArb: fc.Arbitrary<Filter> = fc.oneof(
  // Closed lists of words.
  fc.constantFrom('lifecycle', 'kind').chain((field) => {
    const values = field === 'lifecycle' ? ['prospect', 'customer', 'former_customer'] : ['person', 'professional'];
    return fc.oneof(
      fc.record({ field: fc.constant(field), op: fc.constantFrom('eq', 'neq'), value: fc.constantFrom(...values) }),
      fc.record({ field: fc.constant(field), op: fc.constant('in'), value: sub(values) }),
      fc.record({ field: fc.constant(field), op: fc.constant('exists'), value: fc.boolean() }),
    );
  }),
  // Free text.
  fc
    .constantFrom('source', 'email', 'phone', 'locale')
    .chain((field) =>
      fc.oneof(
        fc.record({ field: fc.constant(field), op: fc.constantFrom('eq', 'neq'), value: fc.constantFrom(...textValues(field)) }),
        fc.record({ field: fc.constant(field), op: fc.constant('in'), value: sub(textValues(field)) }),
        fc.record({ field: fc.constant(field), op: fc.constant('exists'), value: fc.boolean() }),
        fc.record({ field: fc.constant(field), op: fc.constant('contains'), value: fc.constantFrom(...fragments) }),
      ),
    ),
  // Instants.
  fc.constantFrom('createdAt', 'lastInteractionAt', 'lastPurchaseAt').chain((field) =>
    fc.oneof(
      fc.record({
        field: fc.constant(field),
        op: fc.constantFrom('eq', 'neq', 'gt', 'lt'),
        value: fc.constantFrom(...instants, ...dateValues),
      }),
      fc.record({ field: fc.constant(field), op: fc.constant('exists'), value: fc.boolean() }),
    ),
  ),
  // Declared attributes: n number, b boolean, s string, d date.
  fc.oneof(
    fc.record({ field: fc.constant('attributes.n'), op: fc.constantFrom('eq', 'neq', 'gt', 'lt'), value: fc.constantFrom(...numbers, 1) }),
    fc.record({ field: fc.constant('attributes.n'), op: fc.constant('in'), value: sub([...numbers, 1]) }),
    fc.record({ field: fc.constant('attributes.b'), op: fc.constantFrom('eq', 'neq'), value: fc.boolean() }),
    fc.record({ field: fc.constant('attributes.s'), op: fc.constantFrom('eq', 'neq'), value: fc.constantFrom(...strings, 'Nice') }),
    fc.record({ field: fc.constant('attributes.s'), op: fc.constant('in'), value: sub([...strings, 'Nice']) }),
    fc.record({ field: fc.constant('attributes.s'), op: fc.constant('contains'), value: fc.constantFrom('par', 'A_B', '%', '_', 'yon') }),
    fc.record({
      field: fc.constant('attributes.d'),
      op: fc.constantFrom('eq', 'neq', 'gt', 'lt'),
      value: fc.constantFrom(...dates, '2025-07-01'),
    }),
    fc.record({
      field: fc.constantFrom('attributes.n', 'attributes.b', 'attributes.s', 'attributes.d'),
      op: fc.constant('exists'),
      value: fc.boolean(),
    }),
  ),
) as fc.Arbitrary<Filter>;

const consentArb: fc.Arbitrary<Filter> = fc
  .record({
    pair: fc.constantFrom(...pairs),
    status: maybe(sub([...statuses, 'none'] as const)),
    proofGrade: maybe(sub(['weak', 'strong'])),
  })
  .filter((c) => c.status !== undefined || c.proofGrade !== undefined)
  .map((c) => ({
    consent: {
      purpose: c.pair.purpose,
      channel: c.pair.channel,
      ...(c.status ? { status: c.status } : {}),
      ...(c.proofGrade ? { proofGrade: c.proofGrade } : {}),
    },
  }));

const campaignArb: fc.Arbitrary<Filter> = fc.record({
  campaign: fc.record({ key: fc.constantFrom(...campaigns, 'k3'), event: fc.constantFrom(...events) }),
});

const filterArb: fc.Arbitrary<Filter> = fc.letrec<{ node: Filter; all: Filter; any: Filter; not: Filter }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 4, depthIdentifier: 'filter' },
    { weight: 4, arbitrary: fieldArb },
    { weight: 2, arbitrary: consentArb },
    { weight: 1, arbitrary: campaignArb },
    { weight: 1, arbitrary: tie('all') },
    { weight: 1, arbitrary: tie('any') },
    { weight: 1, arbitrary: tie('not') },
  ),
  all: fc.record({ all: fc.array(tie('node'), { maxLength: 3, depthIdentifier: 'filter' }) }),
  any: fc.record({ any: fc.array(tie('node'), { minLength: 1, maxLength: 3, depthIdentifier: 'filter' }) }),
  not: fc.record({ not: tie('node') }),
})).node;

// ---- The model: what a filter means, on the generated contacts. -------------------------------

interface Row {
  id: string;
  spec: ContactSpec;
  email: string | null;
  phone: string | null;
}

type Value = string | number | boolean | null;
const cutoff = at(-FORMER_AFTER_DAYS * DAY);
const contactDates: Record<string, (r: Row) => string | null> = {
  createdAt: (r) => r.spec.createdAt,
  lastInteractionAt: (r) => r.spec.lastInteractionAt,
  lastPurchaseAt: (r) => r.spec.lastPurchaseAt,
};

function fieldValue(r: Row, field: string): Value {
  const s = r.spec;
  if (field.startsWith('attributes.')) return (s.attributes as Record<string, Value>)[field.slice(11)] ?? null;
  if (field === 'lifecycle') return s.lastPurchaseAt === null ? s.lifecycle : s.lastPurchaseAt < cutoff ? 'former_customer' : 'customer';
  if (field in contactDates) return (contactDates[field] as (r: Row) => string | null)(r);
  return { kind: s.kind, source: s.source, email: r.email, phone: r.phone, locale: s.locale }[field] ?? null;
}

/** The filter's value, as compared: instants of contact fields normalised, emails lower-cased. */
function operand(field: string, v: string | number | boolean): string | number | boolean {
  if (typeof v !== 'string') return v;
  if (field in contactDates) return iso(parseInstant(v) as Date);
  if (field === 'email') return v.toLowerCase();
  return v;
}

function matchField(r: Row, f: { field: string; op: string; value: unknown }): boolean {
  const x = fieldValue(r, f.field);
  // A value compares only with a value of its type (the store's JSON types).
  const same = (v: unknown) => x !== null && typeof x === typeof v;
  const eq = (v: unknown) => same(v) && x === operand(f.field, v as string);
  switch (f.op) {
    case 'exists':
      return (x !== null) === f.value;
    case 'eq':
      return eq(f.value);
    case 'neq':
      return !eq(f.value);
    case 'in':
      return (f.value as unknown[]).some(eq);
    case 'gt':
      return same(f.value) && (x as string | number) > operand(f.field, f.value as string);
    case 'lt':
      return same(f.value) && (x as string | number) < operand(f.field, f.value as string);
    case 'contains':
      return typeof x === 'string' && x.toLowerCase().includes((f.value as string).toLowerCase());
  }
  throw new Error(`unknown op ${f.op}`);
}

function matches(r: Row, f: Filter): boolean {
  if ('all' in f) return f.all.every((g) => matches(r, g));
  if ('any' in f) return f.any.some((g) => matches(r, g));
  if ('not' in f) return !matches(r, f.not);
  if ('consent' in f) {
    const c = f.consent;
    const state = r.spec.states[pairs.findIndex((p) => p.purpose === c.purpose && p.channel === c.channel)];
    if (!state) return c.status?.includes('none') ?? false;
    return (
      (c.status === undefined || (c.status as string[]).includes(state.status)) &&
      (c.proofGrade === undefined || (state.grade !== null && c.proofGrade.includes(state.grade)))
    );
  }
  if ('campaign' in f) {
    const index = (campaigns as readonly string[]).indexOf(f.campaign.key);
    const column = eventColumns[f.campaign.event];
    return index >= 0 && (r.spec.deliveries[index] ?? []).some((d) => d[column] !== null);
  }
  return matchField(r, f);
}

const inSegment = (r: Row, f: Filter) => !r.spec.erased && matches(r, f);

// ---- The property. -----------------------------------------------------------------------------

describe.each(dialects)('segment properties on %s', (dialect) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await buildTestApp(dialect, { now: NOW, env: { FORMER_CUSTOMER_AFTER_DAYS: String(FORMER_AFTER_DAYS) } });
    for (const [key, type] of [
      ['n', 'number'],
      ['b', 'boolean'],
      ['s', 'string'],
      ['d', 'date'],
    ]) {
      const res = await t.call('POST', '/v1/fields', { body: { key, type, purpose: 'commercial-email', retentionDays: 730 } });
      expect(res.statusCode).toBe(201);
    }
  });
  afterAll(async () => t?.close());

  async function store(specs: ContactSpec[]): Promise<Row[]> {
    const db = t.ctx.db.kysely;
    await db.deleteFrom('consent_states').execute();
    await db.deleteFrom('deliveries').execute();
    await db.deleteFrom('contacts').execute();
    const rows: Row[] = specs.map((spec, i) => ({
      id: `${t.ctx.newId().slice(0, 20)}${String(i).padStart(6, '0')}`,
      spec,
      email: spec.emailWord === null ? null : `${spec.emailWord}${i}@${spec.domain}`.toLowerCase(),
      phone: spec.phone ? `+3361234${String(i).padStart(4, '0')}` : null,
    }));
    if (rows.length === 0) return rows;
    const contacts: Array<Database['contacts']> = rows.map((r) => ({
      id: r.id,
      email: r.email,
      email_hash: null,
      phone: r.phone,
      phone_hash: null,
      first_name: null,
      last_name: null,
      locale: r.spec.locale,
      kind: r.spec.kind,
      lifecycle: r.spec.lifecycle,
      last_purchase_at: r.spec.lastPurchaseAt,
      source: r.spec.source,
      attributes: JSON.stringify(r.spec.attributes),
      created_at: r.spec.createdAt,
      updated_at: r.spec.createdAt,
      last_interaction_at: r.spec.lastInteractionAt,
      erased_at: r.spec.erased ? NOW : null,
    }));
    await db.insertInto('contacts').values(contacts).execute();
    const states = rows.flatMap((r) =>
      r.spec.states.flatMap((s, p) =>
        s === null
          ? []
          : [
              {
                contact_id: r.id,
                purpose_key: pairs[p]?.purpose as string,
                channel_key: pairs[p]?.channel as string,
                status: s.status,
                since: NOW,
                expires_at: null,
                confirmed: 0,
                purpose_version: 1,
                last_event_id: 'none',
                proof_grade: s.grade,
                updated_at: NOW,
              },
            ],
      ),
    );
    if (states.length > 0) await db.insertInto('consent_states').values(states).execute();
    const deliveries = rows.flatMap((r) =>
      r.spec.deliveries.flatMap((list, c) =>
        list.map((d, step) => ({
          campaign_key: campaigns[c] as string,
          step: step + 1,
          contact_id: r.id,
          template: 'first',
          status: d.sent_at ? 'sent' : 'queued',
          send_after: NOW,
          claimed_by: null,
          claimed_until: null,
          provider_ref: null,
          last_error: null,
          created_at: NOW,
          ...d,
        })),
      ),
    );
    if (deliveries.length > 0) await db.insertInto('deliveries').values(deliveries).execute();
    return rows;
  }

  it('selects what the filter means, in one query', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(contactArb, { minLength: 4, maxLength: 16 }),
        fc.array(filterArb, { minLength: 1, maxLength: 6 }),
        async (specs, filters) => {
          const rows = await store(specs);
          for (const filter of filters) {
            // Every generated filter is valid, and validation keeps it as it is.
            expect(validateFilter(filter)).toEqual(filter);
            await checkFilter(t.ctx, filter);
            const got = await t.ctx.db.kysely
              .selectFrom('contacts as c')
              .select('c.id')
              .where(segmentWhere(filter, 'c', segmentScope(t.ctx)))
              .orderBy('c.id')
              .execute();
            const expected = rows.filter((r) => inSegment(r, filter)).map((r) => r.id);
            expect({ filter, ids: got.map((g) => g.id).sort() }).toEqual({ filter, ids: expected.sort() });
          }
        },
      ),
      { numRuns: dialect === 'sqlite' ? 50 : 40, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: false },
    );
  });
});

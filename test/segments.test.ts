// Segments: saved filters over contacts, their consent states and campaign interactions, compiled
// to one SQL query — CRUD, count, paging, every operator and condition, bad filters that write
// nothing, erased contacts left out — on every store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, record, rowCounts } from './helpers/factories.ts';

type Named = 'ann' | 'bob' | 'cat' | 'dan' | 'eve' | 'erased';

/** Everything a test needs to name contacts and read results. */
interface World {
  ids: Record<Named, string>;
  names: Map<string, Named>;
}

const NOW = '2026-11-22T10:00:00.000Z';

describe.each(dialects)('segments on %s', (dialect) => {
  let t: TestApp;
  let w: World;

  async function segmentCount(): Promise<number> {
    const row = await t.ctx.db.kysely
      .selectFrom('segments')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Every contact of a saved segment, walking the cursor. */
  async function walk(key: string, limit: number): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 100; page += 1) {
      const res = await t.call('GET', `/v1/segments/${key}/contacts?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, {
        key: t.keys.read,
      });
      expect(res.statusCode).toBe(200);
      const body = res.json() as { items: Array<{ id: string }>; nextCursor: string | null };
      expect(body.items.length).toBeLessThanOrEqual(limit);
      ids.push(...body.items.map((c) => c.id));
      cursor = body.nextCursor;
      if (!cursor) return ids;
    }
    throw new Error('the cursor never ended');
  }

  /** The names of the contacts a filter selects (through a scratch segment), and its count. */
  async function members(filter: unknown): Promise<Named[]> {
    const res = await t.call('PUT', '/v1/segments/scratch', { body: { name: 'Scratch', filter } });
    expect({ status: res.statusCode, body: res.json() }).toMatchObject({ status: 200 });
    const ids = await walk('scratch', 500);
    const count = (await t.call('GET', '/v1/segments/scratch/count')).json().count;
    expect(count).toBe(ids.length);
    const preview = await t.call('POST', '/v1/segments/preview', { body: { filter }, key: t.keys.read });
    expect(preview.json()).toEqual({ count });
    return ids.map((id) => w.names.get(id) ?? (id as Named)).sort();
  }

  beforeAll(async () => {
    t = await buildTestApp(dialect, { now: NOW });
    for (const [key, type] of [
      ['points', 'number'],
      ['vip', 'boolean'],
      ['city', 'string'],
      ['memberSince', 'date'],
    ]) {
      const res = await t.call('POST', '/v1/fields', { body: { key, type, purpose: 'commercial-email', retentionDays: 730 } });
      expect(res.statusCode).toBe(201);
    }
    const at = (iso: string) => t.clock.set(iso);
    at('2026-01-10T08:00:00.000Z');
    const ann = await createContact(t, {
      email: 'ann@example.com',
      locale: 'fr',
      source: 'Shop Paris',
      attributes: { points: 10, vip: true, city: 'Paris', memberSince: '2024-01-10' },
    });
    at('2026-03-01T08:00:00.000Z');
    const bob = await createContact(t, {
      email: 'bob@example.org',
      locale: 'en',
      kind: 'professional',
      source: 'fair_100%',
      lastPurchaseAt: '2026-10-01',
      attributes: { points: 3.5, vip: false, city: 'Lyon' },
    });
    at('2026-05-01T08:00:00.000Z');
    // Stored as a customer; the last purchase is old enough to make a former customer.
    const cat = await createContact(t, { email: null, phone: '+33612345678', locale: null, lastPurchaseAt: '2024-06-01', attributes: {} });
    at('2026-07-01T08:00:00.000Z');
    const dan = await createContact(t, { email: 'dan@example.com', lifecycle: 'customer', attributes: { points: 100, city: 'paris' } });
    at('2026-09-01T08:00:00.000Z');
    const eve = await createContact(t, { email: 'eve@example.net', source: 'import', attributes: { memberSince: '2025-06-30' } });
    const erased = await createContact(t, { email: 'gone@example.com', source: 'Shop Paris', attributes: { points: 10 } });
    at(NOW);

    // Consent: ann granted (weak proof), bob withdrawn, dan granted, eve refused; cat nothing; sms for dan.
    for (const [id, action] of [
      [ann.id, 'grant'],
      [bob.id, 'grant'],
      [bob.id, 'withdraw'],
      [dan.id, 'grant'],
      [eve.id, 'refuse'],
      [erased.id, 'grant'],
    ] as const) {
      await record(t, { contactId: id, purpose: 'commercial-email', channel: 'email', action });
    }
    await record(t, { contactId: dan.id, purpose: 'commercial-sms', channel: 'sms', action: 'grant' });
    await t.ctx.db.kysely
      .updateTable('consent_states')
      .set({ proof_grade: 'weak' })
      .where('contact_id', '=', ann.id)
      .where('purpose_key', '=', 'commercial-email')
      .execute();
    await t.ctx.db.kysely
      .updateTable('consent_states')
      .set({ proof_grade: 'strong' })
      .where('contact_id', '=', dan.id)
      .where('purpose_key', '=', 'commercial-email')
      .execute();

    // A campaign (it needs a segment) and its deliveries: ann received and clicked, bob received
    // and bounced, cat queued only; eve received another campaign.
    const seg = await t.call('POST', '/v1/segments', { body: { key: 'scratch', name: 'Scratch', filter: { all: [] } } });
    expect(seg.statusCode).toBe(201);
    for (const key of ['spring', 'autumn']) {
      await t.ctx.db.kysely
        .insertInto('campaigns')
        .values({
          key,
          name: key,
          segment_key: 'scratch',
          purposes: JSON.stringify(['commercial-email']),
          channel_key: 'email',
          templates: JSON.stringify({ first: 'repermission-first', reminder: 'repermission-reminder' }),
          start_at: '2026-11-01T00:00:00.000Z',
          cadence_days: 7,
          deadline: '2026-12-31T00:00:00.000Z',
          max_sends: 3,
          confirmation: 'button',
          at_deadline: 'report',
          add_newcomers: 0,
          status: 'running',
          launch_report: null,
          launched_at: '2026-11-01T00:00:00.000Z',
          closed_at: null,
          created_at: NOW,
          updated_at: NOW,
        })
        .execute();
    }
    const delivery = (campaign: string, contact: string, events: Record<string, string | null>) => ({
      campaign_key: campaign,
      step: 1,
      contact_id: contact,
      template: 'first',
      status: events.sent_at ? 'sent' : 'queued',
      send_after: '2026-11-01T00:00:00.000Z',
      claimed_by: null,
      claimed_until: null,
      sent_at: null,
      provider_ref: null,
      last_error: null,
      clicked_at: null,
      confirmed_at: null,
      unsubscribed_at: null,
      bounced_at: null,
      created_at: '2026-11-01T00:00:00.000Z',
      ...events,
    });
    const sent = '2026-11-01T09:00:00.000Z';
    await t.ctx.db.kysely
      .insertInto('deliveries')
      .values([
        delivery('spring', ann.id, { sent_at: sent, clicked_at: '2026-11-02T09:00:00.000Z', confirmed_at: '2026-11-02T09:01:00.000Z' }),
        delivery('spring', bob.id, { sent_at: sent, bounced_at: '2026-11-01T09:05:00.000Z' }),
        delivery('spring', cat.id, {}),
        delivery('spring', erased.id, { sent_at: sent, clicked_at: sent }),
        delivery('autumn', eve.id, { sent_at: sent, unsubscribed_at: '2026-11-03T09:00:00.000Z' }),
      ])
      .execute();

    expect((await t.call('DELETE', `/v1/contacts/${erased.id}`)).statusCode).toBe(204);

    const ids = { ann: ann.id, bob: bob.id, cat: cat.id, dan: dan.id, eve: eve.id, erased: erased.id };
    w = { ids, names: new Map(Object.entries(ids).map(([name, id]) => [id, name as Named])) };
  });
  afterAll(async () => t?.close());

  describe('POST, GET, PUT /v1/segments', () => {
    const optinNo = { consent: { purpose: 'commercial-email', channel: 'email', status: ['none', 'withdrawn'] } };

    it('saves a segment and answers it', async () => {
      const res = await t.call('POST', '/v1/segments', {
        body: { key: 'optin-no', name: 'Optin = No', filter: optinNo },
        key: t.keys.write,
      });
      expect(res.statusCode).toBe(201);
      expect(res.json()).toEqual({ key: 'optin-no', name: 'Optin = No', filter: optinNo, createdAt: NOW, updatedAt: NOW });
      const got = await t.call('GET', '/v1/segments/optin-no', { key: t.keys.read });
      expect(got.statusCode).toBe(200);
      expect(got.json()).toEqual(res.json());
    });

    it('lists segments by key', async () => {
      const res = await t.call('GET', '/v1/segments', { key: t.keys.read });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.nextCursor).toBeNull();
      expect(body.items.map((s: { key: string }) => s.key)).toEqual(['optin-no', 'scratch']);
    });

    it('counts the seeds’ "Optin = No" segment', async () => {
      const res = await t.call('GET', '/v1/segments/optin-no/count', { key: t.keys.read });
      expect(res.statusCode).toBe(200);
      // cat (nothing recorded) and bob (withdrawn); erased contacts never count.
      expect(res.json()).toEqual({ count: 2 });
    });

    it('refuses a key that is taken', async () => {
      const before = await segmentCount();
      const res = await t.call('POST', '/v1/segments', { body: { key: 'optin-no', name: 'Again', filter: { all: [] } } });
      expect(res.statusCode).toBe(409);
      expect(res.json()).toMatchObject({ code: 'key_exists', type: 'urn:assent:problem:key_exists' });
      expect(await segmentCount()).toBe(before);
    });

    it('replaces the name and the filter', async () => {
      t.clock.set('2026-11-23T10:00:00.000Z');
      const filter = { field: 'lifecycle', op: 'eq', value: 'prospect' };
      const res = await t.call('PUT', '/v1/segments/optin-no', { body: { name: 'Prospects', filter } });
      t.clock.set(NOW);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({
        key: 'optin-no',
        name: 'Prospects',
        filter,
        createdAt: NOW,
        updatedAt: '2026-11-23T10:00:00.000Z',
      });
      expect((await t.call('GET', '/v1/segments/optin-no')).json().filter).toEqual(filter);
      const back = await t.call('PUT', '/v1/segments/optin-no', { body: { key: 'optin-no', name: 'Optin = No', filter: optinNo } });
      expect(back.statusCode).toBe(200);
    });

    it('refuses a body key that is not the path’s', async () => {
      const res = await t.call('PUT', '/v1/segments/optin-no', { body: { key: 'other', name: 'X', filter: { all: [] } } });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors).toEqual([{ path: '/body/key', message: 'must be "optin-no"' }]);
    });

    it('answers 404 for a segment that does not exist', async () => {
      for (const [method, url, body] of [
        ['GET', '/v1/segments/nope', undefined],
        ['GET', '/v1/segments/nope/count', undefined],
        ['GET', '/v1/segments/nope/contacts', undefined],
        ['PUT', '/v1/segments/nope', { name: 'Nope', filter: { all: [] } }],
      ] as const) {
        const res = await t.call(method, url, body ? { body } : {});
        expect(res.statusCode).toBe(404);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(res.json()).toMatchObject({ code: 'segment_not_found', type: 'urn:assent:problem:segment_not_found' });
      }
      expect(await segmentCount()).toBe(2);
    });

    it('needs a write key to save and a key to read', async () => {
      const body = { key: 'by-reader', name: 'No', filter: { all: [] } };
      expect((await t.call('POST', '/v1/segments', { body, key: t.keys.read })).statusCode).toBe(403);
      expect((await t.call('PUT', '/v1/segments/scratch', { body: { name: 'x', filter: { all: [] } }, key: t.keys.read })).statusCode).toBe(
        403,
      );
      expect((await t.call('GET', '/v1/segments', { key: null })).statusCode).toBe(401);
      expect((await t.call('GET', '/v1/segments/scratch/contacts', { key: null })).statusCode).toBe(401);
    });

    it('documents the routes in OpenAPI', async () => {
      const spec = (await t.call('GET', '/openapi.json', { key: null })).json();
      for (const path of [
        '/v1/segments',
        '/v1/segments/{key}',
        '/v1/segments/{key}/count',
        '/v1/segments/{key}/contacts',
        '/v1/segments/preview',
      ]) {
        expect(spec.paths[path], path).toBeDefined();
      }
    });
  });

  describe('GET /v1/segments/{key}/contacts', () => {
    it('walks every member once, in id order, whatever the page size', async () => {
      await t.call('PUT', '/v1/segments/scratch', { body: { name: 'Everyone', filter: { all: [] } } });
      const everyone = Object.entries(w.ids)
        .filter(([name]) => name !== 'erased')
        .map(([, id]) => id)
        .sort();
      for (const limit of [1, 2, 3, 5, 50]) expect(await walk('scratch', limit)).toEqual(everyone);
    });

    it('answers contacts as the contacts API does', async () => {
      const page = (await t.call('GET', '/v1/segments/scratch/contacts?limit=500')).json();
      const one = (await t.call('GET', `/v1/contacts/${w.ids.ann}`)).json();
      expect(page.items.find((c: { id: string }) => c.id === w.ids.ann)).toEqual(one);
      const cat = page.items.find((c: { id: string }) => c.id === w.ids.cat);
      expect(cat.lifecycle).toBe('former_customer');
    });

    it('refuses a bad limit', async () => {
      for (const limit of ['0', 'abc', '1000']) {
        const res = await t.call('GET', `/v1/segments/scratch/contacts?limit=${limit}`);
        expect(res.statusCode).toBe(400);
      }
    });
  });

  describe('field conditions', () => {
    it('eq / neq / in on lifecycle (derived from the last purchase) and kind', async () => {
      expect(await members({ field: 'lifecycle', op: 'eq', value: 'prospect' })).toEqual(['ann', 'eve']);
      expect(await members({ field: 'lifecycle', op: 'eq', value: 'former_customer' })).toEqual(['cat']);
      expect(await members({ field: 'lifecycle', op: 'in', value: ['customer', 'former_customer'] })).toEqual(['bob', 'cat', 'dan']);
      expect(await members({ field: 'lifecycle', op: 'neq', value: 'customer' })).toEqual(['ann', 'cat', 'eve']);
      expect(await members({ field: 'kind', op: 'eq', value: 'professional' })).toEqual(['bob']);
    });

    it('eq / neq / in / exists on text fields (neq keeps contacts without a value)', async () => {
      expect(await members({ field: 'email', op: 'eq', value: 'Ann@Example.com' })).toEqual(['ann']);
      expect(await members({ field: 'locale', op: 'neq', value: 'fr' })).toEqual(['bob', 'cat']);
      expect(await members({ field: 'source', op: 'in', value: ['import', 'Shop Paris'] })).toEqual(['ann', 'eve']);
      expect(await members({ field: 'phone', op: 'exists', value: true })).toEqual(['cat']);
      expect(await members({ field: 'email', op: 'exists', value: false })).toEqual(['cat']);
      expect(await members({ field: 'source', op: 'exists', value: false })).toEqual(['cat', 'dan']);
    });

    it('contains is a case-insensitive substring, wildcards taken literally', async () => {
      expect(await members({ field: 'email', op: 'contains', value: 'EXAMPLE.COM' })).toEqual(['ann', 'dan']);
      expect(await members({ field: 'source', op: 'contains', value: 'shop' })).toEqual(['ann']);
      expect(await members({ field: 'source', op: 'contains', value: '_100%' })).toEqual(['bob']);
      expect(await members({ field: 'source', op: 'contains', value: '%' })).toEqual(['bob']);
      expect(await members({ field: 'source', op: 'contains', value: 'fai_' })).toEqual([]);
    });

    it('gt / lt / eq / exists on dates (a plain date is midnight UTC)', async () => {
      expect(await members({ field: 'createdAt', op: 'lt', value: '2026-03-01' })).toEqual(['ann']);
      expect(await members({ field: 'createdAt', op: 'gt', value: '2026-05-01T08:00:00Z' })).toEqual(['dan', 'eve']);
      expect(await members({ field: 'createdAt', op: 'eq', value: '2026-05-01T10:00:00+02:00' })).toEqual(['cat']);
      expect(await members({ field: 'lastPurchaseAt', op: 'exists', value: true })).toEqual(['bob', 'cat']);
      expect(await members({ field: 'lastPurchaseAt', op: 'gt', value: '2025-01-01' })).toEqual(['bob']);
      expect(await members({ field: 'lastInteractionAt', op: 'exists', value: false })).toHaveLength(5);
    });

    it('compares declared attributes by their type', async () => {
      expect(await members({ field: 'attributes.points', op: 'gt', value: 3.5 })).toEqual(['ann', 'dan']);
      expect(await members({ field: 'attributes.points', op: 'lt', value: 10 })).toEqual(['bob']);
      expect(await members({ field: 'attributes.points', op: 'eq', value: 3.5 })).toEqual(['bob']);
      expect(await members({ field: 'attributes.points', op: 'in', value: [10, 100] })).toEqual(['ann', 'dan']);
      expect(await members({ field: 'attributes.points', op: 'neq', value: 10 })).toEqual(['bob', 'cat', 'dan', 'eve']);
      expect(await members({ field: 'attributes.vip', op: 'eq', value: true })).toEqual(['ann']);
      expect(await members({ field: 'attributes.vip', op: 'eq', value: false })).toEqual(['bob']);
      expect(await members({ field: 'attributes.vip', op: 'neq', value: true })).toEqual(['bob', 'cat', 'dan', 'eve']);
      expect(await members({ field: 'attributes.vip', op: 'exists', value: true })).toEqual(['ann', 'bob']);
      expect(await members({ field: 'attributes.city', op: 'eq', value: 'Paris' })).toEqual(['ann']);
      expect(await members({ field: 'attributes.city', op: 'contains', value: 'PAR' })).toEqual(['ann', 'dan']);
      expect(await members({ field: 'attributes.city', op: 'in', value: ['Lyon', 'paris'] })).toEqual(['bob', 'dan']);
      expect(await members({ field: 'attributes.memberSince', op: 'lt', value: '2025-01-01' })).toEqual(['ann']);
      expect(await members({ field: 'attributes.memberSince', op: 'exists', value: false })).toEqual(['bob', 'cat', 'dan']);
    });

    it('combines with all, any and not', async () => {
      expect(
        await members({
          all: [
            { field: 'lifecycle', op: 'eq', value: 'prospect' },
            {
              any: [
                { field: 'attributes.points', op: 'exists', value: true },
                { field: 'source', op: 'eq', value: 'import' },
              ],
            },
          ],
        }),
      ).toEqual(['ann', 'eve']);
      // not over a field some contacts lack: the complement, nothing lost to NULL.
      expect(await members({ not: { field: 'source', op: 'eq', value: 'import' } })).toEqual(['ann', 'bob', 'cat', 'dan']);
      expect(await members({ not: { field: 'attributes.points', op: 'gt', value: 5 } })).toEqual(['bob', 'cat', 'eve']);
      expect(await members({ not: { all: [] } })).toEqual([]);
      expect(await members({ any: [{ not: { field: 'kind', op: 'eq', value: 'person' } }] })).toEqual(['bob']);
    });
  });

  describe('consent conditions', () => {
    const email = (extra: Record<string, unknown>) => ({ consent: { purpose: 'commercial-email', channel: 'email', ...extra } });

    it('matches statuses, "none" being nothing recorded', async () => {
      expect(await members(email({ status: ['granted'] }))).toEqual(['ann', 'dan']);
      expect(await members(email({ status: ['none'] }))).toEqual(['cat']);
      expect(await members(email({ status: ['none', 'withdrawn'] }))).toEqual(['bob', 'cat']);
      expect(await members(email({ status: ['refused', 'pending'] }))).toEqual(['eve']);
      expect(await members({ consent: { purpose: 'commercial-sms', channel: 'sms', status: ['none'] } })).toEqual([
        'ann',
        'bob',
        'cat',
        'eve',
      ]);
      expect(await members({ not: email({ status: ['granted'] }) })).toEqual(['bob', 'cat', 'eve']);
    });

    it('matches proof grades, alone or with statuses', async () => {
      expect(await members(email({ proofGrade: ['weak'] }))).toEqual(['ann']);
      expect(await members(email({ proofGrade: ['weak', 'strong'] }))).toEqual(['ann', 'dan']);
      expect(await members(email({ status: ['withdrawn'], proofGrade: ['weak'] }))).toEqual([]);
      // proofGrade narrows the recorded states; "none" still means nothing recorded.
      expect(await members(email({ status: ['none', 'granted'], proofGrade: ['weak'] }))).toEqual(['ann', 'cat']);
    });
  });

  describe('campaign conditions', () => {
    const spring = (event: string) => ({ campaign: { key: 'spring', event } });

    it('matches what each contact did with a campaign', async () => {
      expect(await members(spring('received'))).toEqual(['ann', 'bob']);
      expect(await members(spring('clicked'))).toEqual(['ann']);
      expect(await members(spring('confirmed'))).toEqual(['ann']);
      expect(await members(spring('bounced'))).toEqual(['bob']);
      expect(await members(spring('unsubscribed'))).toEqual([]);
      expect(await members({ campaign: { key: 'autumn', event: 'unsubscribed' } })).toEqual(['eve']);
      expect(await members({ campaign: { key: 'never-sent', event: 'received' } })).toEqual([]);
      expect(await members({ all: [spring('received'), { not: spring('clicked') }] })).toEqual(['bob']);
    });
  });

  describe('erased contacts', () => {
    it('are in no segment, whatever the filter', async () => {
      const erased = w.ids.erased;
      for (const filter of [
        { all: [] },
        { field: 'source', op: 'eq', value: 'Shop Paris' },
        { campaign: { key: 'spring', event: 'clicked' } },
        { consent: { purpose: 'commercial-email', channel: 'email', status: ['granted', 'withdrawn', 'none'] } },
        { not: { field: 'kind', op: 'eq', value: 'professional' } },
      ]) {
        await t.call('PUT', '/v1/segments/scratch', { body: { name: 'Scratch', filter } });
        expect(await walk('scratch', 500)).not.toContain(erased);
      }
    });
  });

  describe('bad filters', () => {
    const cases: Array<{ name: string; filter: unknown; path: string }> = [
      { name: 'not an object', filter: 'lifecycle = prospect', path: '/filter' },
      { name: 'an array at the root', filter: [], path: '/filter' },
      { name: 'no condition', filter: { foo: 1 }, path: '/filter' },
      { name: 'two conditions in one node', filter: { all: [], any: [] }, path: '/filter' },
      { name: 'all that is not an array', filter: { all: {} }, path: '/filter/all' },
      { name: 'an empty any', filter: { any: [] }, path: '/filter/any' },
      { name: 'an unknown field', filter: { all: [{ field: 'shoeSize', op: 'eq', value: 1 }] }, path: '/filter/all/0/field' },
      {
        name: 'an unknown operator',
        filter: {
          all: [
            { field: 'kind', op: 'eq', value: 'person' },
            { field: 'lifecycle', op: 'like', value: 'x' },
          ],
        },
        path: '/filter/all/1/op',
      },
      { name: 'an operator the field does not take', filter: { field: 'createdAt', op: 'contains', value: '2026' }, path: '/filter/op' },
      { name: 'a value of the wrong type', filter: { field: 'email', op: 'eq', value: 3 }, path: '/filter/value' },
      { name: 'a lifecycle that does not exist', filter: { field: 'lifecycle', op: 'eq', value: 'lead' }, path: '/filter/value' },
      { name: 'a missing value', filter: { field: 'locale', op: 'eq' }, path: '/filter/value' },
      { name: 'in without an array', filter: { field: 'kind', op: 'in', value: 'person' }, path: '/filter/value' },
      { name: 'in with a bad item', filter: { field: 'kind', op: 'in', value: ['person', 'robot'] }, path: '/filter/value/1' },
      { name: 'exists without a boolean', filter: { field: 'phone', op: 'exists', value: 'yes' }, path: '/filter/value' },
      { name: 'a date that is not one', filter: { field: 'createdAt', op: 'gt', value: '2026-02-30' }, path: '/filter/value' },
      { name: 'an extra key in a field condition', filter: { field: 'kind', op: 'eq', value: 'person', nope: 1 }, path: '/filter/nope' },
      { name: 'an undeclared attribute', filter: { field: 'attributes.shoeSize', op: 'gt', value: 40 }, path: '/filter/field' },
      {
        name: 'an attribute value of the wrong type',
        filter: { field: 'attributes.points', op: 'eq', value: 'ten' },
        path: '/filter/value',
      },
      { name: 'an operator the attribute type does not take', filter: { field: 'attributes.vip', op: 'gt', value: 1 }, path: '/filter/op' },
      {
        name: 'an unknown purpose',
        filter: { not: { consent: { purpose: 'nope', channel: 'email', status: ['none'] } } },
        path: '/filter/not/consent/purpose',
      },
      {
        name: 'an unknown channel',
        filter: { consent: { purpose: 'commercial-email', channel: 'pigeon', status: ['none'] } },
        path: '/filter/consent/channel',
      },
      {
        name: 'an unknown consent status',
        filter: { consent: { purpose: 'commercial-email', channel: 'email', status: ['none', 'maybe'] } },
        path: '/filter/consent/status/1',
      },
      {
        name: 'a consent condition without status nor proofGrade',
        filter: { consent: { purpose: 'commercial-email', channel: 'email' } },
        path: '/filter/consent',
      },
      {
        name: 'an extra key in a consent condition',
        filter: { consent: { purpose: 'commercial-email', channel: 'email', status: ['none'], since: '2026' } },
        path: '/filter/consent/since',
      },
      { name: 'an unknown campaign event', filter: { campaign: { key: 'spring', event: 'opened' } }, path: '/filter/campaign/event' },
      { name: 'a campaign without a key', filter: { campaign: { event: 'clicked' } }, path: '/filter/campaign/key' },
      {
        name: 'a filter nested too deep',
        filter: Array.from({ length: 11 }).reduce<unknown>((inner) => ({ not: inner }), { field: 'kind', op: 'eq', value: 'person' }),
        path: '/filter/not/not/not/not/not/not/not/not/not/not',
      },
      {
        name: 'too many conditions',
        filter: { any: Array.from({ length: 200 }, () => ({ field: 'kind', op: 'eq', value: 'person' })) },
        path: '/filter',
      },
    ];

    it('accepts the limits themselves: 10 levels and 200 conditions', async () => {
      const deep = Array.from({ length: 9 }).reduce<unknown>((inner) => ({ not: inner }), { field: 'kind', op: 'eq', value: 'person' });
      expect(await members(deep)).toEqual(['bob']);
      const wide = { any: Array.from({ length: 199 }, () => ({ field: 'kind', op: 'eq', value: 'professional' })) };
      expect(await members(wide)).toEqual(['bob']);
    });

    it.each(cases)('refuses $name with a path', async (c) => {
      const before = { ...(await rowCounts(t)), segments: await segmentCount() };
      const saved = (await t.call('GET', '/v1/segments/scratch')).json();
      for (const [method, url, body] of [
        ['POST', '/v1/segments', { key: 'bad-one', name: 'Bad', filter: c.filter }],
        ['PUT', '/v1/segments/scratch', { name: 'Bad', filter: c.filter }],
        ['POST', '/v1/segments/preview', { filter: c.filter }],
      ] as const) {
        const res = await t.call(method, url, { body });
        expect({ status: res.statusCode, url, body: res.json() }).toMatchObject({ status: 400 });
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        const problem = res.json();
        expect(problem).toMatchObject({ code: 'segment_invalid', type: 'urn:assent:problem:segment_invalid', status: 400 });
        expect(problem.errors.map((e: { path: string }) => e.path)).toContain(c.path);
        for (const e of problem.errors) expect(e.message.length).toBeGreaterThan(0);
      }
      expect({ ...(await rowCounts(t)), segments: await segmentCount() }).toEqual(before);
      expect((await t.call('GET', '/v1/segments/scratch')).json()).toEqual(saved);
    });

    it('names every fault of one filter', async () => {
      const res = await t.call('POST', '/v1/segments/preview', {
        body: {
          filter: {
            all: [
              { field: 'nope', op: 'eq', value: 1 },
              { field: 'kind', op: 'gt', value: 1 },
              { consent: { purpose: 'commercial-email', channel: 'email', status: 'none' } },
            ],
          },
        },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors.map((e: { path: string }) => e.path)).toEqual([
        '/filter/all/0/field',
        '/filter/all/1/op',
        '/filter/all/2/consent/status',
      ]);
    });

    it('refuses a body without a filter or a name, as any bad body', async () => {
      const res = await t.call('POST', '/v1/segments', { body: { key: 'no-filter', name: 'No filter' } });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'validation_failed' });
      expect(res.json().errors.map((e: { path: string }) => e.path)).toContain('/body/filter');
      const badKey = await t.call('POST', '/v1/segments', { body: { key: 'Bad Key', name: 'x', filter: { all: [] } } });
      expect(badKey.statusCode).toBe(400);
    });
  });
});

// API keys: every /v1 route needs one, scopes nest (read < write < admin), revocation bites at
// once in the process that revoked, and the store keeps only a hash (issue 3, point 9).
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, revokeKey } from '../src/modules/auth/index.ts';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { buildContact, createContact, rowCounts } from './helpers/factories.ts';

type Res = Awaited<ReturnType<TestApp['call']>>;

function expectProblem(res: Res, status: number, code: string): void {
  expect({ status: res.statusCode, body: res.body.slice(0, 300) }).toMatchObject({ status });
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const problem = res.json();
  expect(problem).toMatchObject({ status, code, type: `urn:assent:problem:${code}` });
  expect(problem.title).toEqual(expect.any(String));
  expect(problem.detail).toEqual(expect.any(String));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(dialects)('API keys on %s', (dialect) => {
  let t: TestApp;
  let contactId: string;
  /** Every operation the OpenAPI document lists, with path parameters filled in. */
  let operations: Array<{ method: string; url: string; template: string }>;

  beforeAll(async () => {
    t = await buildTestApp(dialect);
    contactId = (await createContact(t)).id;
    const spec = (await t.call('GET', '/openapi.json', { key: null })).json() as { paths: Record<string, Record<string, unknown>> };
    operations = [];
    for (const [template, item] of Object.entries(spec.paths)) {
      for (const method of Object.keys(item)) {
        if (!['get', 'post', 'patch', 'put', 'delete'].includes(method)) continue;
        const url = template.replace('{id}', contactId).replace('{key}', 'commercial-email');
        operations.push({ method: method.toUpperCase(), url, template });
      }
    }
  });
  afterAll(async () => t?.close());

  describe('without a key', () => {
    it('documents every route family, so the sweep below covers them', () => {
      const listed = operations.map((o) => `${o.method} ${o.template}`);
      for (const op of [
        'GET /v1/contacts',
        'POST /v1/contacts',
        'GET /v1/contacts/{id}',
        'PATCH /v1/contacts/{id}',
        'DELETE /v1/contacts/{id}',
        'GET /v1/contacts/{id}/consents',
        'GET /v1/contacts/{id}/consents/history',
        'GET /v1/contacts/{id}/proof',
        'POST /v1/consents',
        'GET /v1/decisions',
        'POST /v1/decisions',
        'GET /v1/purposes',
        'POST /v1/purposes',
        'GET /v1/purposes/{key}',
        'PATCH /v1/purposes/{key}',
        'GET /v1/channels',
        'POST /v1/channels',
        'PATCH /v1/channels/{key}',
        'GET /v1/fields',
        'POST /v1/fields',
        'POST /v1/suppressions',
        'GET /v1/ledger/verify',
      ]) {
        expect(listed).toContain(op);
      }
      expect(operations.every((o) => o.template.startsWith('/v1/'))).toBe(true);
    });

    it('answers 401 problem+json on every /v1 route', async () => {
      const before = await rowCounts(t);
      const failures: string[] = [];
      for (const op of operations) {
        const body = op.method === 'GET' || op.method === 'DELETE' ? undefined : { email: 'nokey@example.com' };
        const res = await t.call(op.method, op.url, { key: null, ...(body ? { body } : {}) });
        if (
          res.statusCode !== 401 ||
          !String(res.headers['content-type']).startsWith('application/problem+json') ||
          res.json().code !== 'unauthorized'
        ) {
          failures.push(`${op.method} ${op.template} → ${res.statusCode} ${res.body.slice(0, 120)}`);
        }
      }
      expect(failures).toEqual([]);
      expect(operations.length).toBeGreaterThanOrEqual(22);
      expect(await rowCounts(t)).toEqual(before);
      // The contact was neither read-protected in vain nor deleted: it is still there with a key.
      expect((await t.call('GET', `/v1/contacts/${contactId}`, { key: t.keys.read })).statusCode).toBe(200);
    });

    it('answers 401 with the problem shape on a write route', async () => {
      expectProblem(await t.call('POST', '/v1/contacts', { key: null, body: buildContact() }), 401, 'unauthorized');
    });
  });

  describe('a malformed or wrong key', () => {
    const malformed: Array<[string, (keys: TestApp['keys']) => Record<string, string>]> = [
      ['an empty bearer', () => ({ authorization: 'Bearer ' })],
      ['random text', () => ({ authorization: 'Bearer not-a-key' })],
      ['a key with a space inside', (k) => ({ authorization: `Bearer ${k.admin.slice(0, 20)} ${k.admin.slice(20)}` })],
      ['a truncated key', (k) => ({ authorization: `Bearer ${k.admin.slice(0, -1)}` })],
      [
        'a well-formed key whose secret part is wrong',
        (k) => ({ authorization: `Bearer ${k.admin.slice(0, -4)}${k.admin.endsWith('AAAA') ? 'BBBB' : 'AAAA'}` }),
      ],
      ['a well-formed key that was never issued', () => ({ authorization: `Bearer ak_01JAAAAAAAAAAAAAAAAAAAAAAA_${'A'.repeat(43)}` })],
      ['Basic instead of Bearer', (k) => ({ authorization: `Basic ${Buffer.from(`user:${k.admin}`).toString('base64')}` })],
      ['a malformed X-Api-Key header', () => ({ 'x-api-key': 'ak_short' })],
    ];

    it.each(malformed)('refuses %s with 401', async (_name, headers) => {
      const res = await t.call('GET', `/v1/contacts/${contactId}`, { key: null, headers: headers(t.keys) });
      expectProblem(res, 401, 'unauthorized');
      expect(res.body).not.toContain('Camille');
    });

    it('refuses a wrong secret for a key it has just accepted (cached), and still accepts the right one', async () => {
      const url = `/v1/decisions?contactId=${contactId}&purpose=commercial-email&channel=email`;
      const wrong = `${t.keys.read.slice(0, -4)}${t.keys.read.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
      for (let round = 0; round < 3; round += 1) {
        expect((await t.call('GET', url, { key: t.keys.read })).statusCode).toBe(200);
        expectProblem(await t.call('GET', url, { key: wrong }), 401, 'unauthorized');
        expectProblem(await t.call('GET', url, { key: `${t.keys.read}x` }), 401, 'unauthorized');
      }
      expect((await t.call('GET', url, { key: t.keys.read })).statusCode).toBe(200);
    });

    it('refuses with 401, not a 500, a key whose stored hash is damaged', async () => {
      const name = `damaged-${dialect}`;
      const { key } = await createKey(t.ctx, { name, scope: 'read' });
      await t.ctx.db.kysely.updateTable('api_keys').set({ key_hash: 'abcd' }).where('name', '=', name).execute();
      const url = `/v1/decisions?contactId=${contactId}&purpose=commercial-email&channel=email`;
      expectProblem(await t.call('GET', url, { key }), 401, 'unauthorized');
    });

    it('checks the key on the HEAD twin of a GET route as on the GET', async () => {
      const url = `/v1/decisions?contactId=${contactId}&purpose=commercial-email&channel=email`;
      expect((await t.call('HEAD', url, { key: null })).statusCode).toBe(401);
      expect((await t.call('HEAD', url, { key: 'not-a-key' })).statusCode).toBe(401);
      expect((await t.call('HEAD', url, { key: t.keys.read })).statusCode).toBe(200);
      expect((await t.call('HEAD', '/v1/contacts', { key: t.keys.read })).statusCode).toBe(200);
    });

    it('accepts the same key well-formed, by Bearer and by X-Api-Key', async () => {
      expect((await t.call('GET', `/v1/contacts/${contactId}`, { key: t.keys.read })).statusCode).toBe(200);
      expect((await t.call('GET', `/v1/contacts/${contactId}`, { key: null, headers: { 'x-api-key': t.keys.read } })).statusCode).toBe(200);
    });
  });

  describe('a revoked key', () => {
    it('is refused at once in the process that revoked it, although it was just used (cached)', async () => {
      const { key } = await createKey(t.ctx, { name: 'soon-revoked', scope: 'write' });
      const first = await t.call('POST', '/v1/contacts', { key, body: buildContact() });
      expect(first.statusCode).toBe(201);
      await revokeKey(t.ctx, 'soon-revoked');
      const before = await rowCounts(t);
      expectProblem(await t.call('POST', '/v1/contacts', { key, body: buildContact() }), 401, 'unauthorized');
      expectProblem(await t.call('GET', `/v1/contacts/${contactId}`, { key }), 401, 'unauthorized');
      expect(await rowCounts(t)).toEqual(before);
    });

    it('is refused by another process within two seconds (the cache ages out)', async () => {
      const { key } = await createKey(t.ctx, { name: 'revoked-elsewhere', scope: 'read' });
      expect((await t.call('GET', `/v1/contacts/${contactId}`, { key })).statusCode).toBe(200);
      // Another process revokes it: straight in the store, this process's cache is not told.
      await t.ctx.db.kysely
        .updateTable('api_keys')
        .set({ revoked_at: t.clock.now().toISOString() })
        .where('name', '=', 'revoked-elsewhere')
        .execute();
      await sleep(2_100);
      expectProblem(await t.call('GET', `/v1/contacts/${contactId}`, { key }), 401, 'unauthorized');
    });

    it('does not disturb the other keys', async () => {
      expect((await t.call('GET', `/v1/contacts/${contactId}`, { key: t.keys.read })).statusCode).toBe(200);
      expect((await t.call('POST', '/v1/contacts', { key: t.keys.write, body: buildContact() })).statusCode).toBe(201);
    });
  });

  describe('scopes', () => {
    const writeRoutes = (id: string): Array<[string, string, unknown]> => [
      ['POST', '/v1/contacts', buildContact()],
      ['POST', '/v1/consents', { contactId: id, purpose: 'commercial-email', channel: 'email', action: 'grant' }],
      ['PATCH', `/v1/contacts/${id}`, { firstName: 'Changed' }],
      ['DELETE', `/v1/contacts/${id}`, undefined],
      ['POST', '/v1/suppressions', { channel: 'email', email: 'suppress.me@example.com', reason: 'unsubscribed' }],
    ];
    const adminRoutes: Array<[string, string, unknown]> = [
      ['POST', '/v1/purposes', { key: 'by-write-key', title: { fr: 'Non' }, channels: ['email'] }],
      ['PATCH', '/v1/purposes/commercial-email', { description: { fr: 'Changé par une clé write' } }],
      ['POST', '/v1/channels', { key: 'postal', kind: 'postal', names: { fr: 'Courrier' } }],
      ['PATCH', '/v1/channels/email', { names: { fr: 'Courriel' } }],
      ['POST', '/v1/fields', { key: 'shoeSize', type: 'number', purpose: 'commercial-email', retentionDays: 365 }],
    ];

    it('refuses a read key on every write route with 403 forbidden, writing nothing', async () => {
      const before = await rowCounts(t);
      for (const [method, url, body] of writeRoutes(contactId)) {
        const res = await t.call(method, url, { key: t.keys.read, ...(body !== undefined ? { body } : {}) });
        expect(`${method} ${url} → ${res.statusCode}`).toBe(`${method} ${url} → 403`);
        expectProblem(res, 403, 'forbidden');
      }
      expect(await rowCounts(t)).toEqual(before);
      const contact = (await t.call('GET', `/v1/contacts/${contactId}`, { key: t.keys.read })).json();
      expect(contact.firstName).toBe('Camille');
      expect(contact.erasedAt).toBeNull();
    });

    it('refuses a write key on every admin route with 403 forbidden, changing nothing', async () => {
      const before = await rowCounts(t);
      for (const [method, url, body] of adminRoutes) {
        const res = await t.call(method, url, { key: t.keys.write, body });
        expect(`${method} ${url} → ${res.statusCode}`).toBe(`${method} ${url} → 403`);
        expectProblem(res, 403, 'forbidden');
      }
      expect(await rowCounts(t)).toEqual(before);
      const purpose = (await t.call('GET', '/v1/purposes/commercial-email', { key: t.keys.read })).json();
      expect(purpose.version).toBe(1);
      const channels = (await t.call('GET', '/v1/channels', { key: t.keys.read })).json();
      expect(channels.items.find((c: { key: string }) => c.key === 'email').names.fr).toBe('Email');
    });

    it('records the key that made a request as its actor: the default source ref of a consent', async () => {
      const contact = (await t.call('POST', '/v1/contacts', { key: t.keys.write, body: buildContact() })).json();
      const consent = await t.call('POST', '/v1/consents', {
        key: t.keys.write,
        body: { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'grant' },
      });
      expect(consent.statusCode).toBe(201);
      expect(consent.json().source).toEqual({ type: 'api', ref: 'test-write' });
    });

    it('lets a write key write contacts and consents', async () => {
      const contact = await t.call('POST', '/v1/contacts', { key: t.keys.write, body: buildContact() });
      expect(contact.statusCode).toBe(201);
      const consent = await t.call('POST', '/v1/consents', {
        key: t.keys.write,
        body: { contactId: contact.json().id, purpose: 'commercial-email', channel: 'email', action: 'grant' },
      });
      expect(consent.statusCode).toBe(201);
    });

    it('lets an admin key do what a write key may not', async () => {
      const res = await t.call('POST', '/v1/channels', {
        key: t.keys.admin,
        body: { key: 'postal', kind: 'postal', names: { fr: 'Courrier' } },
      });
      expect(res.statusCode).toBe(201);
    });

    it('lets a read key read, and ask for decisions by GET and by POST', async () => {
      const read = t.keys.read;
      for (const url of [
        `/v1/contacts/${contactId}`,
        `/v1/contacts/${contactId}/consents`,
        '/v1/purposes',
        '/v1/channels',
        '/v1/fields',
        '/v1/ledger/verify',
      ]) {
        const res = await t.call('GET', url, { key: read });
        expect(`${url} → ${res.statusCode}`).toBe(`${url} → 200`);
      }
      const one = await t.call('GET', `/v1/decisions?contactId=${contactId}&purpose=commercial-email&channel=email`, { key: read });
      expect(one.statusCode).toBe(200);
      expect(one.json()).toMatchObject({ allowed: false, reason: 'no_consent' });
      const batch = await t.call('POST', '/v1/decisions', {
        key: read,
        body: {
          items: [
            { contactId, purpose: 'commercial-email', channel: 'email' },
            { contactId, purpose: 'commercial-sms', channel: 'sms' },
          ],
        },
      });
      expect(batch.statusCode).toBe(200);
      expect(batch.json().results).toHaveLength(2);
    });
  });

  describe('public routes', () => {
    it('/healthz needs no key and answers {"status":"ok"}', async () => {
      const res = await t.call('GET', '/healthz', { key: null });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.json()).toEqual({ status: 'ok' });
    });

    it('/openapi.json is served and lists the consent and decision paths with the key scheme', async () => {
      const res = await t.call('GET', '/openapi.json', { key: null });
      expect(res.statusCode).toBe(200);
      const spec = res.json();
      expect(spec.openapi).toMatch(/^3\./);
      expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/v1/consents', '/v1/decisions', '/v1/contacts/{id}']));
      expect(spec.paths['/v1/consents'].post).toBeDefined();
      expect(spec.paths['/v1/decisions'].get).toBeDefined();
      expect(spec.paths['/v1/decisions'].post).toBeDefined();
      expect(spec.components.securitySchemes).toBeDefined();
      expect(Object.keys(spec.paths)).not.toContain('/healthz');
    });
  });

  describe('storage', () => {
    it('keeps only a hash of each key: the plaintext never appears in api_keys', async () => {
      const fresh = await createKey(t.ctx, { name: 'hash-check', scope: 'read' });
      const all = [t.keys.admin, t.keys.write, t.keys.read, fresh.key];
      const rows = await t.ctx.db.kysely.selectFrom('api_keys').selectAll().execute();
      expect(rows.length).toBeGreaterThanOrEqual(4);
      const dump = JSON.stringify(rows);
      for (const key of all) {
        expect(dump).not.toContain(key);
        // The secret part (after the id) is nowhere either, in any encoding the row holds.
        const secret = key.split('_').slice(2).join('_');
        expect(secret.length).toBeGreaterThanOrEqual(43);
        expect(dump).not.toContain(secret);
      }
      const row = rows.find((r) => r.name === 'hash-check');
      expect(row?.key_hash).toBe(createHash('sha256').update(fresh.key).digest('hex'));
      expect(row?.scope).toBe('read');
      // And the stored hash is not itself a usable key.
      expectProblem(await t.call('GET', '/v1/purposes', { key: row?.key_hash ?? 'x' }), 401, 'unauthorized');
    });
  });
});

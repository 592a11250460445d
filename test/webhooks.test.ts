// Webhooks end to end on each store, with a real local HTTP receiver: signed deliveries for each
// event type, retries with backoff driven by the manual clock, failure after 24 hours, deletion,
// and a crash between the change and the delivery (another process delivers it).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runDueJobs } from '../src/modules/scheduler/index.ts';
import { dispatchWebhooks, retryDelayMs, WEBHOOK_RETRY_WINDOW_MS } from '../src/modules/webhooks/index.ts';
import { claimDueDeliveryRows } from '../src/modules/webhooks/webhooks.repository.ts';
import { buildTestApp, TEST_SECRET, type TestApp } from './helpers/build-app.ts';
import { runCli } from './helpers/cli.ts';
import { dialects } from './helpers/dialects.ts';
import { buildContact, createContact, record } from './helpers/factories.ts';

const PUBLIC_URL = 'https://consent.example';
const ALL_EVENTS = [
  'consent.changed',
  'contact.created',
  'contact.updated',
  'contact.erased',
  'campaign.step.completed',
  'import.completed',
];

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Receiver {
  url: string;
  requests: Received[];
  /** The status answered per path (default 200); a path answered with 0 never gets an answer. */
  status: Map<string, number>;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const requests: Received[] = [];
  const status = new Map<string, number>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      requests.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const code = status.get(path) ?? 200;
      if (code === 0) return;
      res.writeHead(code, { 'content-type': 'text/plain' }).end(code < 300 ? 'ok' : 'no');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    status,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** What a receiver does with the documented scheme: HMAC-SHA256 of "<t>.<raw body>", compared in constant time. */
function signatureHolds(secret: string, header: string | string[] | undefined, body: string): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(header));
  if (!m) return false;
  const expected = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(m[2] as string, 'hex'));
}

const signedAt = (header: string | string[] | undefined) => Number(/^t=(\d+),/.exec(String(header))?.[1]);

describe.each(dialects)('webhooks on %s', (dialect) => {
  let t: TestApp;
  let receiver: Receiver;

  beforeAll(async () => {
    receiver = await startReceiver();
    t = await buildTestApp(dialect, { env: { PUBLIC_URL, RATE_LIMIT_PER_MINUTE: '100000' } });
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.close();
  });

  const deliver = () => runDueJobs(t.ctx, t.clock.now());
  const advance = (ms: number) => t.clock.set(new Date(t.clock.now().getTime() + ms));
  const to = (path: string) => receiver.requests.filter((r) => r.path === path);
  const subscribe = async (path: string, events: string[], secret?: string) => {
    const res = await t.call('POST', '/v1/webhooks', { body: { url: `${receiver.url}${path}`, events, ...(secret ? { secret } : {}) } });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string; url: string; events: string[]; secret: string; createdAt: string };
  };
  const deliveries = async (id: string) => {
    const res = await t.call('GET', `/v1/webhooks/${id}/deliveries`, { key: t.keys.read });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().items as Array<{
      id: string;
      eventId: string;
      eventType: string;
      status: string;
      attempts: number;
      lastStatus: number | null;
      lastError: string | null;
      nextAttemptAt: string | null;
      createdAt: string;
      deliveredAt: string | null;
      history: Array<{ at: string; status: number | null; error: string | null; ms: number }>;
    }>;
  };
  const count = async (table: 'webhooks' | 'webhook_deliveries') =>
    Number(
      (
        await t.ctx.db.kysely
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  describe('POST /v1/webhooks', () => {
    it('generates a secret, shows it once, and keeps it only sealed', async () => {
      const hook = await subscribe('/created', ['contact.erased', 'consent.changed']);
      expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
      expect(hook.events).toEqual(['consent.changed', 'contact.erased']);

      const list = await t.call('GET', '/v1/webhooks', { key: t.keys.read });
      expect(list.statusCode).toBe(200);
      const listed = list.json().items.find((w: { id: string }) => w.id === hook.id);
      expect(listed).toEqual({ id: hook.id, url: `${receiver.url}/created`, events: hook.events, createdAt: hook.createdAt });
      expect(list.body).not.toContain(hook.secret);

      const row = await t.ctx.db.kysely.selectFrom('webhooks').selectAll().where('id', '=', hook.id).executeTakeFirstOrThrow();
      expect(row.secret).not.toContain(hook.secret);
      expect(row.secret).toMatch(/^v1\./);
      expect(t.logs.join('')).not.toContain(hook.secret);

      const given = await subscribe('/given', ['contact.created'], 'a-secret-of-my-own-choosing');
      expect(given.secret).toBe('a-secret-of-my-own-choosing');

      for (const id of [hook.id, given.id]) expect((await t.call('DELETE', `/v1/webhooks/${id}`)).statusCode).toBe(204);
      expect((await t.call('DELETE', `/v1/webhooks/${hook.id}`)).json().code).toBe('webhook_not_found');
    });

    it('refuses bad input with problem+json and writes nothing', async () => {
      const before = await count('webhooks');
      const cases: Array<[unknown, number, string]> = [
        [{ url: 'ftp://files.example/in', events: ['consent.changed'] }, 422, 'webhook_url_invalid'],
        [{ url: 'javascript:alert(1)', events: ['consent.changed'] }, 422, 'webhook_url_invalid'],
        [{ url: 'not a url', events: ['consent.changed'] }, 422, 'webhook_url_invalid'],
        [{ url: `${PUBLIC_URL}/v1/consents`, events: ['consent.changed'] }, 422, 'webhook_url_not_allowed'],
        [{ url: 'http://localhost:3000/v1/webhooks', events: ['consent.changed'] }, 422, 'webhook_url_not_allowed'],
        [{ url: 'http://127.0.0.1:3000/', events: ['consent.changed'] }, 422, 'webhook_url_not_allowed'],
        [{ url: 'http://[::1]:3000/x', events: ['consent.changed'] }, 422, 'webhook_url_not_allowed'],
        [{ url: `${receiver.url}/x`, events: ['consent.changed', 'contact.deleted'] }, 422, 'unknown_webhook_event'],
        [{ url: `${receiver.url}/x`, events: [] }, 400, 'validation_failed'],
        [{ url: `${receiver.url}/x` }, 400, 'validation_failed'],
        [{ url: `${receiver.url}/x`, events: ['consent.changed'], secret: 'short' }, 400, 'validation_failed'],
        ['{"url": "https://crm.example/in", "events": [', 400, 'bad_json'],
      ];
      for (const [body, status, code] of cases) {
        const res = await t.call('POST', '/v1/webhooks', {
          body,
          ...(typeof body === 'string' ? { headers: { 'content-type': 'application/json' } } : {}),
        });
        expect(res.statusCode, `${JSON.stringify(body)} → ${res.body}`).toBe(status);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(res.json()).toMatchObject({ type: `urn:assent:problem:${code}`, code });
      }
      expect((await t.call('POST', '/v1/webhooks', { body: { url: `${receiver.url}/x`, events: ['consent.changed'] } })).statusCode).toBe(
        201,
      );
      // Only the last, valid one was written; a write key may not create one, a read key may list.
      expect(await count('webhooks')).toBe(before + 1);
      const forbidden = await t.call('POST', '/v1/webhooks', {
        key: t.keys.write,
        body: { url: `${receiver.url}/x`, events: ['consent.changed'] },
      });
      expect(forbidden.statusCode).toBe(403);
      expect(await count('webhooks')).toBe(before + 1);
      const last = (await t.call('GET', '/v1/webhooks')).json().items.find((w: { url: string }) => w.url === `${receiver.url}/x`);
      expect((await t.call('DELETE', `/v1/webhooks/${last.id}`, { key: t.keys.write })).statusCode).toBe(403);
      expect((await t.call('DELETE', `/v1/webhooks/${last.id}`)).statusCode).toBe(204);
      expect((await t.call('GET', '/v1/webhooks/01ARZ3NDEKTSV4RRFFQ69G5FAV/deliveries')).json().code).toBe('webhook_not_found');
    });
  });

  describe('a signed delivery for each event type', () => {
    let hook: { id: string; secret: string };
    const PATH = '/all';
    let seen = 0;
    /** The events the receiver got since the last call, each checked: signature, headers, body shape. */
    const newEvents = () => {
      const got = to(PATH).slice(seen);
      seen += got.length;
      return got.map((r) => {
        expect(signatureHolds(hook.secret, r.headers['assent-signature'], r.body), 'signature').toBe(true);
        expect(r.headers['content-type']).toBe('application/json');
        const body = JSON.parse(r.body);
        expect(Object.keys(body)).toEqual(['id', 'type', 'createdAt', 'data']);
        expect(r.headers['assent-event-id']).toBe(body.id);
        expect(r.headers['assent-event-type']).toBe(body.type);
        expect(signedAt(r.headers['assent-signature'])).toBe(Math.floor(t.clock.now().getTime() / 1000));
        return body as { id: string; type: string; createdAt: string; data: Record<string, unknown> };
      });
    };

    beforeAll(async () => {
      hook = await subscribe(PATH, ALL_EVENTS);
    });
    afterAll(async () => {
      await t.call('DELETE', `/v1/webhooks/${hook.id}`);
    });

    it('announces a contact created through the API, and a consent recorded for it — without personal data', async () => {
      const contact = await createContact(t, { firstName: 'Ninon', phone: '+33612345678' });
      await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
      expect(to(PATH).length).toBe(seen); // nothing is sent during the change
      await deliver();
      const events = newEvents();
      expect(events.map((e) => e.type)).toEqual(['contact.created', 'consent.changed']);
      expect(events[0]?.data).toEqual({ contactId: contact.id });
      const consent = events[1]?.data;
      expect(consent).toMatchObject({
        contactId: contact.id,
        purpose: 'commercial-email',
        channel: 'email',
        action: 'granted',
        status: 'granted',
        source: { type: 'api' },
      });
      expect(consent?.eventId).toMatch(/^[0-9A-Z]{26}$/);
      const raw = to(PATH)
        .map((r) => r.body)
        .join('');
      for (const personal of [contact.email as string, 'Ninon', '612345678']) expect(raw).not.toContain(personal);
      const items = await deliveries(hook.id);
      expect(items.slice(0, 2).every((d) => d.status === 'delivered' && d.attempts === 1 && d.lastStatus === 200)).toBe(true);
    });

    it('announces the contact a consent by email creates', async () => {
      const email = buildContact().email as string;
      await record(t, { email, purpose: 'commercial-email', channel: 'email', action: 'grant' });
      await deliver();
      const events = newEvents();
      expect(events.map((e) => e.type)).toEqual(['contact.created', 'consent.changed']);
      expect(events[1]?.data.contactId).toBe(events[0]?.data.contactId);
    });

    it('announces a contact created by a hosted form submission (POST /f/{key}), and only once', async () => {
      const form = await t.call('POST', '/v1/forms', {
        body: {
          key: 'webhook-signup',
          title: 'Sign up',
          locale: 'en',
          fields: ['email', 'firstName'],
          purposes: [{ purpose: 'commercial-email', channels: ['email'] }],
        },
      });
      expect(form.statusCode, form.body).toBe(201);
      // The hosted page as a browser gets it: its CSRF token and hidden inputs, then the post.
      const page = await t.app.inject({ method: 'GET', url: '/f/webhook-signup' });
      expect(page.statusCode).toBe(200);
      const hidden = (name: string) =>
        (new RegExp(`name="${name}" value="([^"]*)"`).exec(page.body)?.[1] ?? '').replaceAll('&quot;', '"').replaceAll('&amp;', '&');
      const action = (/<form id="assent-form" method="post" action="([^"]+)"/.exec(page.body)?.[1] ?? '').replaceAll('&amp;', '&');
      const email = `form-hook-${Date.now().toString(36)}@example.com`;
      const submit = () =>
        t.app.inject({
          method: 'POST',
          url: action,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams([
            ['email', email],
            ['firstName', 'Solène'],
            ['consent', 'commercial-email:email'],
            ...['csrf', 'htmlHash', 'pageUrl'].map((name) => [name, hidden(name)]),
          ]).toString(),
        });
      const res = await submit();
      expect(res.statusCode, res.body).toBe(200);
      const contactId = (await t.call('GET', `/v1/contacts?email=${encodeURIComponent(email)}`)).json().items[0]?.id as string;
      expect(contactId).toMatch(/^[0-9A-Z]{26}$/);
      // Queued with the contact, in its transaction: in the outbox before anything is sent.
      const queued = await t.ctx.db.kysely
        .selectFrom('webhook_deliveries')
        .select(['event_type', 'status'])
        .where('webhook_id', '=', hook.id)
        .where('event_type', '=', 'contact.created')
        .where('payload', 'like', `%${contactId}%`)
        .execute();
      expect(queued).toEqual([{ event_type: 'contact.created', status: 'pending' }]);
      expect(to(PATH).length).toBe(seen);
      await deliver();
      const events = newEvents();
      expect(events.map((e) => e.type)).toEqual(['contact.created', 'consent.changed']);
      expect(events[0]?.data).toEqual({ contactId });
      expect(events[1]?.data).toMatchObject({ contactId, purpose: 'commercial-email', channel: 'email', source: { type: 'form' } });
      for (const personal of [email, 'Solène']) expect(to(PATH).at(-1)?.body).not.toContain(personal);
      // The same person submitting again is no new contact: nothing more is announced as created.
      expect((await submit()).statusCode).toBe(200);
      await deliver();
      expect(newEvents().filter((e) => e.type === 'contact.created')).toEqual([]);
      // A known person without a first name fills it through the form: announced as an update,
      // with the field's name and never its value.
      const known = `form-known-${Date.now().toString(36)}@example.com`;
      const created = await t.call('POST', '/v1/contacts', { body: { email: known, locale: 'en' } });
      expect(created.statusCode, created.body).toBe(201);
      await deliver();
      newEvents();
      const filled = await t.app.inject({
        method: 'POST',
        url: action,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams([
          ['email', known],
          ['firstName', 'Maëlys'],
          ['consent', 'commercial-email:email'],
          ...['csrf', 'htmlHash', 'pageUrl'].map((name) => [name, hidden(name)]),
        ]).toString(),
      });
      expect(filled.statusCode, filled.body).toBe(200);
      await deliver();
      const updates = newEvents().filter((e) => e.type === 'contact.updated');
      expect(updates.map((e) => e.data)).toEqual([{ contactId: created.json().id, fields: ['firstName'] }]);
      expect(
        to(PATH)
          .map((r) => r.body)
          .join('\n'),
      ).not.toContain('Maëlys');
    });

    it('announces an update with the names of the changed fields, never their values', async () => {
      const contact = await createContact(t);
      await deliver();
      newEvents();
      const res = await t.call('PATCH', `/v1/contacts/${contact.id}`, { body: { firstName: 'Aurélien', locale: 'fr' } });
      expect(res.statusCode, res.body).toBe(200);
      await deliver();
      const events = newEvents();
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ type: 'contact.updated', data: { contactId: contact.id, fields: ['firstName'] } });
      expect(to(PATH).at(-1)?.body).not.toContain('Aurélien');
      // A patch that changes nothing announces nothing.
      await t.call('PATCH', `/v1/contacts/${contact.id}`, { body: { firstName: 'Aurélien' } });
      await deliver();
      expect(newEvents()).toEqual([]);
    });

    it('announces an erasure', async () => {
      const contact = await createContact(t);
      expect((await t.call('DELETE', `/v1/contacts/${contact.id}`)).statusCode).toBe(204);
      await deliver();
      const events = newEvents();
      expect(events.map((e) => e.type)).toEqual(['contact.created', 'contact.erased']);
      expect(events[1]?.data).toEqual({ contactId: contact.id });
    });

    it('announces a campaign step once its deliveries are all sent', async () => {
      for (let i = 0; i < 3; i++) await createContact(t, { source: 'webhook-campaign' });
      const segment = await t.call('POST', '/v1/segments', {
        body: { key: 'webhook-campaign', name: 'Webhook campaign', filter: { field: 'source', op: 'eq', value: 'webhook-campaign' } },
      });
      expect(segment.statusCode, segment.body).toBe(201);
      const campaign = await t.call('POST', '/v1/campaigns', {
        body: {
          key: 'webhook-step',
          name: 'Webhook step',
          segment: 'webhook-campaign',
          purposes: ['commercial-email'],
          channel: 'email',
          startAt: t.clock.now().toISOString(),
          deadline: new Date(t.clock.now().getTime() + 30 * 86_400_000).toISOString(),
        },
      });
      expect(campaign.statusCode, campaign.body).toBe(201);
      const launch = await t.call('POST', '/v1/campaigns/webhook-step/launch');
      expect(launch.statusCode, launch.body).toBe(200);
      await deliver();
      const steps = newEvents().filter((e) => e.type === 'campaign.step.completed');
      expect(steps).toHaveLength(1);
      expect(steps[0]?.data).toEqual({
        campaign: 'webhook-step',
        step: 1,
        counts: { enqueued: 3, sent: 0, stored: 3, failed: 0, cancelled: 0 },
      });
      const row = await t.ctx.db.kysely
        .selectFrom('campaign_steps')
        .select('completed_at')
        .where('campaign_key', '=', 'webhook-step')
        .executeTakeFirstOrThrow();
      expect(row.completed_at).toBe(t.clock.now().toISOString());
      // Announced once: later runs find nothing more to say.
      await deliver();
      expect(newEvents().filter((e) => e.type === 'campaign.step.completed')).toEqual([]);
    });

    it('announces a completed import, and the contacts it created', async () => {
      const csv = 'email;firstName;consent:commercial-email:email\nimport-a@example.com;Anne;oui\nimport-b@example.com;Bruno;non\n';
      const started = await t.call('POST', '/v1/imports', { body: csv, headers: { 'content-type': 'text/csv' } });
      expect(started.statusCode, started.body).toBe(202);
      const { id } = started.json();
      let status = '';
      for (let i = 0; i < 100 && status !== 'completed'; i++) {
        status = (await t.call('GET', `/v1/imports/${id}`)).json().status;
        if (status !== 'completed') await new Promise((r) => setTimeout(r, 50));
      }
      expect(status).toBe('completed');
      await deliver();
      const events = newEvents();
      expect(events.filter((e) => e.type === 'contact.created')).toHaveLength(2);
      const done = events.filter((e) => e.type === 'import.completed');
      expect(done).toHaveLength(1);
      expect(done[0]?.data).toMatchObject({ importId: id, counts: expect.objectContaining({ read: 2, written: 2 }) });
      expect(to(PATH).at(-1)?.body).not.toContain('import-a@example.com');
    });

    it('announces nothing when the change is rolled back', async () => {
      const contact = await createContact(t);
      await deliver();
      newEvents();
      const before = await count('webhook_deliveries');
      const failing = async () => {
        throw new Error('a later step of the same transaction failed');
      };
      t.ctx.consentHooks.push(failing);
      try {
        const res = await t.call('POST', '/v1/consents', {
          body: { contactId: contact.id, purpose: 'commercial-sms', channel: 'sms', action: 'grant' },
        });
        expect(res.statusCode).toBe(500);
      } finally {
        t.ctx.consentHooks.splice(t.ctx.consentHooks.indexOf(failing), 1);
      }
      expect(await count('webhook_deliveries')).toBe(before);
      await deliver();
      expect(newEvents()).toEqual([]);
    });
  });

  describe('retries', () => {
    afterEach(async () => {
      for (const w of (await t.call('GET', '/v1/webhooks')).json().items) await t.call('DELETE', `/v1/webhooks/${w.id}`);
    });

    it('retries with growing delays while the receiver answers 500, then delivers the same signed body', async () => {
      const hook = await subscribe('/flaky', ['contact.created']);
      receiver.status.set('/flaky', 500);
      await createContact(t);
      const start = t.clock.now().getTime();
      await deliver();
      expect(to('/flaky')).toHaveLength(1);
      let [d] = await deliveries(hook.id);
      expect(d).toMatchObject({ status: 'pending', attempts: 1, lastStatus: 500, lastError: 'HTTP 500' });
      expect(d?.nextAttemptAt).toBe(new Date(start + 30_000).toISOString());

      await deliver(); // not due yet
      advance(29_000);
      await deliver();
      expect(to('/flaky')).toHaveLength(1);
      advance(1_000);
      await deliver();
      expect(to('/flaky')).toHaveLength(2);
      [d] = await deliveries(hook.id);
      expect(d?.nextAttemptAt).toBe(new Date(start + 30_000 + 60_000).toISOString());
      advance(60_000);
      await deliver();
      expect(to('/flaky')).toHaveLength(3);
      [d] = await deliveries(hook.id);
      expect(d?.nextAttemptAt).toBe(new Date(start + 30_000 + 60_000 + 120_000).toISOString());

      receiver.status.set('/flaky', 200);
      advance(120_000);
      await deliver();
      const got = to('/flaky');
      expect(got).toHaveLength(4);
      [d] = await deliveries(hook.id);
      expect(d).toMatchObject({ status: 'delivered', attempts: 4, lastStatus: 200, lastError: null, nextAttemptAt: null });
      expect(d?.deliveredAt).toBe(t.clock.now().toISOString());
      expect(d?.history.map((h) => h.status)).toEqual([500, 500, 500, 200]);
      expect(d?.history.map((h) => Date.parse(h.at) - start)).toEqual([0, 30_000, 90_000, 210_000]);
      // The same event every time, signed afresh at each attempt.
      expect(new Set(got.map((r) => r.body)).size).toBe(1);
      expect(new Set(got.map((r) => r.headers['assent-event-id'])).size).toBe(1);
      expect(got.every((r) => signatureHolds(hook.secret, r.headers['assent-signature'], r.body))).toBe(true);
      expect(got.map((r) => signedAt(r.headers['assent-signature']) * 1000 - start)).toEqual([0, 30_000, 90_000, 210_000]);
      await deliver();
      expect(to('/flaky')).toHaveLength(4);
    });

    it('gives up 24 hours after the event: the delivery is failed', async () => {
      const hook = await subscribe('/down', ['contact.created']);
      receiver.status.set('/down', 503);
      await createContact(t);
      const start = t.clock.now().getTime();
      await deliver();
      for (let i = 0; i < 100; i++) {
        const [d] = await deliveries(hook.id);
        if (d?.status !== 'pending') break;
        t.clock.set(d.nextAttemptAt as string);
        await deliver();
      }
      const [d] = await deliveries(hook.id);
      expect(d?.status).toBe('failed');
      expect(d?.nextAttemptAt).toBeNull();
      const times = d?.history.map((h) => Date.parse(h.at) - start) as number[];
      expect(times[0]).toBe(0);
      expect(times.at(-1)).toBe(WEBHOOK_RETRY_WINDOW_MS);
      const gaps = times.slice(1).map((at, i) => at - (times[i] as number));
      expect(gaps.slice(0, 4)).toEqual([30_000, 60_000, 120_000, 240_000]);
      for (const [i, gap] of gaps.slice(0, -1).entries()) expect(gap).toBe(retryDelayMs(i + 1));
      expect(Math.max(...gaps)).toBe(3_600_000);
      expect(d?.attempts).toBe(times.length);
      expect(to('/down')).toHaveLength(times.length);
      expect(d?.history.every((h) => h.status === 503 && h.error === 'HTTP 503')).toBe(true);
      advance(3_600_000);
      await deliver();
      expect(to('/down')).toHaveLength(times.length);
    });

    it('records an unreachable receiver and one that does not answer in time', async () => {
      const closed = await startReceiver();
      const url = `${closed.url}/gone`;
      await closed.close();
      const res = await t.call('POST', '/v1/webhooks', { body: { url, events: ['contact.created'] } });
      const gone = res.json();
      const slow = await subscribe('/slow', ['contact.created']);
      receiver.status.set('/slow', 0);
      await createContact(t);
      await dispatchWebhooks(t.ctx, { timeoutMs: 300 });
      const [g] = await deliveries(gone.id);
      expect(g).toMatchObject({ status: 'pending', attempts: 1, lastStatus: null });
      expect(g?.lastError).toMatch(/ECONNREFUSED/);
      const [s] = await deliveries(slow.id);
      expect(s).toMatchObject({ status: 'pending', attempts: 1, lastStatus: null, lastError: 'timeout' });
      expect(s?.history[0]?.ms).toBeGreaterThanOrEqual(250);
    });

    it('does not send the pending deliveries of a deleted webhook', async () => {
      const hook = await subscribe('/deleted', ['contact.created']);
      receiver.status.set('/deleted', 500);
      await createContact(t);
      await deliver();
      expect(to('/deleted')).toHaveLength(1);
      expect((await t.call('DELETE', `/v1/webhooks/${hook.id}`)).statusCode).toBe(204);
      expect((await t.call('GET', '/v1/webhooks')).json().items.map((w: { id: string }) => w.id)).not.toContain(hook.id);
      const before = await count('webhook_deliveries');
      await createContact(t);
      expect(await count('webhook_deliveries')).toBe(before);
      advance(3_600_000);
      await deliver();
      expect(to('/deleted')).toHaveLength(1);
      const [d] = await deliveries(hook.id);
      expect(d).toMatchObject({ status: 'cancelled', attempts: 1, nextAttemptAt: null });
    });
  });

  describe('a crash between the change and the delivery', () => {
    afterEach(async () => {
      for (const w of (await t.call('GET', '/v1/webhooks')).json().items) await t.call('DELETE', `/v1/webhooks/${w.id}`);
    });

    it('still delivers after a restart: another process (`assent scheduler run --at`) sends what was recorded', async () => {
      const hook = await subscribe('/crash', ['consent.changed']);
      const contact = await createContact(t);
      const event = await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
      // This process stops here: nothing was dispatched. A new process on the same store starts.
      expect(to('/crash')).toHaveLength(0);
      const run = await runCli(['scheduler', 'run', '--at', t.clock.now().toISOString(), '--json'], {
        DATABASE_URL: t.database.url,
        ASSENT_SECRET: TEST_SECRET,
      });
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout).jobs).toContainEqual({
        job: 'dispatch-webhooks',
        ran: true,
        result: { sent: 1, retried: 0, failed: 0 },
      });
      const got = to('/crash');
      expect(got).toHaveLength(1);
      expect(signatureHolds(hook.secret, got[0]?.headers['assent-signature'], got[0]?.body as string)).toBe(true);
      expect(JSON.parse(got[0]?.body as string).data).toMatchObject({ eventId: event.id, contactId: contact.id });
      expect((await deliveries(hook.id))[0]).toMatchObject({ status: 'delivered', attempts: 1 });
    });

    it('a delivery claimed by a dispatcher that died is sent once its lease runs out', async () => {
      const hook = await subscribe('/lease', ['contact.created']);
      await createContact(t);
      const now = t.clock.now();
      // A dispatcher claims the delivery, then dies before sending it.
      const claimed = await claimDueDeliveryRows(
        t.ctx.db.kysely,
        dialect,
        now.toISOString(),
        new Date(now.getTime() + 60_000).toISOString(),
        10,
      );
      expect(claimed).toHaveLength(1);
      await deliver();
      expect(to('/lease')).toHaveLength(0);
      advance(60_000);
      await deliver();
      expect(to('/lease')).toHaveLength(1);
      expect((await deliveries(hook.id))[0]).toMatchObject({ status: 'delivered', attempts: 2 });
    });
  });
});

// The campaigns API at its edges: bad input gets problem+json with nothing written, state
// changes follow the campaign's life (draft → running ⇄ paused → cancelled | closed), the landing
// confirmation records only the ticked purposes, and tampered links change nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shortDeliveryToken } from '../src/modules/campaigns/index.ts';
import { runDueJobs } from '../src/modules/scheduler/index.ts';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { runCli } from './helpers/cli.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, decision, rowCounts } from './helpers/factories.ts';

const START = '2026-11-23T09:00:00.000Z';
const DEADLINE = '2026-12-23T09:00:00.000Z';

const campaignRows = async (t: TestApp) => ({
  ...(await rowCounts(t)),
  campaigns: Number(
    (
      await t.ctx.db.kysely
        .selectFrom('campaigns')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  ),
  deliveries: Number(
    (
      await t.ctx.db.kysely
        .selectFrom('deliveries')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  ),
  audience: Number(
    (
      await t.ctx.db.kysely
        .selectFrom('campaign_audience')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  ),
});

const valid = {
  key: 'spring',
  name: 'Spring re-permission',
  segment: 'no-email-consent',
  purposes: ['commercial-email'],
  channel: 'email',
  startAt: START,
  deadline: DEADLINE,
};

describe.each(dialects)('campaigns API on %s', (dialect) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await buildTestApp(dialect, { now: START, env: { PUBLIC_URL: 'https://consent.example', RATE_LIMIT_PER_MINUTE: '10000' } });
    await t.call('POST', '/v1/purposes', {
      body: { key: 'partners', title: { fr: 'Offres partenaires', en: 'Partner offers' }, channels: ['email'] },
    });
    const segment = await t.call('POST', '/v1/segments', {
      body: {
        key: 'no-email-consent',
        name: 'No email consent',
        filter: { consent: { purpose: 'commercial-email', channel: 'email', status: ['none'] } },
      },
    });
    expect(segment.statusCode, segment.body).toBe(201);
  });
  afterAll(async () => t?.close());

  const badBodies: Array<[string, unknown, number, string]> = [
    ['an empty JSON body', undefined, 400, 'bad_json'],
    ['not JSON', '{"key":', 400, 'bad_json'],
    ['missing deadline', { ...valid, deadline: undefined }, 400, 'validation_failed'],
    ['unknown property', { ...valid, colour: 'blue' }, 400, 'validation_failed'],
    ['bad key', { ...valid, key: 'Spring Campaign' }, 400, 'validation_failed'],
    ['channel postal', { ...valid, channel: 'postal' }, 400, 'validation_failed'],
    ['cadence 0', { ...valid, cadenceDays: 0 }, 400, 'validation_failed'],
    ['startAt not a date', { ...valid, startAt: 'tomorrow' }, 400, 'validation_failed'],
    ['confirmation unknown', { ...valid, confirmation: 'auto' }, 400, 'validation_failed'],
    ['empty purposes', { ...valid, purposes: [] }, 400, 'validation_failed'],
    ['unknown segment', { ...valid, segment: 'nobody' }, 422, 'campaign_invalid'],
    ['unknown purpose', { ...valid, purposes: ['ghost'] }, 422, 'campaign_invalid'],
    ['purpose without the channel', { ...valid, purposes: ['commercial-sms'] }, 422, 'campaign_invalid'],
    ['SMS template for email', { ...valid, templates: { first: 'repermission-sms' } }, 422, 'campaign_invalid'],
    ['unknown template', { ...valid, templates: { reminder: 'nope' } }, 422, 'campaign_invalid'],
    ['deadline before start', { ...valid, deadline: '2026-11-01T00:00:00Z' }, 422, 'campaign_invalid'],
  ];

  it.each(badBodies)('refuses a campaign with %s, writing nothing', async (_name, body, status, code) => {
    const before = await campaignRows(t);
    const res = await t.call('POST', '/v1/campaigns', {
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.parse(JSON.stringify(body)) } : {}),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.statusCode, res.body).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json().type).toBe(`urn:assent:problem:${code}`);
    expect(await campaignRows(t)).toEqual(before);
  });

  it('points at the faulty field', async () => {
    const res = await t.call('POST', '/v1/campaigns', { body: { ...valid, purposes: ['commercial-email', 'ghost'] } });
    expect(res.json().errors).toEqual([expect.objectContaining({ path: '/purposes/1' })]);
  });

  it('needs the write scope to create, and answers 404 for an unknown campaign on every route', async () => {
    expect((await t.call('POST', '/v1/campaigns', { body: valid, key: t.keys.read })).statusCode).toBe(403);
    for (const [method, path] of [
      ['GET', '/v1/campaigns/ghost'],
      ['PATCH', '/v1/campaigns/ghost'],
      ['POST', '/v1/campaigns/ghost/launch'],
      ['POST', '/v1/campaigns/ghost/pause'],
      ['GET', '/v1/campaigns/ghost/stats'],
      ['GET', '/v1/campaigns/ghost/report'],
      ['POST', '/v1/campaigns/ghost/purge'],
    ] as const) {
      const res = await t.call(method, path, method === 'PATCH' ? { body: { name: 'x' } } : method === 'POST' ? { body: {} } : {});
      expect(res.statusCode, `${method} ${path}`).toBe(404);
      expect(res.json().type).toBe('urn:assent:problem:campaign_not_found');
    }
  });

  it('follows the campaign’s life: launch once, pause, resume, frozen fields, cancel', async () => {
    for (let i = 0; i < 3; i++) await createContact(t);
    expect((await t.call('POST', '/v1/campaigns', { body: valid })).statusCode).toBe(201);
    expect((await t.call('POST', '/v1/campaigns', { body: valid })).statusCode).toBe(409);
    expect((await t.call('PATCH', '/v1/campaigns/spring', { body: { cadenceDays: 14 } })).json().cadenceDays).toBe(14);
    expect((await t.call('POST', '/v1/campaigns/spring/resume')).statusCode).toBe(409);
    const launched = await t.call('POST', '/v1/campaigns/spring/launch');
    expect(launched.json()).toMatchObject({ status: 'running', launchReport: { audience: 3, excluded: 0 } });
    expect((await t.call('POST', '/v1/campaigns/spring/launch')).json().type).toBe('urn:assent:problem:campaign_state');
    const frozen = await t.call('PATCH', '/v1/campaigns/spring', { body: { segment: 'no-email-consent' } });
    expect(frozen.statusCode).toBe(409);
    expect(frozen.json().errors).toEqual([{ path: '/segment', message: 'fixed at launch' }]);
    expect((await t.call('POST', '/v1/campaigns/spring/pause')).json().status).toBe('paused');
    // Paused: nothing is sent.
    await runDueJobs(t.ctx, t.clock.now());
    const queued = await t.ctx.db.kysely.selectFrom('deliveries').select('status').where('campaign_key', '=', 'spring').execute();
    expect(queued.map((d) => d.status)).toEqual(['queued', 'queued', 'queued']);
    expect((await t.call('POST', '/v1/campaigns/spring/resume')).json().status).toBe('running');
    const purge = await t.call('POST', '/v1/campaigns/spring/purge', { body: { dryRun: true } });
    expect(purge.statusCode).toBe(409);
    expect(purge.json().type).toBe('urn:assent:problem:purge_not_allowed');
    expect((await t.call('POST', '/v1/campaigns/spring/cancel')).json().status).toBe('cancelled');
    const after = await t.ctx.db.kysely.selectFrom('deliveries').select('status').where('campaign_key', '=', 'spring').execute();
    expect(after.map((d) => d.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    expect((await t.call('PATCH', '/v1/campaigns/spring', { body: { name: 'x' } })).statusCode).toBe(409);
  });

  it('landing mode: unticked boxes per purpose; only the ticked ones are recorded; tampered links write nothing', async () => {
    const contact = await createContact(t);
    await t.call('POST', '/v1/segments', {
      body: { key: 'one', name: 'One', filter: { field: 'email', op: 'eq', value: contact.email } },
    });
    const created = await t.call('POST', '/v1/campaigns', {
      body: { ...valid, key: 'landing', segment: 'one', purposes: ['commercial-email', 'partners'], confirmation: 'landing' },
    });
    expect(created.statusCode, created.body).toBe(201);
    expect((await t.call('POST', '/v1/campaigns/landing/launch')).json().launchReport.audience).toBe(1);
    await runDueJobs(t.ctx, t.clock.now());
    // Without SMTP_URL the outbox keeps the mail: read the confirm link from it.
    const outbox = (await t.call('GET', `/v1/outbox?contactId=${contact.id}`)).json().items;
    const message = (await t.call('GET', `/v1/outbox/${outbox[0].id}`)).json();
    const link = /https:\/\/consent\.example(\/c\/[A-Za-z0-9_.-]+)/.exec(message.text)?.[1] as string;
    expect(link).toBeTruthy();

    const page = await t.call('GET', link, { key: null });
    expect(page.statusCode).toBe(200);
    const boxes = [...page.body.matchAll(/<input type="checkbox"[^>]*>/g)].map((m) => m[0]);
    expect(boxes).toHaveLength(2);
    for (const box of boxes) expect(box).not.toContain('checked');

    const before = await campaignRows(t);
    const tampered = `${link.slice(0, -3)}${link.endsWith('AAA') ? 'BBB' : 'AAA'}`;
    expect(
      (
        await t.call('POST', tampered, {
          key: null,
          body: 'consent=partners:email',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        })
      ).statusCode,
    ).toBe(400);
    expect((await t.call('POST', `/c/${shortDeliveryToken('another-secret-0123456789abcdefghij', 1)}`, { key: null })).statusCode).toBe(
      400,
    );
    expect(await campaignRows(t)).toEqual(before);

    const post = await t.call('POST', link, {
      key: null,
      body: 'confirm=yes&consent=partners:email',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(post.statusCode).toBe(200);
    expect((await decision(t, { contactId: contact.id, purpose: 'partners', channel: 'email' })).allowed).toBe(true);
    expect((await decision(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email' })).allowed).toBe(false);
    const stats = (await t.call('GET', '/v1/campaigns/landing/stats')).json();
    expect(stats.totals).toMatchObject({ audience: 1, sent: 1, clicked: 1, confirmed: 1, pending: 0 });
  });

  it('adds newcomers at each step (they get the first message), stops at maxSends, and resumes an interrupted purge', async () => {
    const tag = { key: 'vip', type: 'string', purpose: 'commercial-email', retentionDays: 365 };
    expect((await t.call('POST', '/v1/fields', { body: tag })).statusCode).toBe(201);
    const first = [await createContact(t, { attributes: { vip: 'yes' } }), await createContact(t, { attributes: { vip: 'yes' } })];
    await t.call('POST', '/v1/segments', {
      body: { key: 'vips', name: 'VIP', filter: { field: 'attributes.vip', op: 'eq', value: 'yes' } },
    });
    const created = await t.call('POST', '/v1/campaigns', {
      body: { ...valid, key: 'vip', segment: 'vips', addNewcomers: true, maxSends: 2, atDeadline: 'purge' },
    });
    expect(created.statusCode, created.body).toBe(201);
    expect((await t.call('POST', '/v1/campaigns/vip/launch')).json().launchReport.audience).toBe(2);
    await runDueJobs(t.ctx, t.clock.now());
    const newcomer = await createContact(t, { attributes: { vip: 'yes' } });
    const start = t.clock.now().getTime();
    t.clock.set(new Date(start + 7 * 86_400_000));
    await runDueJobs(t.ctx, t.clock.now());
    const step2 = await t.ctx.db.kysely
      .selectFrom('deliveries')
      .select(['contact_id', 'template'])
      .where('campaign_key', '=', 'vip')
      .where('step', '=', 2)
      .execute();
    expect(new Map(step2.map((d) => [d.contact_id, d.template]))).toEqual(
      new Map([
        [first[0]?.id, 'reminder'],
        [first[1]?.id, 'reminder'],
        [newcomer.id, 'first'],
      ]),
    );
    // maxSends 2: no third message.
    t.clock.set(new Date(start + 14 * 86_400_000));
    await runDueJobs(t.ctx, t.clock.now());
    expect((await t.call('GET', '/v1/campaigns/vip/stats')).json().steps).toHaveLength(2);

    // After the deadline: a purge that stopped after erasing one person goes on where it stopped.
    t.clock.set(new Date(Date.parse(DEADLINE) + 1000));
    await runDueJobs(t.ctx, t.clock.now());
    expect((await t.call('GET', '/v1/campaigns/vip')).json().status).toBe('closed');
    const dry = (await t.call('POST', '/v1/campaigns/vip/purge', { body: { dryRun: true } })).json();
    expect(dry.counts).toEqual({ nonResponders: 3, erase: 3, keptOtherBasis: 0, keptByReason: {}, alreadyErased: 0 });
    expect((await t.call('DELETE', `/v1/contacts/${first[0]?.id}`)).statusCode).toBeLessThan(300);
    await t.ctx.db.kysely
      .insertInto('campaign_purges')
      .values({
        id: 'P1',
        campaign_key: 'vip',
        status: 'running',
        counts: JSON.stringify(dry.counts),
        erased: 1,
        started_at: t.clock.now().toISOString(),
        completed_at: null,
      })
      .execute();
    const purge = (await t.call('POST', '/v1/campaigns/vip/purge', { body: {} })).json();
    expect(purge).toMatchObject({ id: 'P1', status: 'completed', erased: 3, counts: dry.counts });
    const left = await t.ctx.db.kysely
      .selectFrom('contacts')
      .select('erased_at')
      .where('id', 'in', [first[0]?.id as string, first[1]?.id as string, newcomer.id])
      .execute();
    expect(left.every((c) => c.erased_at !== null)).toBe(true);
    expect((await t.call('GET', '/v1/ledger/verify')).json().ok).toBe(true);
  });

  it('asks the audience rule again at send time: objected, bounced, erased, withdrawn and confirmed-since are not sent', async () => {
    const people = [];
    for (let i = 0; i < 6; i++) people.push(await createContact(t, { attributes: { vip: 'later' } }));
    await t.call('POST', '/v1/segments', {
      body: { key: 'later', name: 'Later', filter: { field: 'attributes.vip', op: 'eq', value: 'later' } },
    });
    const created = await t.call('POST', '/v1/campaigns', {
      body: {
        ...valid,
        key: 'rule',
        segment: 'later',
        startAt: t.clock.now().toISOString(),
        deadline: new Date(t.clock.now().getTime() + 20 * 86_400_000).toISOString(),
      },
    });
    expect(created.statusCode, created.body).toBe(201);
    expect((await t.call('POST', '/v1/campaigns/rule/launch')).json().launchReport.audience).toBe(6);
    const [objects, bounces, erased, withdraws, confirms, stays] = people as Array<{ id: string; email: string }>;
    // Between the step's queueing (at launch) and the send:
    await t.call('POST', '/v1/consents', {
      body: { contactId: objects?.id, purpose: 'commercial-email', channel: 'email', action: 'object' },
    });
    await t.call('POST', '/v1/suppressions', { body: { channel: 'email', email: bounces?.email, reason: 'bounced' } });
    await t.call('DELETE', `/v1/contacts/${erased?.id}`);
    await t.call('POST', '/v1/consents', {
      body: { contactId: withdraws?.id, purpose: 'commercial-email', channel: 'email', action: 'withdraw' },
    });
    await t.call('POST', '/v1/consents', {
      body: { contactId: confirms?.id, purpose: 'commercial-email', channel: 'email', action: 'grant' },
    });
    await runDueJobs(t.ctx, t.clock.now());
    const rows = await t.ctx.db.kysely
      .selectFrom('deliveries')
      .select(['contact_id', 'status', 'last_error'])
      .where('campaign_key', '=', 'rule')
      .execute();
    const byContact = new Map(rows.map((r) => [r.contact_id, `${r.status} ${r.last_error ?? ''}`.trim()]));
    expect(byContact.get(objects?.id as string)).toBe('cancelled not sent: objected');
    expect(byContact.get(bounces?.id as string)).toBe('cancelled not sent: bounced');
    expect(byContact.get(erased?.id as string)).toBe('cancelled not sent: erased');
    expect(byContact.get(withdraws?.id as string)).toBe('cancelled not sent: withdrawn');
    expect(byContact.get(confirms?.id as string)).toBe('cancelled not sent: confirmed');
    expect(byContact.get(stays?.id as string)).toBe('stored');
  });

  it('renews an older consent (it is asked, and a yes records renewed), and a late start never sends two steps at once', async () => {
    const old = await createContact(t, { attributes: { vip: 'renew' } });
    await t.call('POST', '/v1/consents', {
      body: { contactId: old.id, purpose: 'commercial-email', channel: 'email', action: 'grant', occurredAt: '2023-01-01T00:00:00Z' },
    });
    await t.call('POST', '/v1/segments', {
      body: {
        key: 'renew',
        name: 'Renew',
        filter: {
          all: [
            { field: 'attributes.vip', op: 'eq', value: 'renew' },
            { consent: { purpose: 'commercial-email', channel: 'email', status: ['granted'] } },
          ],
        },
      },
    });
    const now = t.clock.now().getTime();
    // startAt three weeks ago: step 1 goes now, step 2 only a cadence later.
    const created = await t.call('POST', '/v1/campaigns', {
      body: {
        ...valid,
        key: 'renew',
        segment: 'renew',
        startAt: new Date(now - 21 * 86_400_000).toISOString(),
        deadline: new Date(now + 30 * 86_400_000).toISOString(),
      },
    });
    expect(created.statusCode, created.body).toBe(201);
    expect((await t.call('POST', '/v1/campaigns/renew/launch')).json().launchReport).toMatchObject({ audience: 1, excluded: 0 });
    await runDueJobs(t.ctx, t.clock.now());
    await runDueJobs(t.ctx, new Date(now + 60_000));
    const steps = (await t.call('GET', '/v1/campaigns/renew/stats')).json().steps;
    expect(steps).toEqual([expect.objectContaining({ step: 1, sent: 1, cancelled: 0 })]);

    const outbox = (await t.call('GET', `/v1/outbox?contactId=${old.id}`)).json().items;
    const message = (await t.call('GET', `/v1/outbox/${outbox[0].id}`)).json();
    const link = /https:\/\/consent\.example(\/c\/[A-Za-z0-9_.-]+)/.exec(message.text)?.[1] as string;
    const post = await t.call('POST', link, {
      key: null,
      body: 'confirm=yes',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(post.statusCode).toBe(200);
    const history = (await t.call('GET', `/v1/contacts/${old.id}/consents/history`)).json();
    expect((history.items ?? history).at(-1)).toMatchObject({ action: 'renewed', status: 'granted', source: { type: 'campaign' } });
  });

  it.runIf(dialect === 'postgres')('runs the scheduled jobs on one node at a time (advisory lock), while every node sends', async () => {
    const { sql } = await import('kysely');
    await t.ctx.db.kysely.connection().execute(async (conn) => {
      // Another node holds the scheduler's lock for its tick.
      await sql`select pg_advisory_lock(7341001)`.execute(conn);
      try {
        const results = await runDueJobs(t.ctx, t.clock.now());
        const ran = Object.fromEntries(results.map((r) => [r.job, r.ran]));
        expect(ran).toMatchObject({
          'campaign-steps': false,
          'expire-consents': false,
          'dispatch-deliveries': true,
          'dispatch-messages': true,
        });
      } finally {
        await sql`select pg_advisory_unlock(7341001)`.execute(conn);
      }
    });
    const free = await runDueJobs(t.ctx, t.clock.now());
    expect(free.find((r) => r.job === 'campaign-steps')?.ran).toBe(true);
  });

  it.runIf(dialect === 'sqlite')('prints the stats as a table from the CLI', async () => {
    const res = await runCli(['campaigns', 'stats', 'landing'], {
      DATABASE_URL: t.database.url,
      ASSENT_SECRET: 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz',
    });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/step\s+audience\s+queued\s+sent/);
    expect(res.stdout).toMatch(/total\s+1\s+0\s+1/);
    const json = await runCli(['campaigns', 'stats', 'landing', '--json'], {
      DATABASE_URL: t.database.url,
      ASSENT_SECRET: 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz',
    });
    expect(JSON.parse(json.stdout).totals.confirmed).toBe(1);
  });
});

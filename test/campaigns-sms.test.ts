// The re-permission campaign by SMS, through the outbox provider, on each store: the send waits
// for sending hours (Mon–Sat 08:00–20:00 Paris), every SMS carries a short confirm link and
// "STOP au 36180", inbound replies OUI / STOP (accents, case, spaces ignored) confirm or withdraw
// and suppress, the short link confirms, and the weekly reminder skips whoever answered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signHookBody } from '../src/modules/hooks/index.ts';
import { runDueJobs } from '../src/modules/scheduler/index.ts';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { decision, frenchMobile } from './helpers/factories.ts';

const HOOKS_SECRET = 'hooks-secret-0123456789';
// A Sunday, 11:00 in Paris: SMS may not go before Monday 08:00 Paris (07:00 UTC).
const SUNDAY = '2026-11-22T10:00:00.000Z';
const MONDAY_8 = '2026-11-23T07:00:00.000Z';
const DAY = 86_400_000;

interface Sms {
  id: string;
  to: string;
  text: string;
  contactId: string;
}

describe.each(dialects)('re-permission campaign by SMS on %s', (dialect) => {
  let t: TestApp;
  const phones: string[] = [];
  const ids = new Map<string, string>();

  const outboxSms = async (): Promise<Sms[]> => {
    const rows = await t.ctx.db.kysely
      .selectFrom('messages')
      .select(['id', 'to_address', 'body', 'contact_id'])
      .where('channel_key', '=', 'sms')
      .orderBy('id')
      .execute();
    return rows.map((r) => ({ id: r.id, to: r.to_address as string, text: r.body, contactId: r.contact_id as string }));
  };
  const inbound = async (from: string, text: string) => {
    const body = JSON.stringify({ from, to: '36180', text });
    const res = await t.call('POST', '/hooks/sms/inbound', {
      key: null,
      body,
      headers: {
        'content-type': 'application/json',
        'assent-signature': signHookBody(HOOKS_SECRET, body, Math.floor(t.clock.now().getTime() / 1000)),
      },
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };
  const stats = async () => (await t.call('GET', '/v1/campaigns/sms-2026/stats')).json();

  beforeAll(async () => {
    t = await buildTestApp(dialect, {
      now: SUNDAY,
      env: { HOOKS_SECRET, PUBLIC_URL: 'https://c.example', COMPANY_NAME: 'Maison Test', RATE_LIMIT_PER_MINUTE: '10000' },
    });
    for (let i = 0; i < 20; i++) {
      const phone = frenchMobile();
      const res = await t.call('POST', '/v1/contacts', { body: { phone, firstName: `P${i}`, locale: 'fr' } });
      expect(res.statusCode, res.body).toBe(201);
      phones.push(phone);
      ids.set(phone, res.json().id);
    }
    await t.call('POST', '/v1/segments', {
      body: { key: 'no-sms', name: 'No SMS consent', filter: { consent: { purpose: 'commercial-sms', channel: 'sms', status: ['none'] } } },
    });
  });
  afterAll(async () => t?.close());

  it('defers the first SMS outside sending hours, then sends each with a short link and STOP', async () => {
    const created = await t.call('POST', '/v1/campaigns', {
      body: {
        key: 'sms-2026',
        name: 'Re-permission SMS',
        segment: 'no-sms',
        purposes: ['commercial-sms'],
        channel: 'sms',
        startAt: SUNDAY,
        deadline: new Date(Date.parse(SUNDAY) + 20 * DAY).toISOString(),
      },
    });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json().templates).toEqual({ first: 'repermission-sms', reminder: 'repermission-sms' });
    expect((await t.call('POST', '/v1/campaigns/sms-2026/launch')).json().launchReport.audience).toBe(20);

    const sunday = await runDueJobs(t.ctx, t.clock.now());
    expect(sunday.find((j) => j.job === 'dispatch-deliveries')?.result).toMatchObject({ deferred: 20, stored: 0 });
    expect(await outboxSms()).toHaveLength(0);
    expect((await stats()).totals).toMatchObject({ queued: 20, sent: 0 });

    t.clock.set(new Date(Date.parse(MONDAY_8) - 60_000)); // 07:59 Paris: still waiting
    await runDueJobs(t.ctx, t.clock.now());
    expect(await outboxSms()).toHaveLength(0);

    t.clock.set(MONDAY_8);
    await runDueJobs(t.ctx, t.clock.now());
    const sms = await outboxSms();
    expect(sms).toHaveLength(20);
    expect(new Set(sms.map((s) => s.to))).toEqual(new Set(phones));
    for (const s of sms) {
      expect(s.text).toContain('STOP au 36180');
      expect(s.text).toMatch(/https:\/\/c\.example\/c\/\d+\.[A-Za-z0-9_-]{16}/);
      expect(s.text.length).toBeLessThan(200);
    }
    expect((await stats()).totals).toMatchObject({ sent: 20, queued: 0, pending: 20 });
    // The outbox keeps them readable through the API.
    const listed = (await t.call('GET', `/v1/outbox?contactId=${ids.get(phones[0] as string)}`)).json().items;
    expect(listed[0]).toMatchObject({ channel: 'sms', kind: 'campaign', status: 'stored' });
  });

  it('maps replies: OUI confirms, STOP / ARRÊT withdraw and suppress (case, accents, spaces ignored)', async () => {
    const [yes, yesLower, stop, arret] = phones as [string, string, string, string];
    expect(await inbound(yes, 'OUI')).toMatchObject({ action: 'confirmed' });
    expect(await inbound(yesLower, ' oui. ')).toMatchObject({ action: 'confirmed' });
    expect(await inbound(stop, 'Stop')).toMatchObject({ action: 'withdrawn' });
    expect(await inbound(arret, '  arrêt ')).toMatchObject({ action: 'withdrawn' });
    expect(await inbound(phones[4] as string, 'Bonjour, qui êtes-vous ?')).toMatchObject({ action: 'ignored' });

    const allowed = await decision(t, { contactId: ids.get(yes) as string, purpose: 'commercial-sms', channel: 'sms' });
    expect(allowed.allowed).toBe(true);
    const history = (await t.call('GET', `/v1/contacts/${ids.get(yes)}/consents/history`)).json();
    expect((history.items ?? history).at(-1)).toMatchObject({
      source: { type: 'sms_reply', ref: expect.stringMatching(/^sms-2026\/1\/\d+$/) },
    });
    const stopped = await decision(t, { contactId: ids.get(arret) as string, purpose: 'commercial-sms', channel: 'sms' });
    expect(stopped.allowed).toBe(false);
    expect(stopped.reason).toMatch(/suppressed/);
  });

  it('confirms through the short link (GET shows, POST records), then reminds only those who did not answer', async () => {
    const sms = await outboxSms();
    const mine = sms.find((s) => s.to === phones[5]) as Sms;
    const link = /https:\/\/c\.example(\/c\/\S+)/.exec(mine.text)?.[1] as string;
    const page = await t.call('GET', link, { key: null });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<form method="post"');
    const post = await t.call('POST', link, {
      key: null,
      body: 'confirm=yes',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(post.statusCode).toBe(200);
    expect(
      (await decision(t, { contactId: ids.get(phones[5] as string) as string, purpose: 'commercial-sms', channel: 'sms' })).allowed,
    ).toBe(true);
    expect((await stats()).totals).toMatchObject({ confirmed: 3, unsubscribed: 2, clicked: 1, pending: 15 });

    t.clock.set(new Date(Date.parse(MONDAY_8) + 7 * DAY));
    await runDueJobs(t.ctx, t.clock.now());
    const reminders = (await outboxSms()).slice(20);
    expect(reminders).toHaveLength(15);
    const answered = new Set([0, 1, 2, 3, 5].map((i) => phones[i]));
    for (const r of reminders) expect(answered.has(r.to)).toBe(false);
  });
});

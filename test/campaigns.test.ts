// The seeds' re-permission campaign, end to end on each store, with a real SMTP sink: 1,000
// contacts, 600 without email consent (50 of whom unsubscribed earlier). Launch, confirmations
// and unsubscribes through the links found in the mail, weekly reminders driven by the
// scheduler "as if it were" each week, stats at every step, the deadline, the purge.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCampaignSteps } from '../src/modules/campaigns/index.ts';
import { runDueJobs } from '../src/modules/scheduler/index.ts';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { decision, frenchMobile, record, rowCounts } from './helpers/factories.ts';
import { type ReceivedMail, type SmtpSink, startSmtpSink } from './helpers/smtp-sink.ts';

const PUBLIC_URL = 'https://consent.example';
const START = '2026-11-23T09:00:00.000Z';
const DAY = 86_400_000;

const linkIn = (mail: ReceivedMail, path: 'c' | 'u') => {
  const m = new RegExp(`${PUBLIC_URL}/${path}/([A-Za-z0-9_.-]+)`).exec(mail.parsed.text ?? '');
  if (!m) throw new Error(`no /${path}/ link in the mail`);
  return `/${path}/${m[1]}`;
};
const recipient = (mail: ReceivedMail) => (mail.to[0] ?? '').toLowerCase();

describe.each(dialects)('re-permission campaign (seeds scenario) on %s', (dialect) => {
  let t: TestApp;
  let sink: SmtpSink;
  /** email → contact id */
  const ids = new Map<string, string>();
  const optedIn: string[] = [];
  const withoutConsent: string[] = [];
  const unsubscribedEarlier: string[] = [];
  const customers: string[] = [];
  const withSmsConsent: string[] = [];
  const confirmed = new Set<string>();
  const unsubscribed = new Set<string>();
  let firstMails: ReceivedMail[] = [];

  const stats = async () => {
    const res = await t.call('GET', '/v1/campaigns/seeds-2018/stats');
    expect(res.statusCode).toBe(200);
    return res.json();
  };
  const mailsSince = (from: number) => sink.messages.slice(from);

  beforeAll(async () => {
    sink = await startSmtpSink();
    t = await buildTestApp(dialect, {
      now: START,
      env: {
        SMTP_URL: sink.url,
        PUBLIC_URL,
        MAIL_FROM: 'Maison Test <news@maison.example>',
        COMPANY_NAME: 'Maison Test',
        RATE_LIMIT_PER_MINUTE: '100000',
      },
    });
    // A purpose customers receive under soft opt-in (legitimate interest): another basis.
    const purpose = await t.call('POST', '/v1/purposes', {
      body: {
        key: 'client-offers',
        title: { fr: 'Offres clients', en: 'Customer offers' },
        channels: ['email'],
        legalBasis: 'legitimate_interest',
      },
    });
    expect(purpose.statusCode).toBe(201);
    for (let i = 0; i < 1000; i++) {
      const email = `p${i}@example.com`;
      const customer = i >= 990;
      const phone = i >= 980 && i < 990 ? frenchMobile() : undefined;
      const res = await t.call('POST', '/v1/contacts', {
        body: {
          email,
          firstName: `Prénom${i}`,
          locale: 'fr',
          ...(phone ? { phone } : {}),
          ...(customer ? { lifecycle: 'customer', lastPurchaseAt: '2026-06-01T10:00:00Z' } : {}),
        },
      });
      expect(res.statusCode, res.body).toBe(201);
      ids.set(email, res.json().id);
      if (i < 400) optedIn.push(email);
      else withoutConsent.push(email);
      if (i >= 400 && i < 450) unsubscribedEarlier.push(email);
      if (customer) customers.push(email);
      if (phone) withSmsConsent.push(email);
    }
    for (const email of optedIn) await record(t, { email, purpose: 'commercial-email', channel: 'email', action: 'grant' });
    for (const email of unsubscribedEarlier) {
      await record(t, { email, purpose: 'commercial-email', channel: 'email', action: 'grant', occurredAt: '2025-01-01T00:00:00Z' });
      await record(t, { email, purpose: 'commercial-email', channel: 'email', action: 'withdraw' });
    }
    for (const email of withSmsConsent) await record(t, { email, purpose: 'commercial-sms', channel: 'sms', action: 'grant' });
  }, 180_000);

  afterAll(async () => {
    await t?.close();
    await sink?.close();
  });

  it('selects the seeds’ "Optin = No" segment: 600 contacts', async () => {
    const res = await t.call('POST', '/v1/segments', {
      body: {
        key: 'optin-no',
        name: 'Optin = No',
        filter: { consent: { purpose: 'commercial-email', channel: 'email', status: ['none', 'withdrawn'] } },
      },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect((await t.call('GET', '/v1/segments/optin-no/count')).json()).toEqual({ count: 600 });
  });

  it('refuses to launch with a template that lacks the confirm link', async () => {
    const template = await t.call('POST', '/v1/templates', {
      body: {
        key: 'no-confirm',
        channel: 'email',
        category: 'marketing',
        variants: {
          fr: { subject: 'Bonjour', html: '<p>Hello</p><a href="{{ links.unsubscribe }}">x</a>', text: 'Hello {{ links.unsubscribe }}' },
        },
      },
    });
    expect(template.statusCode, template.body).toBe(201);
    const created = await t.call('POST', '/v1/campaigns', {
      body: {
        key: 'broken',
        name: 'Broken',
        segment: 'optin-no',
        purposes: ['commercial-email'],
        channel: 'email',
        templates: { first: 'no-confirm' },
        startAt: START,
        deadline: new Date(Date.parse(START) + 30 * DAY).toISOString(),
      },
    });
    expect(created.statusCode, created.body).toBe(201);
    const before = await rowCounts(t);
    const launch = await t.call('POST', '/v1/campaigns/broken/launch');
    expect(launch.statusCode).toBe(422);
    expect(launch.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(launch.json().type).toBe('urn:assent:problem:campaign_templates_incomplete');
    expect(JSON.stringify(launch.json().errors)).toContain('/templates/first');
    expect(await rowCounts(t)).toEqual(before);
    expect((await t.call('GET', '/v1/campaigns/broken')).json().status).toBe('draft');
    expect((await t.call('POST', '/v1/campaigns/broken/cancel')).json().status).toBe('cancelled');
  });

  it('launches: 550 first mails, the 50 who unsubscribed earlier excluded with their reason', async () => {
    const created = await t.call('POST', '/v1/campaigns', {
      body: {
        key: 'seeds-2018',
        name: 'Re-permission RGPD',
        segment: 'optin-no',
        purposes: ['commercial-email'],
        channel: 'email',
        startAt: START,
        deadline: new Date(Date.parse(START) + 30 * DAY).toISOString(),
        atDeadline: 'purge',
      },
    });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({
      status: 'draft',
      cadenceDays: 7,
      confirmation: 'button',
      templates: { first: 'repermission-first' },
    });
    const launched = await t.call('POST', '/v1/campaigns/seeds-2018/launch');
    expect(launched.statusCode, launched.body).toBe(200);
    expect(launched.json().launchReport).toMatchObject({ audience: 550, excluded: 50, excludedByReason: { withdrawn: 50 } });

    await runDueJobs(t.ctx, t.clock.now());
    firstMails = await sink.waitFor(550);
    expect(sink.messages).toHaveLength(550);
    const to = new Set(firstMails.map(recipient));
    expect(to.size).toBe(550);
    for (const email of unsubscribedEarlier) expect(to.has(email)).toBe(false);
    for (const email of optedIn) expect(to.has(email)).toBe(false);

    const mail = firstMails[0] as ReceivedMail;
    expect(mail.parsed.subject).toContain('Maison Test');
    expect(mail.parsed.text).toContain('23/12/2026');
    const header = (name: string) =>
      mail.parsed.headerLines
        .find((h) => h.key === name)
        ?.line.replace(/\r?\n(?=[ \t])/g, '')
        .replace(/^[^:]+:\s*/, '');
    expect(header('list-unsubscribe')).toMatch(new RegExp(`^<${PUBLIC_URL}/u/[^>]+>, <mailto:`));
    expect(header('list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');

    const s = await stats();
    expect(s.totals).toMatchObject({ audience: 550, excluded: 50, sent: 550, confirmed: 0, unsubscribed: 0, pending: 550 });
    expect(s.steps).toEqual([expect.objectContaining({ step: 1, audience: 550, sent: 550, queued: 0 })]);
  });

  it('records 200 confirmations (a GET only shows the page) and 30 unsubscribes from the links', async () => {
    const byRecipient = new Map(firstMails.map((m) => [recipient(m), m]));
    const responders = withoutConsent.filter(
      (e) => !unsubscribedEarlier.includes(e) && !customers.includes(e) && !withSmsConsent.includes(e),
    );
    for (const email of responders.slice(0, 200)) {
      const link = linkIn(byRecipient.get(email) as ReceivedMail, 'c');
      const page = await t.call('GET', link, { key: null });
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('<form method="post"');
      const post = await t.call('POST', link, {
        key: null,
        body: 'confirm=yes',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(post.statusCode, post.body).toBe(200);
      confirmed.add(email);
    }
    for (const email of responders.slice(200, 230)) {
      const link = linkIn(byRecipient.get(email) as ReceivedMail, 'u');
      const post = await t.call('POST', link, {
        key: null,
        body: 'List-Unsubscribe=One-Click',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(post.statusCode).toBe(200);
      unsubscribed.add(email);
    }
    // Only a POST confirmed: the decision now allows the 200, with a renewed-or-granted event from the campaign.
    const someone = [...confirmed][0] as string;
    const d = await decision(t, { contactId: ids.get(someone) as string, purpose: 'commercial-email', channel: 'email' });
    expect(d.allowed).toBe(true);
    const history = (await t.call('GET', `/v1/contacts/${ids.get(someone)}/consents/history`)).json();
    const last = (history.items ?? history).at(-1);
    expect(last).toMatchObject({ action: 'granted', source: { type: 'campaign', ref: expect.stringMatching(/^seeds-2018\/1\/\d+$/) } });
    // A second POST of the same link records nothing more.
    const again = await t.call('POST', linkIn(byRecipient.get(someone) as ReceivedMail, 'c'), {
      key: null,
      body: 'confirm=yes',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(again.body).toContain('déjà');

    const s = await stats();
    expect(s.totals).toMatchObject({ sent: 550, clicked: 200, confirmed: 200, unsubscribed: 30, pending: 320 });
  });

  it('sends 320 reminders a week later, none to the 230 who answered', async () => {
    t.clock.set(new Date(Date.parse(START) + 7 * DAY));
    const from = sink.messages.length;
    await runDueJobs(t.ctx, t.clock.now());
    const reminders = await sink.waitFor(from + 320).then(() => mailsSince(from));
    expect(reminders).toHaveLength(320);
    for (const m of reminders) {
      expect(confirmed.has(recipient(m)) || unsubscribed.has(recipient(m))).toBe(false);
      expect(m.parsed.subject).toMatch(/^Rappel/);
    }
    const s = await stats();
    expect(s.steps[1]).toMatchObject({ step: 2, audience: 320, sent: 320, confirmed: 0 });
    expect(s.totals).toMatchObject({ sent: 870, confirmed: 200, unsubscribed: 30, pending: 320 });
    // Running the scheduler again the same day adds nothing.
    await runDueJobs(t.ctx, t.clock.now());
    expect(sink.messages).toHaveLength(from + 320);
  });

  it('honours an unsubscribe made between enqueue and send', async () => {
    t.clock.set(new Date(Date.parse(START) + 14 * DAY));
    const from = sink.messages.length;
    const [step] = await runCampaignSteps(t.ctx, t.clock.now());
    expect(step).toMatchObject({ campaign: 'seeds-2018', step: 3, queued: 320 });
    // One of them unsubscribes through their step-2 link before the queue is drained.
    const reminder = sink.messages.find(
      (m) => !confirmed.has(recipient(m)) && !unsubscribed.has(recipient(m)) && m.parsed.subject?.startsWith('Rappel'),
    );
    const email = recipient(reminder as ReceivedMail);
    const post = await t.call('POST', linkIn(reminder as ReceivedMail, 'u'), {
      key: null,
      body: 'List-Unsubscribe=One-Click',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(post.statusCode).toBe(200);
    unsubscribed.add(email);
    await runDueJobs(t.ctx, t.clock.now());
    await sink.waitFor(from + 319);
    const sent = mailsSince(from);
    expect(sent).toHaveLength(319);
    expect(sent.some((m) => recipient(m) === email)).toBe(false);
    const s = await stats();
    expect(s.steps[2]).toMatchObject({ step: 3, audience: 320, sent: 319, cancelled: 1, cancelledByReason: { suppressed: 1 } });
    expect(s.totals).toMatchObject({ confirmed: 200, unsubscribed: 31, pending: 319 });
  });

  it('goes on weekly until the deadline, then closes and lists the non-responders', async () => {
    for (const day of [21, 28]) {
      t.clock.set(new Date(Date.parse(START) + day * DAY));
      const from = sink.messages.length;
      await runDueJobs(t.ctx, t.clock.now());
      await sink.waitFor(from + 319);
      expect(mailsSince(from)).toHaveLength(319);
    }
    const s = await stats();
    expect(s.steps.map((x: { sent: number }) => x.sent)).toEqual([550, 320, 319, 319, 319]);
    expect(s.totals).toMatchObject({ audience: 550, excluded: 50, sent: 1827, confirmed: 200, unsubscribed: 31, pending: 319 });
    expect(s.daily.map((d: { date: string }) => d.date)).toEqual(['2026-11-23', '2026-11-30', '2026-12-07', '2026-12-14', '2026-12-21']);

    t.clock.set(new Date(Date.parse(START) + 30 * DAY));
    const from = sink.messages.length;
    await runDueJobs(t.ctx, t.clock.now());
    expect((await t.call('GET', '/v1/campaigns/seeds-2018')).json().status).toBe('closed');
    t.clock.set(new Date(Date.parse(START) + 35 * DAY));
    await runDueJobs(t.ctx, t.clock.now());
    expect(sink.messages).toHaveLength(from);

    const report = await t.call('GET', '/v1/campaigns/seeds-2018/report?limit=1000');
    expect(report.statusCode).toBe(200);
    expect(report.json()).toMatchObject({ status: 'closed', nonResponders: 319 });
    expect(report.json().items).toHaveLength(319);
  });

  it('purges the non-responders left without any basis; keeps customers and other consents; the ledger verifies', async () => {
    const dry = await t.call('POST', '/v1/campaigns/seeds-2018/purge', { body: { dryRun: true } });
    expect(dry.statusCode, dry.body).toBe(200);
    // 319 non-responders: 10 customers (soft opt-in) and 10 with an SMS consent keep a basis.
    expect(dry.json()).toMatchObject({ dryRun: true, counts: { nonResponders: 319, erase: 299, keptOtherBasis: 20, alreadyErased: 0 } });
    expect(dry.json().counts.keptByReason).toEqual({ soft_opt_in: 10, consent: 10 });
    const contactsBefore = await t.ctx.db.kysely
      .selectFrom('contacts')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('erased_at', 'is', null)
      .executeTakeFirstOrThrow();
    expect(Number(contactsBefore.n)).toBe(1000);

    const purge = await t.call('POST', '/v1/campaigns/seeds-2018/purge', { body: {} });
    expect(purge.statusCode, purge.body).toBe(200);
    expect(purge.json()).toMatchObject({ status: 'completed', erased: 299 });
    const left = await t.ctx.db.kysely.selectFrom('contacts').select(['id', 'email', 'erased_at']).execute();
    const erased = left.filter((c) => c.erased_at !== null);
    expect(erased).toHaveLength(299);
    const erasedIds = new Set(erased.map((c) => c.id));
    for (const email of [...confirmed, ...unsubscribed, ...customers, ...withSmsConsent, ...optedIn, ...unsubscribedEarlier]) {
      expect(erasedIds.has(ids.get(email) as string)).toBe(false);
    }
    // The unsubscribed are on the suppression list; the report is kept.
    const suppressed = await t.ctx.db.kysely
      .selectFrom('suppressions')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('channel_key', '=', 'email')
      .where('reason', '=', 'unsubscribed')
      .executeTakeFirstOrThrow();
    expect(Number(suppressed.n)).toBe(31);
    expect((await t.call('GET', '/v1/campaigns/seeds-2018/purge')).json()).toMatchObject({ status: 'completed', erased: 299 });
    // Asked again, the purge erases nothing more.
    expect((await t.call('POST', '/v1/campaigns/seeds-2018/purge', { body: {} })).json()).toMatchObject({ erased: 299 });
    const verify = await t.call('GET', '/v1/ledger/verify');
    expect(verify.json()).toMatchObject({ ok: true });
  });
});

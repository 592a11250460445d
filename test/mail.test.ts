// Mail and links with real parts: Assent sends through its pooled SMTP transport to a real SMTP
// server in the test (smtp-server), mail is parsed back with mailparser, and the links found in
// it are followed over HTTP: double opt-in, one-click unsubscribe (RFC 8058), preference centre,
// link tokens (tampered, expired, wrong kind, reused), template opt-out rule.
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preferencesLink } from '../src/modules/collection/index.ts';
import { dispatchDue } from '../src/modules/messaging/index.ts';
import { runDueJobs } from '../src/modules/scheduler/index.ts';
import { words } from '../src/pages/i18n.ts';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, decision, frenchMobile, record, rowCounts } from './helpers/factories.ts';
import { type ReceivedMail, type SmtpSink, startSmtpSink } from './helpers/smtp-sink.ts';

const PUBLIC_URL = 'https://consent.example';
const DAY = 86_400_000;

interface HistoryEvent {
  id: string;
  purpose: string;
  channel: string;
  action: string;
  status: string;
  source: { type: string; ref: string | null };
  evidence: Record<string, unknown>;
}

describe.each(dialects)('mail and links on %s', (dialect) => {
  let t: TestApp;
  let sink: SmtpSink;

  beforeAll(async () => {
    sink = await startSmtpSink();
    t = await buildTestApp(dialect, {
      env: {
        SMTP_URL: sink.url,
        PUBLIC_URL,
        MAIL_FROM: 'Maison Test <news@maison.example>',
        COMPANY_NAME: 'Maison Test',
        COMPANY_ADDRESS: '1 rue de la Paix, 75002 Paris',
        // The suite posts to public pages more often than a person would in a minute.
        RATE_LIMIT_PER_MINUTE: '10000',
      },
    });
    await t.call('POST', '/v1/purposes', {
      body: {
        key: 'doi-news',
        title: { fr: 'Lettre d’information', en: 'Newsletter' },
        description: { fr: 'Nos nouvelles chaque mois', en: 'Our news every month' },
        channels: ['email'],
        doubleOptIn: true,
      },
    });
    await t.call('POST', '/v1/templates', {
      body: {
        key: 'promo-week',
        channel: 'email',
        category: 'marketing',
        variants: {
          fr: {
            subject: 'Cette semaine chez {{ company.name }}',
            html: '<p>Bonjour {{ contact.firstName }}, nos offres de la semaine.</p><p><a href="{{ links.unsubscribe }}">Se désinscrire</a></p>',
            text: 'Bonjour {{ contact.firstName }}, nos offres de la semaine.\nSe désinscrire : {{ links.unsubscribe }}',
          },
          en: {
            subject: 'This week at {{ company.name }}',
            html: '<p>Hello {{ contact.firstName }}, this week’s offers.</p><p><a href="{{ links.unsubscribe }}">Unsubscribe</a></p>',
            text: 'Hello {{ contact.firstName }}, this week’s offers.\nUnsubscribe: {{ links.unsubscribe }}',
          },
        },
      },
    });
  });

  afterAll(async () => {
    await t?.close();
    await sink?.close();
  });

  /** Lets the background dispatch finish, then sends whatever is still due. */
  async function drain() {
    await Promise.allSettled([...t.ctx.background]);
    const result = await dispatchDue(t.ctx);
    await Promise.allSettled([...t.ctx.background]);
    return result;
  }

  /** The mail(s) the sink received for an address, after draining the outbox. */
  async function mailTo(address: string, count = 1): Promise<ReceivedMail[]> {
    await drain();
    const deadline = Date.now() + 5_000;
    while (sink.to(address).length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const mails = sink.to(address);
    expect(mails).toHaveLength(count);
    return mails;
  }

  /** A raw header as it travelled (unfolded), not mailparser's interpretation of it. */
  const rawHeader = (mail: ReceivedMail, name: string): string | undefined => {
    const line = mail.parsed.headerLines.find((h) => h.key === name.toLowerCase())?.line;
    return line?.replace(/\r?\n(?=[ \t])/g, '').replace(/^[^:]+:\s*/, '');
  };

  const linksIn = (text: string) => [...text.matchAll(/https?:\/\/[^\s"'<>]+/g)].map((m) => m[0]);
  const pathOf = (url: string) => {
    expect(url.startsWith(`${PUBLIC_URL}/`)).toBe(true);
    return url.slice(PUBLIC_URL.length);
  };

  const history = async (contactId: string): Promise<HistoryEvent[]> =>
    (await t.call('GET', `/v1/contacts/${contactId}/consents/history`)).json().items;

  const stateOf = async (contactId: string, purpose: string, channel = 'email'): Promise<string> => {
    const states = (await t.call('GET', `/v1/contacts/${contactId}/consents`)).json().items as Array<{
      purpose: string;
      channel: string;
      status: string;
    }>;
    return states.find((s) => s.purpose === purpose && s.channel === channel)?.status ?? 'none';
  };

  /** A person's browser (or a mail scanner): no API key, no cookie. */
  const visit = (method: 'GET' | 'POST', path: string, options: { form?: string; headers?: Record<string, string> } = {}) =>
    t.app.inject({
      method,
      url: path,
      headers: {
        'user-agent': 'Mozilla/5.0 (test)',
        ...(options.form !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        ...options.headers,
      },
      ...(options.form !== undefined ? { payload: options.form } : {}),
    });

  /** What a browser would post from the page's one form: its hidden inputs. */
  const hiddenInputs = (html: string) =>
    new URLSearchParams(
      [...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1] as string, m[2] as string]),
    ).toString();

  const countOf = async (table: 'messages' | 'used_tokens') =>
    Number(
      (
        await t.ctx.db.kysely
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const everything = async () => ({
    ...(await rowCounts(t)),
    messages: await countOf('messages'),
    used_tokens: await countOf('used_tokens'),
  });

  /** A friendly page: HTML, the given status, a human sentence, no stack trace nor problem+json. */
  function expectFriendlyPage(
    res: LightMyRequestResponse,
    status: number,
    key: 'invalid' | 'expired' | 'used' | 'nothing',
    lang: 'fr' | 'en' = 'en',
  ) {
    expect(res.statusCode).toBe(status);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    const w = words[lang] as unknown as Record<string, string>;
    expect(res.body).toContain(`<html lang="${lang}">`);
    expect(res.body).toContain(escapeHtml(w[`${key}_title`] as string));
    expect(res.body).toContain(escapeHtml(w[`${key}_text`] as string));
    expect(res.body).not.toMatch(/\bat \S+ \(|Error:|node_modules|\.ts:\d+|"statusCode"|problem\+json/);
  }

  /** Queues a double opt-in for a new contact and returns it with its mail and confirm link. */
  async function doubleOptIn(locale: 'fr' | 'en') {
    const contact = await createContact(t, { locale, firstName: locale === 'en' ? 'Alex' : 'Camille' });
    const grant = await record(t, { contactId: contact.id, purpose: 'doi-news', channel: 'email', action: 'grant' });
    expect(grant.status).toBe('pending');
    const [mail] = (await mailTo(contact.email as string)) as [ReceivedMail];
    const confirm = linksIn(mail.parsed.text ?? '').find((l) => l.startsWith(`${PUBLIC_URL}/c/`));
    expect(confirm).toBeDefined();
    return { contact, mail, confirmUrl: confirm as string, confirmPath: pathOf(confirm as string) };
  }

  /** A contact who granted commercial email, sent one marketing mail; returns its unsubscribe URL. */
  async function marketingMail(overrides: Record<string, unknown> = {}) {
    const contact = await createContact(t, { locale: 'en', ...overrides });
    await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
    const sent = await t.call('POST', '/v1/messages', {
      body: { contactId: contact.id, template: 'promo-week', purpose: 'commercial-email' },
      key: t.keys.write,
    });
    expect(sent.statusCode).toBe(202);
    const [mail] = (await mailTo(contact.email as string)) as [ReceivedMail];
    const listUnsubscribe = rawHeader(mail, 'List-Unsubscribe') ?? '';
    const url = /^<(https:\/\/[^>]+)>/.exec(listUnsubscribe)?.[1] as string;
    return { contact, mail, messageId: sent.json().id as string, listUnsubscribe, unsubscribeUrl: url, unsubscribePath: pathOf(url) };
  }

  describe('double opt-in', () => {
    it('mails the confirmation in the contact’s language, with a Message-ID, no advertising, and a link that only a POST confirms', async () => {
      const en = await doubleOptIn('en');
      const fr = await doubleOptIn('fr');

      // The right language, subject and body alike.
      expect(en.mail.parsed.subject).toBe('Please confirm your subscription — Maison Test');
      expect(en.mail.parsed.text).toContain('You asked to receive “Newsletter”');
      expect(en.mail.parsed.html).toContain('<html lang="en">');
      expect(en.mail.parsed.html).toContain('I confirm');
      expect(fr.mail.parsed.subject).toBe('Confirmez votre inscription — Maison Test');
      expect(fr.mail.parsed.text).toContain('Vous avez demandé à recevoir « Lettre d’information »');
      expect(fr.mail.parsed.html).toContain('<html lang="fr">');
      expect(fr.mail.parsed.html).toContain('Je confirme');
      expect(fr.mail.parsed.text).not.toMatch(/confirm here|Please confirm/);
      expect(en.mail.parsed.from?.value).toEqual([{ name: 'Maison Test', address: 'news@maison.example' }]);

      for (const { contact, mail, confirmUrl } of [en, fr]) {
        // A Message-ID derived from the message id, the one the outbox records; status sent.
        const outbox = (await t.call('GET', `/v1/outbox?contactId=${contact.id}`)).json().items;
        expect(outbox).toHaveLength(1);
        expect(outbox[0]).toMatchObject({ kind: 'double_opt_in', templateKey: 'double-opt-in', status: 'sent', purpose: null });
        expect(mail.parsed.messageId).toBe(outbox[0].messageId);
        expect(mail.parsed.messageId).toBe(`<${outbox[0].id.toLowerCase()}@maison.example>`);
        expect(mail.to).toEqual([contact.email]);

        // No advertising (RULES 23): no list headers, no opt-out footer, the only link is the confirmation.
        expect(rawHeader(mail, 'List-Unsubscribe')).toBeUndefined();
        expect(rawHeader(mail, 'List-Unsubscribe-Post')).toBeUndefined();
        expect(linksIn(mail.parsed.text ?? '')).toEqual([confirmUrl]);
        const hrefs = [...(mail.parsed.html || '').matchAll(/href="([^"]+)"/g)].map((m) => m[1]);
        expect(hrefs).toEqual([confirmUrl]);
        expect(`${mail.parsed.text}${mail.parsed.html}`).not.toMatch(/unsubscribe|désinscri|\/u\/|offer|offre|promo/i);
      }
      const template = (await t.call('GET', '/v1/templates/double-opt-in')).json();
      expect(template).toMatchObject({ category: 'transactional', channel: 'email', builtin: true });

      // Scanner safety (RULES 22): two GETs show the page and change nothing.
      const before = await everything();
      for (let i = 0; i < 2; i++) {
        const page = await visit('GET', en.confirmPath);
        expect(page.statusCode).toBe(200);
        expect(page.headers['content-type']).toMatch(/^text\/html/);
        expect(page.body).toContain('<html lang="en">');
        expect(page.body).toContain('Newsletter');
        expect(page.body.match(/<form method="post"/g)).toHaveLength(1);
      }
      expect(await everything()).toEqual(before);
      expect(await stateOf(en.contact.id, 'doi-news')).toBe('pending');
      expect(await decision(t, { contactId: en.contact.id, purpose: 'doi-news', channel: 'email' })).toMatchObject({
        allowed: false,
        reason: 'doi_pending',
      });

      // One POST (the page's button) confirms.
      const page = await visit('GET', en.confirmPath);
      const action = /<form method="post" action="([^"]+)"/.exec(page.body)?.[1] as string;
      expect(action.split('?')[0]).toBe(en.confirmPath);
      const confirmed = await visit('POST', action.replace(/&amp;/g, '&'), { form: hiddenInputs(page.body) });
      expect(confirmed.statusCode).toBe(200);
      expect(confirmed.body).toContain(words.en.confirmed_title);
      expect(await stateOf(en.contact.id, 'doi-news')).toBe('granted');
      expect(await decision(t, { contactId: en.contact.id, purpose: 'doi-news', channel: 'email' })).toMatchObject({
        allowed: true,
        reason: 'consent',
      });
      const events = await history(en.contact.id);
      expect(events.map((e) => e.action)).toEqual(['granted', 'confirmed']);
      expect(events[1]).toMatchObject({ status: 'granted', source: { type: 'double_opt_in', ref: 'doi' } });
      expect(events[1]?.evidence).toMatchObject({
        userAgent: 'Mozilla/5.0 (test)',
        method: 'double-opt-in link',
        url: `${PUBLIC_URL}/c/[token]`,
      });

      // The French link works too, and its page speaks French.
      const frPage = await visit('GET', fr.confirmPath);
      expect(frPage.body).toContain('<html lang="fr">');
      expect(frPage.body).toContain('Lettre d’information');
      expect((await visit('POST', fr.confirmPath, { form: 'confirm=yes' })).statusCode).toBe(200);
      expect(await stateOf(fr.contact.id, 'doi-news')).toBe('granted');
    });

    it('expires a pending request after 7 days with an expired event; the link then has nothing to confirm', async () => {
      const { contact, confirmPath } = await doubleOptIn('en');
      const start = t.clock.now();
      try {
        // Not yet after 6 days.
        t.clock.set(new Date(start.getTime() + 6 * DAY));
        await runDueJobs(t.ctx, t.clock.now());
        expect(await stateOf(contact.id, 'doi-news')).toBe('pending');

        const later = new Date(start.getTime() + 8 * DAY);
        t.clock.set(later);
        const results = await runDueJobs(t.ctx, later);
        expect(results.find((r) => r.job === 'expire-double-opt-in')).toMatchObject({ ran: true });
        expect(await stateOf(contact.id, 'doi-news')).toBe('expired');
        const events = await history(contact.id);
        expect(events.map((e) => e.action)).toEqual(['granted', 'expired']);
        expect(events[1]).toMatchObject({ status: 'expired', source: { type: 'system', ref: 'double-opt-in-expiry' } });
        // The link expired with the request: a friendly page, nothing written.
        const before = await everything();
        expectFriendlyPage(await visit('GET', confirmPath, { headers: { 'accept-language': 'en' } }), 410, 'expired');
        expectFriendlyPage(await visit('POST', confirmPath, { form: 'confirm=yes', headers: { 'accept-language': 'en' } }), 410, 'expired');
        expect(await everything()).toEqual(before);
      } finally {
        t.clock.set(start);
      }
      // Within the link's own validity, the expired request leaves nothing to confirm.
      const before = await everything();
      expectFriendlyPage(await visit('GET', confirmPath), 200, 'nothing');
      expectFriendlyPage(await visit('POST', confirmPath, { form: 'confirm=yes' }), 200, 'nothing');
      expect(await everything()).toEqual(before);
      expect(await stateOf(contact.id, 'doi-news')).toBe('expired');
    });
  });

  describe('marketing mail and one-click unsubscribe', () => {
    it('carries both RFC 8058 headers; one-click POST without cookie or CSRF withdraws once, GETs change nothing', async () => {
      const { contact, mail, listUnsubscribe, unsubscribeUrl, unsubscribePath } = await marketingMail({ firstName: 'Robin' });
      expect(mail.parsed.subject).toBe('This week at Maison Test');
      expect(mail.parsed.text).toContain('Hello Robin');
      expect(listUnsubscribe).toMatch(
        /^<https:\/\/consent\.example\/u\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+>, <mailto:news@maison\.example\?subject=unsubscribe>$/,
      );
      expect(rawHeader(mail, 'List-Unsubscribe-Post')).toBe('List-Unsubscribe=One-Click');
      expect(mail.parsed.messageId).toMatch(/^<[0-9a-z]{26}@maison\.example>$/);
      // The footer and the body link point to the same opt-out.
      expect(linksIn(mail.parsed.text ?? '')).toContain(unsubscribeUrl);
      expect(mail.parsed.html).toContain(`href="${unsubscribeUrl}"`);
      expect(mail.parsed.text).toContain('1 rue de la Paix, 75002 Paris');

      // Two GETs (a scanner) show the page and change nothing.
      const before = await everything();
      for (let i = 0; i < 2; i++) {
        const page = await visit('GET', unsubscribePath);
        expect(page.statusCode).toBe(200);
        expect(page.headers['content-type']).toMatch(/^text\/html/);
        expect(page.body).toContain(words.en.unsubscribe_button);
      }
      expect(await everything()).toEqual(before);
      expect(await stateOf(contact.id, 'commercial-email')).toBe('granted');

      // RFC 8058 one-click: a bare POST, no cookie, no CSRF token, no API key.
      const oneClick = await t.app.inject({
        method: 'POST',
        url: unsubscribePath,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'List-Unsubscribe=One-Click',
      });
      expect(oneClick.statusCode).toBe(200);
      expect(oneClick.headers['set-cookie']).toBeUndefined();
      expect(await stateOf(contact.id, 'commercial-email')).toBe('withdrawn');
      expect(await decision(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email' })).toMatchObject({
        allowed: false,
        reason: 'withdrawn',
      });
      const events = await history(contact.id);
      expect(events.map((e) => e.action)).toEqual(['granted', 'withdrawn']);
      expect(events[1]).toMatchObject({ purpose: 'commercial-email', channel: 'email', source: { type: 'unsubscribe' } });
      expect(events[1]?.evidence).toMatchObject({ method: 'one-click (RFC 8058)' });

      // The same POST again writes nothing new; GETs afterwards neither.
      const after = await everything();
      const again = await t.app.inject({
        method: 'POST',
        url: unsubscribePath,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'List-Unsubscribe=One-Click',
      });
      expect(again.statusCode).toBe(200);
      for (let i = 0; i < 2; i++) expect((await visit('GET', unsubscribePath)).statusCode).toBe(200);
      expect(await everything()).toEqual(after);
      expect(await history(contact.id)).toHaveLength(2);
    });

    it('withdraws once when the one-click POST and the person’s click arrive together', async () => {
      const { contact, unsubscribePath } = await marketingMail();
      const oneClick = () =>
        t.app.inject({
          method: 'POST',
          url: unsubscribePath,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: 'List-Unsubscribe=One-Click',
        });
      const byHand = () => visit('POST', unsubscribePath, { form: 'unsubscribe=yes' });
      const answers = await Promise.all([oneClick(), byHand(), oneClick(), byHand()]);
      for (const res of answers) {
        expect(res.statusCode).toBe(200);
        expect(res.body).toContain(words.en.unsubscribed_title);
      }
      expect((await history(contact.id)).map((e) => e.action)).toEqual(['granted', 'withdrawn']);
      // Granted again later, the same link withdraws again (once).
      await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
      await Promise.all([oneClick(), oneClick()]);
      expect((await history(contact.id)).map((e) => e.action)).toEqual(['granted', 'withdrawn', 'granted', 'withdrawn']);
    });

    it('refuses a marketing send without an allowing decision, and without a purpose', async () => {
      const contact = await createContact(t, { locale: 'en' });
      const before = await everything();
      const refused = await t.call('POST', '/v1/messages', {
        body: { contactId: contact.id, template: 'promo-week', purpose: 'commercial-email' },
      });
      expect(refused.statusCode).toBe(422);
      expect(refused.json().code).toBe('contact_not_allowed');
      const noPurpose = await t.call('POST', '/v1/messages', { body: { contactId: contact.id, template: 'promo-week' } });
      expect(noPurpose.statusCode).toBe(422);
      expect(noPurpose.json().code).toBe('purpose_required');
      expect(await everything()).toEqual(before);
    });

    it('takes effect before the next queued message: unsubscribed after queueing, the message is cancelled, nothing sent', async () => {
      const first = await marketingMail();
      // A second message is queued while the dispatcher is busy elsewhere (it has not run yet).
      t.ctx.cache.set('dispatch-running', { at: Date.now(), value: true });
      let queuedId: string;
      try {
        const queued = await t.call('POST', '/v1/messages', {
          body: { contactId: first.contact.id, template: 'promo-week', purpose: 'commercial-email' },
        });
        expect(queued.statusCode).toBe(202);
        queuedId = queued.json().id;
        expect((await t.call('GET', `/v1/outbox/${queuedId}`)).json().status).toBe('queued');
        // The person clicks unsubscribe in the first mail.
        const click = await visit('POST', first.unsubscribePath, { form: 'List-Unsubscribe=One-Click' });
        expect(click.statusCode).toBe(200);
      } finally {
        t.ctx.cache.delete('dispatch-running');
        t.ctx.cache.delete('dispatch-again');
      }
      const result = await drain();
      expect(result.cancelled).toBeGreaterThanOrEqual(1);
      const message = (await t.call('GET', `/v1/outbox/${queuedId}`)).json();
      expect(message).toMatchObject({ status: 'cancelled', sentAt: null });
      expect(message.lastError).toContain('withdrawn');
      await new Promise((r) => setTimeout(r, 100));
      expect(sink.to(first.contact.email as string)).toHaveLength(1);
      expect(sink.messages.some((m) => m.parsed.messageId === message.messageId)).toBe(false);
    });
  });

  describe('link tokens', () => {
    it('answers a tampered, wrong-kind or foreign token with a friendly 400 page and writes nothing', async () => {
      const { confirmPath } = await doubleOptIn('en');
      const { unsubscribePath, contact } = await marketingMail();
      const prefsUrl = linksIn((await mailTo(contact.email as string))[0]?.parsed.text ?? '').find((l) => l.includes('/p/'));
      expect(prefsUrl).toBeDefined();
      const prefsPath = pathOf(prefsUrl as string);

      const flip = (path: string, at: 'body' | 'signature') => {
        const [prefix, token] = [path.slice(0, 3), path.slice(3)];
        const [body, signature] = token.split('.') as [string, string];
        const swap = (s: string) => {
          const i = Math.floor(s.length / 2);
          return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
        };
        return `${prefix}${at === 'body' ? `${swap(body)}.${signature}` : `${body}.${swap(signature)}`}`;
      };
      const bad = [
        flip(confirmPath, 'body'),
        flip(confirmPath, 'signature'),
        flip(unsubscribePath, 'body'),
        flip(prefsPath, 'signature'),
        // The right signature on the wrong page: a preferences or unsubscribe token is no confirmation.
        `/c/${prefsPath.slice(3)}`,
        `/c/${unsubscribePath.slice(3)}`,
        `/u/${confirmPath.slice(3)}`,
        `/p/${unsubscribePath.slice(3)}`,
        '/c/not-a-token',
        `/u/${'x'.repeat(900)}.${'y'.repeat(43)}`,
      ];
      const before = await everything();
      for (const path of bad) {
        expectFriendlyPage(await visit('GET', path, { headers: { 'accept-language': 'en-GB,en;q=0.8' } }), 400, 'invalid');
        expectFriendlyPage(
          await visit('POST', path, { form: 'List-Unsubscribe=One-Click', headers: { 'accept-language': 'en' } }),
          400,
          'invalid',
        );
        expectFriendlyPage(
          await visit('POST', `${path}?lang=fr`, { form: 'confirm=yes&consent=commercial-email:email&action=withdraw_all' }),
          400,
          'invalid',
          'fr',
        );
      }
      expect(await everything()).toEqual(before);
      expect(await stateOf(contact.id, 'commercial-email')).toBe('granted');
    });

    it('answers expired links with a friendly 410 page: confirm after 7 days, preferences after 30, unsubscribe after 400', async () => {
      const { contact: pending, confirmPath } = await doubleOptIn('en');
      const { contact, unsubscribePath } = await marketingMail();
      const prefsPath = pathOf(linksIn(sink.to(contact.email as string)[0]?.parsed.text ?? '').find((l) => l.includes('/p/')) as string);
      const start = t.clock.now();
      const at = (days: number, minutes = 0) => t.clock.set(new Date(start.getTime() + days * DAY + minutes * 60_000));
      const cases = [
        { path: confirmPath, days: 7, form: 'confirm=yes' },
        { path: prefsPath, days: 30, form: 'action=withdraw_all' },
        { path: unsubscribePath, days: 400, form: 'List-Unsubscribe=One-Click' },
      ];
      try {
        for (const { path, days, form } of cases) {
          at(days, -1);
          expect((await visit('GET', path)).statusCode).toBe(200);
          at(days, 1);
          const before = await everything();
          // A link that no longer proves anything speaks the browser's language (or French by default).
          expectFriendlyPage(await visit('GET', path, { headers: { 'accept-language': 'en-US,en;q=0.9' } }), 410, 'expired');
          expectFriendlyPage(await visit('POST', path, { form }), 410, 'expired', 'fr');
          expect(await everything()).toEqual(before);
        }
      } finally {
        t.clock.set(start);
      }
      expect(await stateOf(pending.id, 'doi-news')).toBe('pending');
      expect(await stateOf(contact.id, 'commercial-email')).toBe('granted');
    });

    it('confirms once when the confirm button is posted several times at once', async () => {
      const { contact, confirmPath } = await doubleOptIn('en');
      const answers = await Promise.all([1, 2, 3].map(() => visit('POST', confirmPath, { form: 'confirm=yes' })));
      const titles = answers.map((res) => /data-testid="title">([^<]+)</.exec(res.body)?.[1]);
      expect(titles.filter((title) => title === words.en.confirmed_title)).toHaveLength(1);
      for (const res of answers) expect([200, 410]).toContain(res.statusCode);
      expect((await history(contact.id)).map((e) => e.action)).toEqual(['granted', 'confirmed']);
      expect(await stateOf(contact.id, 'doi-news')).toBe('granted');
    });

    it('answers a reused confirmation link with a friendly 410 page and records nothing twice', async () => {
      const { contact, confirmPath } = await doubleOptIn('fr');
      expect((await visit('POST', confirmPath, { form: 'confirm=yes' })).statusCode).toBe(200);
      expect(await stateOf(contact.id, 'doi-news')).toBe('granted');
      // Even once the purpose is pending again, the spent link confirms nothing.
      await record(t, { contactId: contact.id, purpose: 'doi-news', channel: 'email', action: 'withdraw' });
      t.clock.set(new Date(t.clock.now().getTime() + 11 * 60_000));
      await record(t, { contactId: contact.id, purpose: 'doi-news', channel: 'email', action: 'grant' });
      await drain();
      const before = await everything();
      expectFriendlyPage(await visit('POST', confirmPath, { form: 'confirm=yes' }), 410, 'used', 'fr');
      expectFriendlyPage(await visit('GET', confirmPath), 410, 'used', 'fr');
      expect(await everything()).toEqual(before);
      expect(await stateOf(contact.id, 'doi-news')).toBe('pending');
      expect((await history(contact.id)).map((e) => e.action)).toEqual(['granted', 'confirmed', 'withdrawn', 'granted']);
      // The new request got its own mail with its own, working link.
      const mails = await mailTo(contact.email as string, 2);
      const fresh = pathOf(linksIn(mails[1]?.parsed.text ?? '').find((l) => l.includes('/c/')) as string);
      expect(fresh).not.toBe(confirmPath);
      expect((await visit('POST', fresh, { form: 'confirm=yes' })).statusCode).toBe(200);
      expect(await stateOf(contact.id, 'doi-news')).toBe('granted');
    });
  });

  describe('preference centre', () => {
    it('lists every purpose × channel that applies with its state, saves exactly the difference, and withdraws everything', async () => {
      await t.call('POST', '/v1/purposes', {
        body: {
          key: 'pc-events',
          title: { fr: 'Invitations', en: 'Event invitations' },
          channels: ['email', 'sms'],
          infoUrl: 'https://maison.example/events',
        },
      });
      const contact = await createContact(t, { locale: 'en', phone: frenchMobile() });
      await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
      await record(t, { contactId: contact.id, purpose: 'commercial-sms', channel: 'sms', action: 'grant' });
      await record(t, { contactId: contact.id, purpose: 'pc-events', channel: 'sms', action: 'refuse' });
      // A link, as the marketing mail carries it.
      await t.call('POST', '/v1/messages', { body: { contactId: contact.id, template: 'promo-week', purpose: 'commercial-email' } });
      const [mail] = await mailTo(contact.email as string);
      const prefsPath = pathOf(linksIn(mail?.parsed.text ?? '').find((l) => l.includes('/p/')) as string);

      // Every purpose × channel the contact has an address for.
      const purposes = (await t.call('GET', '/v1/purposes')).json().items as Array<{ key: string; channels: string[] }>;
      const channels = new Map(
        ((await t.call('GET', '/v1/channels')).json().items as Array<{ key: string; kind: string }>).map((c) => [c.key, c.kind]),
      );
      const expected = purposes.flatMap((p) => p.channels.filter((c) => channels.has(c)).map((c) => `${p.key}:${c}`)).sort();
      expect(expected).toEqual(
        expect.arrayContaining([
          'commercial-email:email',
          'commercial-sms:sms',
          'commercial-phone:phone',
          'pc-events:email',
          'pc-events:sms',
          'doi-news:email',
        ]),
      );

      const page = await visit('GET', prefsPath);
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('<html lang="en">');
      const boxes = [...page.body.matchAll(/<input type="checkbox" id="p\d+" name="consent" value="([^"]+)"( checked)?/g)];
      expect(boxes.map((b) => b[1]).sort()).toEqual(expected);
      const checked = boxes
        .filter((b) => b[2])
        .map((b) => b[1])
        .sort();
      expect(checked).toEqual(['commercial-email:email', 'commercial-sms:sms']);
      const stateText = (key: string) =>
        new RegExp(`data-testid="choice-${key.replace(':', '-')}"[\\s\\S]*?data-testid="state">([^<]+)<`).exec(page.body)?.[1];
      expect(stateText('commercial-email:email')).toContain(words.en.status_granted);
      expect(stateText('commercial-sms:sms')).toContain(words.en.status_granted);
      expect(stateText('pc-events:sms')).toContain(words.en.status_refused);
      expect(stateText('pc-events:email')).toContain(words.en.status_none);
      expect(page.body).toContain('Event invitations');
      expect(page.body).toContain('href="https://maison.example/events"');

      // A contact without a phone is not offered SMS or phone.
      const emailOnly = await createContact(t, { locale: 'fr' });
      const other = await visit('GET', pathOf(preferencesLink(t.ctx, emailOnly.id)));
      const otherBoxes = [...other.body.matchAll(/name="consent" value="([^"]+)"/g)].map((b) => b[1] as string);
      expect(otherBoxes.length).toBeGreaterThan(0);
      expect(
        otherBoxes.every((b) => channels.get(b.split(':')[1] as string) !== 'sms' && channels.get(b.split(':')[1] as string) !== 'phone'),
      ).toBe(true);
      expect(other.body).toContain('<html lang="fr">');

      // Two GETs changed nothing.
      expect(await history(contact.id)).toHaveLength(3);

      // Save: keep commercial email, untick commercial SMS, tick event invitations by email.
      const save = await visit('POST', prefsPath, { form: 'consent=commercial-email:email&consent=pc-events:email&action=save' });
      expect(save.statusCode).toBe(200);
      expect(save.body).toContain(words.en.preferences_saved);
      let events = await history(contact.id);
      const saved = events.slice(3);
      expect(saved.map((e) => `${e.purpose}:${e.channel}:${e.action}`).sort()).toEqual([
        'commercial-sms:sms:withdrawn',
        'pc-events:email:granted',
      ]);
      for (const e of saved) expect(e.source).toEqual({ type: 'preference_centre', ref: 'save' });
      expect(saved[0]?.evidence).toMatchObject({ method: 'preference centre', url: `${PUBLIC_URL}/p/[token]` });
      expect(await stateOf(contact.id, 'commercial-email')).toBe('granted');
      expect(await stateOf(contact.id, 'commercial-sms', 'sms')).toBe('withdrawn');
      expect(await stateOf(contact.id, 'pc-events')).toBe('granted');
      const shown = [...save.body.matchAll(/name="consent" value="([^"]+)" checked/g)].map((b) => b[1]).sort();
      expect(shown).toEqual(['commercial-email:email', 'pc-events:email']);

      // Saving the same choices again changes nothing.
      await visit('POST', prefsPath, { form: 'consent=commercial-email:email&consent=pc-events:email&action=save' });
      expect(await history(contact.id)).toHaveLength(5);

      // Withdraw everything: every granted one is withdrawn, nothing else is touched.
      const all = await visit('POST', prefsPath, { form: 'consent=commercial-email:email&action=withdraw_all' });
      expect(all.statusCode).toBe(200);
      events = await history(contact.id);
      const withdrawn = events.slice(5);
      expect(withdrawn.map((e) => `${e.purpose}:${e.channel}:${e.action}`).sort()).toEqual([
        'commercial-email:email:withdrawn',
        'pc-events:email:withdrawn',
      ]);
      for (const e of withdrawn) expect(e.source).toEqual({ type: 'preference_centre', ref: 'withdraw-all' });
      expect([...all.body.matchAll(/name="consent" value="[^"]+" checked/g)]).toHaveLength(0);
      expect(await stateOf(contact.id, 'pc-events', 'sms')).toBe('refused');
      expect(await decision(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email' })).toMatchObject({
        allowed: false,
        reason: 'withdrawn',
      });
    });

    it('mails a link on request to a known address only, answering the same page either way', async () => {
      const known = await createContact(t, { locale: 'en' });
      const unknown = `nobody-${Date.now()}@example.com`;
      const form = await visit('GET', '/p?lang=en');
      expect(form.statusCode).toBe(200);
      expect(form.headers['content-type']).toMatch(/^text\/html/);
      expect(form.body).toContain('name="email"');
      expect(form.body).toContain('<form method="post" action="/p?lang=en"');

      const before = await countOf('messages');
      const forKnown = await visit('POST', '/p?lang=en', { form: `email=${encodeURIComponent(String(known.email).toUpperCase())}` });
      const forUnknown = await visit('POST', '/p?lang=en', { form: `email=${encodeURIComponent(unknown)}` });
      expect(forKnown.statusCode).toBe(200);
      expect(forUnknown.statusCode).toBe(200);
      expect(forUnknown.body).toBe(forKnown.body);
      expect(forKnown.body).toContain(words.en.request_sent_title);
      expect(await countOf('messages')).toBe(before + 1);

      const [mail] = await mailTo(known.email as string);
      expect(mail?.parsed.subject).toBe('Your contact preferences — Maison Test');
      expect(rawHeader(mail as ReceivedMail, 'List-Unsubscribe')).toBeUndefined();
      const link = linksIn(mail?.parsed.text ?? '').find((l) => l.includes('/p/')) as string;
      expect(linksIn(mail?.parsed.text ?? '')).toEqual([link]);
      const outbox = (await t.call('GET', `/v1/outbox?contactId=${known.id}`)).json().items;
      expect(outbox).toMatchObject([{ kind: 'preference_link', status: 'sent' }]);
      await new Promise((r) => setTimeout(r, 50));
      expect(sink.to(unknown)).toHaveLength(0);
      // The mailed link opens the contact's preferences.
      const page = await visit('GET', pathOf(link));
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain(words.en.preferences_title);

      // A bad address gets the form again with an error, still no mail.
      const invalid = await visit('POST', '/p?lang=en', { form: 'email=not-an-address' });
      expect(invalid.statusCode).toBe(400);
      expect(invalid.headers['content-type']).toMatch(/^text\/html/);
      expect(invalid.body).toContain(words.en.request_invalid);
      expect(await countOf('messages')).toBe(before + 1);
    });
  });

  describe('templates API', () => {
    const email = (text: string) => ({ subject: 'Offres — {{ company.name }}', html: `<p>${text}</p>`, text });

    it('refuses marketing templates without the opt-out (template_missing_opt_out), accepts them with it', async () => {
      const before = await countOf('messages');
      const noLink = await t.call('POST', '/v1/templates', {
        body: {
          key: 'promo-no-link',
          channel: 'email',
          category: 'marketing',
          variants: { fr: email('Nos offres, {{ contact.firstName }}.') },
        },
      });
      expect(noLink.statusCode).toBe(422);
      expect(noLink.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(noLink.json().code).toBe('template_missing_opt_out');
      // The link in the HTML only is not enough: the text part needs it too.
      const htmlOnly = await t.call('POST', '/v1/templates', {
        body: {
          key: 'promo-html-only',
          channel: 'email',
          category: 'marketing',
          variants: { en: { subject: 'Offers', html: '<a href="{{ links.unsubscribe }}">Unsubscribe</a>', text: 'Offers for you.' } },
        },
      });
      expect(htmlOnly.statusCode).toBe(422);
      expect(htmlOnly.json().code).toBe('template_missing_opt_out');
      const smsNoStop = await t.call('POST', '/v1/templates', {
        body: {
          key: 'sms-no-stop',
          channel: 'sms',
          category: 'marketing',
          variants: { fr: { body: '-20% ce week-end chez {{ company.name }} !' } },
        },
      });
      expect(smsNoStop.statusCode).toBe(422);
      expect(smsNoStop.json().code).toBe('template_missing_opt_out');
      for (const key of ['promo-no-link', 'promo-html-only', 'sms-no-stop']) {
        expect((await t.call('GET', `/v1/templates/${key}`)).statusCode).toBe(404);
      }
      // A transactional template needs no opt-out.
      const receipt = await t.call('POST', '/v1/templates', {
        body: { key: 'order-receipt', channel: 'email', category: 'transactional', variants: { fr: email('Merci pour votre commande.') } },
      });
      expect(receipt.statusCode).toBe(201);

      const ok = await t.call('POST', '/v1/templates', {
        body: {
          key: 'promo-ok',
          channel: 'email',
          category: 'marketing',
          variants: { fr: email('Nos offres, {{ contact.firstName }}. Se désinscrire : {{ links.unsubscribe }}') },
        },
      });
      expect(ok.statusCode).toBe(201);
      expect(ok.json()).toMatchObject({ key: 'promo-ok', channel: 'email', category: 'marketing', builtin: false });
      const smsOk = await t.call('POST', '/v1/templates', {
        body: { key: 'sms-ok', channel: 'sms', category: 'marketing', variants: { fr: { body: '-20% ce week-end ! STOP au 36180' } } },
      });
      expect(smsOk.statusCode).toBe(201);
      // Editing it to drop the opt-out is refused too.
      const drop = await t.call('PUT', '/v1/templates/promo-ok', {
        body: { channel: 'email', category: 'marketing', variants: { fr: email('Plus de lien.') } },
      });
      expect(drop.statusCode).toBe(422);
      expect(drop.json().code).toBe('template_missing_opt_out');
      expect(await countOf('messages')).toBe(before);
    });

    it('previews a template for a contact, in the contact’s language', async () => {
      const contact = await createContact(t, { locale: 'en', firstName: 'Dominique', lastName: 'Petit' });
      const preview = await t.call('POST', '/v1/templates/promo-week/preview', { body: { contactId: contact.id }, key: t.keys.read });
      expect(preview.statusCode).toBe(200);
      const body = preview.json();
      expect(body.locale).toBe('en');
      expect(body.subject).toBe('This week at Maison Test');
      expect(body.text).toContain('Hello Dominique');
      expect(body.html).toContain('Hello Dominique');
      expect(body.text).toContain(`${PUBLIC_URL}/u/`);
      const fr = await t.call('POST', '/v1/templates/promo-week/preview', { body: { contactId: contact.id, locale: 'fr' } });
      expect(fr.json()).toMatchObject({ locale: 'fr', subject: 'Cette semaine chez Maison Test' });
      const sms = await t.call('POST', '/v1/templates', {
        body: {
          key: 'sms-preview',
          channel: 'sms',
          category: 'marketing',
          variants: { en: { body: 'Hi {{ contact.firstName }}, -20% today. STOP to 36180' } },
        },
      });
      expect(sms.statusCode).toBe(201);
      const smsPreview = await t.call('POST', '/v1/templates/sms-preview/preview', { body: { contactId: contact.id } });
      expect(smsPreview.json()).toEqual({ locale: 'en', body: 'Hi Dominique, -20% today. STOP to 36180' });
      // Previewing sends nothing.
      expect((await t.call('GET', `/v1/outbox?contactId=${contact.id}`)).json().items).toHaveLength(0);
      const unknown = await t.call('POST', '/v1/templates/promo-week/preview', { body: { contactId: '01ARZ3NDEKTSV4RRFFQ69G5FAV' } });
      expect(unknown.statusCode).toBe(404);
    });
  });
});

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

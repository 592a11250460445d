// Provider callbacks (/hooks/*): signed bounces, complaints, SMS replies and receipts, on each store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replyIntent, replyWord, signHookBody } from '../src/modules/hooks/index.ts';
import { addressHash } from '../src/modules/suppressions/index.ts';
import { normalizePhone } from '../src/platform/addresses.ts';
import { buildTestApp, TEST_SECRET, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, decision, frenchMobile, record, rowCounts } from './helpers/factories.ts';

const HOOKS_SECRET = 'hooks-secret-0123456789abcdef';
const PROBLEM = 'application/problem+json';

describe('SMS reply words', () => {
  it('drops accents, case, spaces and punctuation', () => {
    expect(replyWord(' arrêt ')).toBe('ARRET');
    expect(replyWord('Oui.')).toBe('OUI');
    expect(replyWord('Stop SMS !')).toBe('STOPSMS');
    expect(replyWord('ÂRRÊT')).toBe('ARRET');
  });

  it('reads STOP-like words as stop, OUI/YES as yes, the rest as other', () => {
    for (const text of [
      'STOP',
      'stop',
      ' Stop ',
      'ARRET',
      'arrêt',
      'Arrêter',
      'NON',
      'non.',
      'STOP SMS',
      'stop au 36180',
      'Unsubscribe',
      'désabonner',
    ]) {
      expect(replyIntent(replyWord(text)), text).toBe('stop');
    }
    for (const text of ['OUI', 'oui', ' Oui. ', 'yes', 'YES!']) expect(replyIntent(replyWord(text)), text).toBe('yes');
    for (const text of ['Bonjour', 'OUI NON', 'merci', '', '???', 'Ouistiti']) expect(replyIntent(replyWord(text)), text).toBe('other');
  });
});

describe.each(dialects)('provider callbacks on %s', (dialect) => {
  let t: TestApp;
  let campaignCount = 0;

  beforeAll(async () => {
    t = await buildTestApp(dialect, { env: { HOOKS_SECRET } });
    const now = t.clock.now().toISOString();
    await t.ctx.db.kysely
      .insertInto('segments')
      .values({ key: 'everyone', name: 'Everyone', filter: '{}', created_at: now, updated_at: now })
      .execute();
  });
  afterAll(async () => t.close());

  const unix = () => Math.floor(t.clock.now().getTime() / 1000);

  /** A signed POST: the body as JSON text (or as given), signed now unless told otherwise. */
  function hook(
    path: string,
    body: unknown,
    options: { t?: number; secret?: string; signature?: string | null; contentType?: string; app?: TestApp } = {},
  ) {
    const app = options.app ?? t;
    const raw = typeof body === 'string' ? body : JSON.stringify(body);
    const signature =
      options.signature === undefined ? signHookBody(options.secret ?? HOOKS_SECRET, raw, options.t ?? unix()) : options.signature;
    return app.app.inject({
      method: 'POST',
      url: path,
      headers: {
        'content-type': options.contentType ?? 'application/json',
        ...(signature === null ? {} : { 'assent-signature': signature }),
      },
      payload: raw,
    });
  }

  async function campaign(channel: 'email' | 'sms', purposes: string[], status = 'running'): Promise<string> {
    const key = `camp-${channel}-${++campaignCount}`;
    const now = t.clock.now().toISOString();
    await t.ctx.db.kysely
      .insertInto('campaigns')
      .values({
        key,
        name: key,
        segment_key: 'everyone',
        purposes: JSON.stringify(purposes),
        channel_key: channel,
        templates: '{}',
        start_at: now,
        cadence_days: 7,
        deadline: new Date(t.clock.now().getTime() + 30 * 86_400_000).toISOString(),
        max_sends: null,
        confirmation: 'button',
        at_deadline: 'report',
        add_newcomers: 0,
        status,
        launch_report: null,
        launched_at: now,
        closed_at: null,
        created_at: now,
        updated_at: now,
      })
      .execute();
    return key;
  }

  async function delivery(campaignKey: string, contactId: string, step: number, sentAt: string | null, providerRef: string | null) {
    const row = await t.ctx.db.kysely
      .insertInto('deliveries')
      .values({
        campaign_key: campaignKey,
        step,
        contact_id: contactId,
        template: step === 1 ? 'first' : 'reminder',
        status: sentAt ? 'sent' : 'queued',
        send_after: sentAt ?? t.clock.now().toISOString(),
        claimed_by: null,
        claimed_until: null,
        sent_at: sentAt,
        provider_ref: providerRef,
        last_error: null,
        clicked_at: null,
        confirmed_at: null,
        unsubscribed_at: null,
        bounced_at: null,
        created_at: sentAt ?? t.clock.now().toISOString(),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return Number(row.id);
  }

  const deliveryRow = (id: number) => t.ctx.db.kysely.selectFrom('deliveries').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  const suppressionsOf = (channel: string, address: string) =>
    t.ctx.db.kysely
      .selectFrom('suppressions')
      .select(['reason', 'source'])
      .where('channel_key', '=', channel)
      .where('address_hash', '=', addressHash(TEST_SECRET, address))
      .orderBy('reason')
      .execute();

  const history = async (contactId: string) =>
    (await t.call('GET', `/v1/contacts/${contactId}/consents/history`)).json().items as Array<{
      purpose: string;
      channel: string;
      action: string;
      source: { type: string; ref: string | null };
      evidence: Record<string, unknown>;
    }>;

  const stateOf = async (contactId: string, purpose: string, channel: string) =>
    (
      (await t.call('GET', `/v1/contacts/${contactId}/consents`)).json().items as Array<{
        purpose: string;
        channel: string;
        status: string;
      }>
    ).find((s) => s.purpose === purpose && s.channel === channel)?.status;

  /** Every row the hooks may write: what a refused request must leave as it was. */
  const snapshot = async () => ({
    counts: await rowCounts(t),
    deliveries: await t.ctx.db.kysely.selectFrom('deliveries').selectAll().orderBy('id').execute(),
  });

  describe('signature', () => {
    const body = { from: '+33612345678', to: '36180', text: 'Bonjour' };

    it('accepts a request signed with HOOKS_SECRET within five minutes', async () => {
      const res = await hook('/hooks/sms/inbound', body);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ action: 'ignored' });
      expect((await hook('/hooks/sms/inbound', body, { t: unix() - 299 })).statusCode).toBe(200);
    });

    it.each([
      ['missing', { signature: null }],
      ['signed with another secret', { secret: 'another-secret-0123456789' }],
      ['older than five minutes', { t: -301 }],
      ['more than five minutes ahead', { t: 301 }],
      ['malformed', { signature: 'sha256=abc' }],
      ['without a v1', { signature: 't=1790000000' }],
    ])('refuses a signature that is %s with 401 bad_signature', async (_name, options) => {
      const before = await snapshot();
      const { t: shift, ...rest } = options as { t?: number; signature?: string | null; secret?: string };
      const res = await hook('/hooks/sms/inbound', { ...body, text: 'STOP' }, { ...rest, ...(shift ? { t: unix() + shift } : {}) });
      expect(res.statusCode).toBe(401);
      expect(res.headers['content-type']).toContain(PROBLEM);
      expect(res.json()).toMatchObject({ code: 'bad_signature', status: 401 });
      expect(await snapshot()).toEqual(before);
    });

    it('refuses a body changed after it was signed', async () => {
      const raw = JSON.stringify({ ...body, text: 'Bonjour' });
      const signature = signHookBody(HOOKS_SECRET, raw, unix());
      const res = await hook('/hooks/sms/inbound', raw.replace('Bonjour', 'STOP'), { signature });
      expect(res.statusCode).toBe(401);
      expect(res.json().code).toBe('bad_signature');
    });

    it('accepts any of several v1 signatures (secret rotation)', async () => {
      const raw = JSON.stringify(body);
      const now = unix();
      const good = signHookBody(HOOKS_SECRET, raw, now).split(',')[1];
      const res = await hook('/hooks/sms/inbound', raw, { signature: `t=${now},v1=${'0'.repeat(64)},${good}` });
      expect(res.statusCode).toBe(200);
    });

    it('refuses a request without a body on its signature, not on its shape', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/hooks/sms/status' });
      expect(res.statusCode).toBe(401);
      expect(res.json().code).toBe('bad_signature');
    });

    it('refuses other content types with 415', async () => {
      const res = await hook('/hooks/sms/inbound', 'from=%2B33612345678&text=STOP', { contentType: 'application/x-www-form-urlencoded' });
      expect(res.statusCode).toBe(415);
      expect(res.json().code).toBe('unsupported_media_type');
    });

    it('needs no API key and ignores one', async () => {
      const raw = JSON.stringify(body);
      const res = await t.app.inject({
        method: 'POST',
        url: '/hooks/sms/inbound',
        headers: {
          'content-type': 'application/json',
          'assent-signature': signHookBody(HOOKS_SECRET, raw, unix()),
          authorization: 'Bearer nope',
        },
        payload: raw,
      });
      expect(res.statusCode).toBe(200);
    });

    it('answers 503 hooks_not_configured on every hook when HOOKS_SECRET is unset', async () => {
      const off = await buildTestApp(dialect);
      try {
        for (const path of ['/hooks/email/events', '/hooks/sms/inbound', '/hooks/sms/status']) {
          const res = await hook(path, { events: [] }, { app: off });
          expect(res.statusCode, path).toBe(503);
          expect(res.headers['content-type']).toContain(PROBLEM);
          expect(res.json()).toMatchObject({ code: 'hooks_not_configured', status: 503 });
        }
      } finally {
        await off.close();
      }
    });
  });

  describe('POST /hooks/email/events', () => {
    it('suppresses a hard-bounced address, marks its delivery, and decide() then says suppressed', async () => {
      const contact = await createContact(t);
      const email = contact.email as string;
      await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
      const key = await campaign('email', ['commercial-email']);
      const id = await delivery(key, contact.id, 1, t.clock.now().toISOString(), '<a1b2@mail.shop.example>');
      expect(await decision(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email' })).toMatchObject({ allowed: true });

      const events = {
        events: [{ type: 'bounce', bounceType: 'hard', email: email.toUpperCase(), messageId: '<a1b2@mail.shop.example>' }],
      };
      const res = await hook('/hooks/email/events', events);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ processed: 1, suppressed: 1, ignored: 0 });
      expect(await suppressionsOf('email', email)).toEqual([{ reason: 'bounced', source: 'provider: hard bounce' }]);
      expect((await deliveryRow(id)).bounced_at).toBe(t.clock.now().toISOString());
      expect(await decision(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email' })).toMatchObject({
        allowed: false,
        reason: 'suppressed',
      });
      // A bounce withdraws nothing: the consent is still the person's.
      expect(await stateOf(contact.id, 'commercial-email', 'email')).toBe('granted');

      // The provider retries: the same answer, nothing new written.
      const before = await snapshot();
      t.clock.set(new Date(t.clock.now().getTime() + 60_000));
      const again = await hook('/hooks/email/events', events);
      expect(again.json()).toEqual({ processed: 1, suppressed: 1, ignored: 0 });
      expect(await snapshot()).toEqual(before);
    });

    it('matches a Message-ID given without its angle brackets', async () => {
      const contact = await createContact(t);
      const id = await delivery(
        await campaign('email', ['commercial-email']),
        contact.id,
        1,
        t.clock.now().toISOString(),
        '<bare-1@mail.shop.example>',
      );
      await hook('/hooks/email/events', {
        events: [
          {
            type: 'bounce',
            bounceType: 'hard',
            email: contact.email,
            messageId: 'bare-1@mail.shop.example',
            occurredAt: '2026-11-22T09:30:00Z',
          },
        ],
      });
      expect((await deliveryRow(id)).bounced_at).toBe('2026-11-22T09:30:00.000Z');
    });

    it('without a Message-ID, marks the latest email delivery sent to the contact', async () => {
      const contact = await createContact(t);
      const key = await campaign('email', ['commercial-email']);
      const older = await delivery(key, contact.id, 1, '2026-11-01T10:00:00.000Z', '<old@x.example>');
      const newer = await delivery(key, contact.id, 2, '2026-11-08T10:00:00.000Z', '<new@x.example>');
      const queued = await delivery(key, contact.id, 3, null, null);
      const res = await hook('/hooks/email/events', { events: [{ type: 'bounce', bounceType: 'hard', email: contact.email }] });
      expect(res.json()).toEqual({ processed: 1, suppressed: 1, ignored: 0 });
      expect((await deliveryRow(newer)).bounced_at).not.toBeNull();
      expect((await deliveryRow(older)).bounced_at).toBeNull();
      expect((await deliveryRow(queued)).bounced_at).toBeNull();
    });

    it('counts a soft bounce and records it nowhere', async () => {
      const contact = await createContact(t);
      const id = await delivery(
        await campaign('email', ['commercial-email']),
        contact.id,
        1,
        t.clock.now().toISOString(),
        '<soft@x.example>',
      );
      const before = await snapshot();
      const res = await hook('/hooks/email/events', {
        events: [{ type: 'bounce', bounceType: 'soft', email: contact.email, messageId: '<soft@x.example>' }],
      });
      expect(res.json()).toEqual({ processed: 1, suppressed: 0, ignored: 1 });
      expect(await snapshot()).toEqual(before);
      expect((await deliveryRow(id)).bounced_at).toBeNull();
    });

    it('suppresses an address no contact has (the hash only), and ignores what is not an address', async () => {
      const res = await hook('/hooks/email/events', {
        events: [
          { type: 'bounce', bounceType: 'hard', email: 'Nobody.Here@Example.com' },
          { type: 'complaint', email: 'not an address' },
        ],
      });
      expect(res.json()).toEqual({ processed: 2, suppressed: 1, ignored: 1 });
      const check = await t.call('GET', '/v1/suppressions/check?channel=email&email=nobody.here%40example.com');
      expect(check.json()).toEqual({ suppressed: true, reasons: ['bounced'] });
      // A contact created later with that address is not contactable by email.
      const later = await createContact(t, { email: 'nobody.here@example.com' });
      await record(t, { contactId: later.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
      expect(await decision(t, { contactId: later.id, purpose: 'commercial-email', channel: 'email' })).toMatchObject({
        reason: 'suppressed',
      });
    });

    it('on a complaint, suppresses the address and withdraws every granted or pending email consent', async () => {
      const contact = await createContact(t, { phone: frenchMobile() });
      const email = contact.email as string;
      const created = await t.call('POST', '/v1/purposes', {
        body: { key: 'newsletter-hooks', title: { fr: 'Lettre', en: 'Newsletter' }, channels: ['email'], doubleOptIn: true },
      });
      expect(created.statusCode).toBe(201);
      await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
      await record(t, { contactId: contact.id, purpose: 'newsletter-hooks', channel: 'email', action: 'grant' });
      await record(t, { contactId: contact.id, purpose: 'commercial-sms', channel: 'sms', action: 'grant' });
      expect(await stateOf(contact.id, 'newsletter-hooks', 'email')).toBe('pending');
      const id = await delivery(
        await campaign('email', ['commercial-email']),
        contact.id,
        1,
        t.clock.now().toISOString(),
        '<fbl@x.example>',
      );

      const events = { events: [{ type: 'complaint', email, messageId: '<fbl@x.example>' }] };
      const res = await hook('/hooks/email/events', events);
      expect(res.json()).toEqual({ processed: 1, suppressed: 1, ignored: 0 });
      expect(await suppressionsOf('email', email)).toEqual([{ reason: 'complained', source: 'provider: complaint' }]);
      expect(await stateOf(contact.id, 'commercial-email', 'email')).toBe('withdrawn');
      expect(await stateOf(contact.id, 'newsletter-hooks', 'email')).toBe('withdrawn');
      expect(await stateOf(contact.id, 'commercial-sms', 'sms')).toBe('granted');
      const withdrawals = (await history(contact.id)).filter((e) => e.action === 'withdrawn');
      expect(withdrawals).toHaveLength(2);
      for (const e of withdrawals) {
        expect(e.source).toEqual({ type: 'system', ref: 'complaint' });
        expect(e.channel).toBe('email');
      }
      expect((await deliveryRow(id)).unsubscribed_at).not.toBeNull();
      expect((await deliveryRow(id)).bounced_at).toBeNull();
      expect((await t.call('GET', '/v1/ledger/verify')).json().ok).toBe(true);

      // Twice is once.
      const before = await snapshot();
      expect((await hook('/hooks/email/events', events)).json()).toEqual({ processed: 1, suppressed: 1, ignored: 0 });
      expect(await snapshot()).toEqual(before);
    });
  });

  describe('POST /hooks/sms/inbound', () => {
    async function smsContact() {
      const phone = frenchMobile();
      const contact = await createContact(t, { phone });
      await record(t, { contactId: contact.id, purpose: 'commercial-sms', channel: 'sms', action: 'grant' });
      await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
      return { id: contact.id, phone };
    }

    it.each([' stop ', 'Stop', 'ARRÊT', ' arrêt ', 'Arret.', 'STOP SMS', 'stop au 36180', 'Non', 'unsubscribe', 'S T O P'])(
      'withdraws every SMS consent and suppresses the number on "%s"',
      async (text) => {
        const { id, phone } = await smsContact();
        const d = await delivery(await campaign('sms', ['commercial-sms']), id, 1, t.clock.now().toISOString(), `sms-${id}`);
        const res = await hook('/hooks/sms/inbound', { from: phone, to: '36180', text, id: `in-${id}` });
        expect(res.statusCode).toBe(200);
        expect(res.json()).toEqual({ action: 'withdrawn' });
        expect(await stateOf(id, 'commercial-sms', 'sms')).toBe('withdrawn');
        expect(await stateOf(id, 'commercial-email', 'email')).toBe('granted');
        const [event] = (await history(id)).filter((e) => e.action === 'withdrawn');
        expect(event?.source).toEqual({ type: 'sms_reply', ref: `in-${id}` });
        expect(event?.evidence).toMatchObject({ method: 'SMS reply', text: replyWord(text) });
        expect(await suppressionsOf('sms', phone)).toEqual([{ reason: 'unsubscribed', source: 'SMS reply' }]);
        expect((await deliveryRow(d)).unsubscribed_at).toBe(t.clock.now().toISOString());
        expect(await decision(t, { contactId: id, purpose: 'commercial-sms', channel: 'sms' })).toMatchObject({ allowed: false });
      },
    );

    it('reads the sender number without its "+" or in national format', async () => {
      const a = await smsContact();
      expect((await hook('/hooks/sms/inbound', { from: a.phone.slice(1), to: '36180', text: 'STOP' })).json().action).toBe('withdrawn');
      expect(await stateOf(a.id, 'commercial-sms', 'sms')).toBe('withdrawn');
      const b = await smsContact();
      const national = `0${b.phone.slice(3, 4)} ${b.phone.slice(4, 6)} ${b.phone.slice(6, 8)} ${b.phone.slice(8, 10)} ${b.phone.slice(10)}`;
      expect(normalizePhone(national, 'FR')).toBe(b.phone);
      expect((await hook('/hooks/sms/inbound', { from: national, to: '36180', text: 'stop' })).json().action).toBe('withdrawn');
      expect(await stateOf(b.id, 'commercial-sms', 'sms')).toBe('withdrawn');
      const [event] = (await history(b.id)).filter((e) => e.action === 'withdrawn');
      expect(event?.source).toEqual({ type: 'sms_reply', ref: 'inbound' });
    });

    it('suppresses a number no contact has, and twice is once', async () => {
      const phone = frenchMobile();
      const body = { from: phone, to: '36180', text: 'STOP', id: 'prov-unknown' };
      expect((await hook('/hooks/sms/inbound', body)).json()).toEqual({ action: 'withdrawn' });
      const check = await t.call('GET', `/v1/suppressions/check?channel=sms&phone=${encodeURIComponent(phone)}`);
      expect(check.json()).toEqual({ suppressed: true, reasons: ['unsubscribed'] });
      const before = await snapshot();
      expect((await hook('/hooks/sms/inbound', body)).json()).toEqual({ action: 'withdrawn' });
      expect(await snapshot()).toEqual(before);
    });

    it('ignores any other text and writes nothing', async () => {
      const { id, phone } = await smsContact();
      const before = await snapshot();
      for (const text of ['Bonjour', 'Qui êtes-vous ?', '', 'OUI NON']) {
        expect((await hook('/hooks/sms/inbound', { from: phone, to: '36180', text })).json(), text).toEqual({ action: 'ignored' });
      }
      expect(await snapshot()).toEqual(before);
      expect(await stateOf(id, 'commercial-sms', 'sms')).toBe('granted');
    });

    it('ignores OUI when no running SMS campaign was sent to the number', async () => {
      const { id, phone } = await smsContact();
      await delivery(await campaign('sms', ['commercial-sms'], 'closed'), id, 1, t.clock.now().toISOString(), `closed-${id}`);
      await delivery(await campaign('email', ['commercial-sms']), id, 1, t.clock.now().toISOString(), `<mail-${id}@x.example>`);
      const before = await snapshot();
      expect((await hook('/hooks/sms/inbound', { from: phone, to: '36180', text: 'Oui' })).json()).toEqual({ action: 'ignored' });
      expect((await hook('/hooks/sms/inbound', { from: frenchMobile(), to: '36180', text: 'Oui' })).json()).toEqual({ action: 'ignored' });
      expect(await snapshot()).toEqual(before);
    });

    it('confirms the latest running SMS campaign on OUI', async () => {
      const phone = frenchMobile();
      const contact = await createContact(t, { phone });
      const key = await campaign('sms', ['commercial-sms']);
      const d = await delivery(key, contact.id, 1, t.clock.now().toISOString(), `oui-${contact.id}`);
      const res = await hook('/hooks/sms/inbound', { from: phone, to: '36180', text: ' Oui. ', id: 'prov-oui' });
      expect(res.json()).toEqual({ action: 'confirmed' });
      expect(await stateOf(contact.id, 'commercial-sms', 'sms')).toBe('granted');
      const [event] = await history(contact.id);
      expect(event?.source.type).toBe('sms_reply');
      expect(event?.evidence).toMatchObject({ method: 'SMS reply', text: 'OUI' });
      expect((await deliveryRow(d)).confirmed_at).not.toBeNull();
      // A second OUI confirms nothing more.
      expect((await hook('/hooks/sms/inbound', { from: phone, to: '36180', text: 'OUI' })).json()).toEqual({ action: 'ignored' });
    });

    it('never logs the number or the text', async () => {
      const { phone } = await smsContact();
      const from = t.logs.length;
      await hook('/hooks/sms/inbound', { from: phone, to: '36180', text: 'Arrêt immédiat SVP' });
      await hook('/hooks/sms/inbound', `{"from":"${phone}", "text": broken`);
      const lines = t.logs.slice(from).join('\n');
      expect(lines).toContain('/hooks/sms/inbound');
      expect(lines).not.toContain(phone.slice(3));
      expect(lines).not.toMatch(/immédiat|immediat|IMMEDIAT/);
    });
  });

  describe('POST /hooks/sms/status', () => {
    it('marks a delivery failed on failed or undelivered, and keeps it sent on delivered', async () => {
      const contact = await createContact(t, { phone: frenchMobile() });
      const key = await campaign('sms', ['commercial-sms']);
      const delivered = await delivery(key, contact.id, 1, t.clock.now().toISOString(), 'prov-d1');
      const failed = await delivery(key, contact.id, 2, t.clock.now().toISOString(), 'prov-f1');
      const undelivered = await delivery(key, contact.id, 3, t.clock.now().toISOString(), null);

      const ok = await hook('/hooks/sms/status', { id: 'prov-d1', status: 'delivered' });
      expect(ok.statusCode).toBe(200);
      expect(ok.json()).toEqual({ matched: true });
      expect(await deliveryRow(delivered)).toMatchObject({ status: 'sent', last_error: null });

      const bad = await hook('/hooks/sms/status', { id: 'prov-f1', status: 'failed', error: 'absent subscriber' });
      expect(bad.json()).toEqual({ matched: true });
      expect(await deliveryRow(failed)).toMatchObject({ status: 'failed', last_error: 'absent subscriber' });

      // Matched by our reference (the delivery id) when the provider id is not ours yet.
      const byRef = await hook('/hooks/sms/status', { id: 'prov-x9', reference: String(undelivered), status: 'undelivered' });
      expect(byRef.json()).toEqual({ matched: true });
      expect(await deliveryRow(undelivered)).toMatchObject({ status: 'failed', last_error: 'undelivered' });
    });

    it('answers 202 { matched: false } for an id it does not know', async () => {
      const before = await snapshot();
      const res = await hook('/hooks/sms/status', { id: 'nobody-knows', reference: '99999999', status: 'failed' });
      expect(res.statusCode).toBe(202);
      expect(res.json()).toEqual({ matched: false });
      expect((await hook('/hooks/sms/status', { id: 'nobody-knows', reference: 'abc', status: 'delivered' })).statusCode).toBe(202);
      expect(await snapshot()).toEqual(before);
    });
  });

  describe('bad input', () => {
    const tooMany = {
      events: Array.from({ length: 1001 }, (_, i) => ({ type: 'bounce', bounceType: 'hard', email: `x${i}@example.com` })),
    };
    it.each([
      ['/hooks/email/events', '{"events": [', 'bad_json', undefined],
      ['/hooks/email/events', '', 'bad_json', undefined],
      ['/hooks/email/events', '[]', 'validation_failed', undefined],
      ['/hooks/email/events', {}, 'validation_failed', '/body/events'],
      ['/hooks/email/events', { events: 'bounce' }, 'validation_failed', '/body/events'],
      ['/hooks/email/events', { events: [{ type: 'open', email: 'a@example.com' }] }, 'validation_failed', '/body/events/0/type'],
      ['/hooks/email/events', { events: [{ type: 'bounce', email: 'a@example.com' }] }, 'validation_failed', '/body/events/0/bounceType'],
      [
        '/hooks/email/events',
        {
          events: [
            { type: 'bounce', bounceType: 'hard', email: 'first@example.com' },
            { type: 'bounce', email: 'second@example.com' },
          ],
        },
        'validation_failed',
        '/body/events/1/bounceType',
      ],
      ['/hooks/email/events', { events: [{ type: 'complaint', email: 42 }] }, 'validation_failed', '/body/events/0/email'],
      [
        '/hooks/email/events',
        { events: [{ type: 'complaint', email: 'a@example.com', extra: 1 }] },
        'validation_failed',
        '/body/events/0/extra',
      ],
      [
        '/hooks/email/events',
        { events: [{ type: 'complaint', email: 'a@example.com', occurredAt: 'yesterday' }] },
        'validation_failed',
        '/body/events/0/occurredAt',
      ],
      ['/hooks/email/events', tooMany, 'validation_failed', '/body/events'],
      ['/hooks/email/events', { events: [{ type: 'complaint', email: 'a\u0000@example.com' }] }, 'validation_failed', undefined],
      ['/hooks/sms/inbound', { to: '36180', text: 'STOP' }, 'validation_failed', '/body/from'],
      ['/hooks/sms/inbound', { from: '+33612345678', to: '36180', text: ['STOP'] }, 'validation_failed', '/body/text'],
      ['/hooks/sms/inbound', { from: '+33612345678', to: '36180', text: 'STOP', receivedAt: 12 }, 'validation_failed', '/body/receivedAt'],
      ['/hooks/sms/inbound', 'STOP', 'bad_json', undefined],
      ['/hooks/sms/status', { id: 'x', status: 'read' }, 'validation_failed', '/body/status'],
      ['/hooks/sms/status', { status: 'failed' }, 'validation_failed', '/body/id'],
      ['/hooks/sms/status', { id: 'x', reference: 7, status: 'failed' }, 'validation_failed', '/body/reference'],
    ] as Array<[string, unknown, string, string | undefined]>)('%s %j → %s', async (path, body, code, errorPath) => {
      const before = await snapshot();
      const res = await hook(path, body);
      expect(res.statusCode).toBe(400);
      expect(res.headers['content-type']).toContain(PROBLEM);
      const problem = res.json();
      expect(problem).toMatchObject({ code, status: 400 });
      if (errorPath) expect(problem.errors.map((e: { path: string }) => e.path)).toContain(errorPath);
      expect(await snapshot()).toEqual(before);
    });
  });
});

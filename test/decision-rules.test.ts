// Decision rules (RULES.md 6–8, 10–13 and the "always first" checks) through GET and POST
// /v1/decisions on the real app: every expectation is checked on both endpoints.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDueJobs } from '../src/modules/scheduler/index.ts';
import { normalizePhone } from '../src/platform/addresses.ts';
import { invalidate } from '../src/platform/context.ts';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, frenchMobile, record } from './helpers/factories.ts';

interface DecisionOut {
  allowed: boolean;
  basis: string | null;
  reason: string;
  evidenceEventId: string | null;
  expiresAt: string | null;
}

type Item = Record<string, string>;

const SWITCH_EVE = '2026-08-10T12:00:00Z';
const SWITCH = '2026-08-11T00:00:00Z';
const DAY = 86_400_000;

/** A valid French mobile: the shared factory draws some numbers libphonenumber rejects (+33639…, +33690…). */
function mobile(): string {
  for (;;) {
    const phone = frenchMobile();
    if (normalizePhone(phone, 'FR') === phone) return phone;
  }
}

describe.each(dialects)('decision rules on %s', (dialect) => {
  let t: TestApp;

  /**
   * The decision from GET /v1/decisions, checked equal to the one POST /v1/decisions gives and to
   * the one GET gives once the purposes and channels are no longer cached: on SQLite a server
   * decides at once from its cached lists (decideNow) and otherwise reads them first (decide).
   */
  async function decideBoth(item: Item): Promise<DecisionOut> {
    const url = `/v1/decisions?${new URLSearchParams(item)}`;
    const single = await t.call('GET', url, { key: t.keys.read });
    expect(single.statusCode, single.body).toBe(200);
    const batch = await t.call('POST', '/v1/decisions', { body: { items: [item] }, key: t.keys.read });
    expect(batch.statusCode, batch.body).toBe(200);
    expect(batch.json().results).toEqual([single.json()]);
    invalidate(t.ctx, 'purposes');
    invalidate(t.ctx, 'channels');
    const cold = await t.call('GET', url, { key: t.keys.read });
    expect(cold.json()).toEqual(single.json());
    return single.json();
  }

  async function expectDecision(item: Item, expected: Partial<DecisionOut>): Promise<DecisionOut> {
    const d = await decideBoth(item);
    expect(d, JSON.stringify(item)).toMatchObject(expected);
    return d;
  }

  const allowedBy = (basis: string, reason: string, evidenceEventId: string | null = null): DecisionOut => ({
    allowed: true,
    basis,
    reason,
    evidenceEventId,
    expiresAt: null,
  });
  const refusedBy = (basis: string | null, reason: string, evidenceEventId: string | null = null): DecisionOut => ({
    allowed: false,
    basis,
    reason,
    evidenceEventId,
    expiresAt: null,
  });

  const now = () => t.clock.now();
  const daysAgo = (days: number) => new Date(now().getTime() - days * DAY).toISOString();

  async function createPurpose(body: Record<string, unknown>) {
    const res = await t.call('POST', '/v1/purposes', { body: { title: { fr: String(body.key) }, ...body } });
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  }

  beforeAll(async () => {
    t = await buildTestApp(dialect);
    const postal = await t.call('POST', '/v1/channels', { body: { key: 'postal', kind: 'postal', names: { fr: 'Courrier', en: 'Post' } } });
    expect(postal.statusCode, postal.body).toBe(201);
    await createPurpose({ key: 'li-offers', channels: ['email', 'sms', 'postal'], legalBasis: 'legitimate_interest' });
    await createPurpose({ key: 'doi-news', channels: ['email'], doubleOptIn: true });
    await createPurpose({ key: 'monthly', channels: ['email', 'sms'], expiry: { afterDays: 30 } });
  });
  afterAll(async () => t.close());

  describe('RULES 6 one legal basis per purpose', () => {
    it('refuses to switch a consent purpose to legitimate interest once someone withdrew', async () => {
      await createPurpose({ key: 'events', channels: ['email', 'sms'] });
      const contact = await createContact(t);
      const base = { contactId: contact.id, purpose: 'events', channel: 'email' };
      const grant = await record(t, { ...base, action: 'grant' });
      expect(grant.legalBasis).toBe('consent');
      const withdrawal = await record(t, { ...base, action: 'withdraw' });

      const res = await t.call('PATCH', '/v1/purposes/events', { body: { legalBasis: 'legitimate_interest' } });
      expect(res.statusCode).toBe(409);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.json().code).toBe('basis_switch_forbidden');

      expect((await t.call('GET', '/v1/purposes/events')).json().legalBasis).toBe('consent');
      await expectDecision(
        { contactId: contact.id, purpose: 'events', channel: 'email' },
        refusedBy('consent', 'withdrawn', withdrawal.id),
      );
    });

    it('refuses the switch after a refusal too, but allows it on a purpose nobody withdrew from', async () => {
      await createPurpose({ key: 'clubs', channels: ['email'] });
      await createPurpose({ key: 'tastings', channels: ['email'] });
      const a = await createContact(t);
      await record(t, { contactId: a.id, purpose: 'clubs', channel: 'email', action: 'refuse' });
      await record(t, { contactId: a.id, purpose: 'tastings', channel: 'email', action: 'grant' });

      const refused = await t.call('PATCH', '/v1/purposes/clubs', { body: { legalBasis: 'legitimate_interest' } });
      expect(refused.statusCode).toBe(409);
      expect(refused.json().code).toBe('basis_switch_forbidden');

      const switched = await t.call('PATCH', '/v1/purposes/tastings', { body: { legalBasis: 'legitimate_interest' } });
      expect(switched.statusCode, switched.body).toBe(200);
      expect(switched.json().legalBasis).toBe('legitimate_interest');
    });

    it('reads a withdrawal on a legitimate-interest purpose as an objection', async () => {
      const contact = await createContact(t, { phone: mobile(), lifecycle: 'customer', lastPurchaseAt: daysAgo(10) });
      const item = { contactId: contact.id, purpose: 'li-offers', channel: 'email' };
      await expectDecision(item, allowedBy('legitimate_interest', 'soft_opt_in'));
      const withdrawal = await record(t, { ...item, action: 'withdraw' });
      expect(withdrawal.legalBasis).toBe('legitimate_interest');
      await expectDecision(item, refusedBy('legitimate_interest', 'objected', withdrawal.id));

      const sms = { contactId: contact.id, purpose: 'li-offers', channel: 'sms' };
      const refusal = await record(t, { ...sms, action: 'refuse' });
      await expectDecision(sms, refusedBy('legitimate_interest', 'objected', refusal.id));
    });
  });

  describe('RULES 7 objection', () => {
    it('stops legitimate interest that would otherwise allow (a customer with a purchase)', async () => {
      const contact = await createContact(t, { lastPurchaseAt: daysAgo(30) });
      const item = { contactId: contact.id, purpose: 'li-offers', channel: 'email' };
      await expectDecision(item, allowedBy('legitimate_interest', 'soft_opt_in'));
      const objection = await record(t, { ...item, action: 'object' });
      expect(objection.status).toBe('objected');
      await expectDecision(item, refusedBy('legitimate_interest', 'objected', objection.id));
    });

    it('stops a professional on email (b2b) and phone calls before the switch date', async () => {
      const contact = await createContact(t, { kind: 'professional', phone: mobile() });
      const email = { contactId: contact.id, purpose: 'li-offers', channel: 'email' };
      await expectDecision(email, allowedBy('legitimate_interest', 'b2b_opt_out'));
      const onEmail = await record(t, { ...email, action: 'object' });
      await expectDecision(email, refusedBy('legitimate_interest', 'objected', onEmail.id));

      const person = await createContact(t, { phone: mobile() });
      const phone = { contactId: person.id, purpose: 'commercial-phone', channel: 'phone', at: SWITCH_EVE };
      await expectDecision(phone, allowedBy('legitimate_interest', 'opt_out_channel'));
      const onPhone = await record(t, { contactId: person.id, purpose: 'commercial-phone', channel: 'phone', action: 'object' });
      await expectDecision(phone, refusedBy('legitimate_interest', 'objected', onPhone.id));
    });

    it('given on one channel, stops every channel of the purpose (post and SMS too)', async () => {
      const contact = await createContact(t, { lastPurchaseAt: daysAgo(10), phone: mobile() });
      const email = { contactId: contact.id, purpose: 'li-offers', channel: 'email' };
      const sms = { contactId: contact.id, purpose: 'li-offers', channel: 'sms' };
      const postal = { contactId: contact.id, purpose: 'li-offers', channel: 'postal' };
      await expectDecision(sms, allowedBy('legitimate_interest', 'soft_opt_in'));
      await expectDecision(postal, allowedBy('legitimate_interest', 'opt_out_channel'));
      await record(t, { ...email, action: 'object' });
      await expectDecision(sms, { allowed: false, reason: 'objected' });
      await expectDecision(postal, { allowed: false, reason: 'objected' });
      // Another purpose is not touched.
      await expectDecision(
        { contactId: contact.id, purpose: 'commercial-phone', channel: 'phone', at: SWITCH_EVE },
        allowedBy('legitimate_interest', 'opt_out_channel'),
      );
    });

    it('beats a valid consent on a consent purpose', async () => {
      const contact = await createContact(t);
      const item = { contactId: contact.id, purpose: 'commercial-email', channel: 'email' };
      const grant = await record(t, { ...item, action: 'grant' });
      await expectDecision(item, allowedBy('consent', 'consent', grant.id));
      const objection = await record(t, { ...item, action: 'object' });
      await expectDecision(item, refusedBy('consent', 'objected', objection.id));
    });
  });

  describe('RULES 8 statuses', () => {
    it('allows granted: basis consent, the grant as evidence, its expiry carried', async () => {
      const contact = await createContact(t);
      const item = { contactId: contact.id, purpose: 'monthly', channel: 'email' };
      const grant = await record(t, { ...item, action: 'grant' });
      expect(grant.expiresAt).toBe(new Date(now().getTime() + 30 * DAY).toISOString());
      await expectDecision(item, {
        allowed: true,
        basis: 'consent',
        reason: 'consent',
        evidenceEventId: grant.id,
        expiresAt: grant.expiresAt,
      });
      // The same consent, asked about after its end: expired even before the expiry job ran.
      await expectDecision(
        { ...item, at: new Date(now().getTime() + 31 * DAY).toISOString() },
        refusedBy('consent', 'consent_expired', grant.id),
      );
    });

    it('answers refused, withdrawn and no_consent', async () => {
      const contact = await createContact(t);
      const refusal = await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'refuse' });
      await expectDecision(
        { contactId: contact.id, purpose: 'commercial-email', channel: 'email' },
        refusedBy('consent', 'refused', refusal.id),
      );
      const other = await createContact(t, { phone: mobile() });
      const sms = { contactId: other.id, purpose: 'commercial-sms', channel: 'sms' };
      await expectDecision(sms, refusedBy('consent', 'no_consent', null));
      await record(t, { ...sms, action: 'grant' });
      const withdrawal = await record(t, { ...sms, action: 'withdraw' });
      await expectDecision(sms, refusedBy('consent', 'withdrawn', withdrawal.id));
    });

    it('holds a double opt-in grant as doi_pending until confirmed', async () => {
      const contact = await createContact(t);
      const item = { contactId: contact.id, purpose: 'doi-news', channel: 'email' };
      const grant = await record(t, { ...item, action: 'grant' });
      expect(grant.status).toBe('pending');
      await expectDecision(item, refusedBy('consent', 'doi_pending', grant.id));
      const confirm = await record(t, { ...item, action: 'confirm', source: { type: 'double_opt_in' } });
      await expectDecision(item, allowedBy('consent', 'consent', confirm.id));
    });

    it('answers consent_expired once the expiry is recorded, and renew allows again', async () => {
      const contact = await createContact(t);
      const item = { contactId: contact.id, purpose: 'monthly', channel: 'email' };
      // Granted 40 days ago: its 30 days ran out 10 days ago.
      const grant = await record(t, { ...item, action: 'grant', occurredAt: daysAgo(40) });
      const results = await runDueJobs(t.ctx, now());
      expect(results.find((r) => r.job === 'expire-consents')?.ran).toBe(true);
      const history = (await t.call('GET', `/v1/contacts/${contact.id}/consents/history`)).json();
      expect(history.items.map((e: { action: string }) => e.action)).toEqual(['granted', 'expired']);
      expect(history.items[1].occurredAt).toBe(grant.expiresAt);
      await expectDecision(item, refusedBy('consent', 'consent_expired', history.items[1].id));

      const renewal = await record(t, { ...item, action: 'renew' });
      expect(renewal.status).toBe('granted');
      await expectDecision(item, {
        allowed: true,
        basis: 'consent',
        reason: 'consent',
        evidenceEventId: renewal.id,
        expiresAt: new Date(now().getTime() + 30 * DAY).toISOString(),
      });
    });

    it('withdraws a minute after a grant stamped ahead of the server clock (within the accepted skew)', async () => {
      const contact = await createContact(t);
      const item = { contactId: contact.id, purpose: 'commercial-email', channel: 'email' };
      const grant = await record(t, { ...item, action: 'grant', occurredAt: new Date(now().getTime() + 4 * 60_000).toISOString() });
      expect(grant.occurredAt).toBe(now().toISOString());
      t.clock.set(new Date(now().getTime() + 60_000));
      const withdrawal = await record(t, { ...item, action: 'withdraw' });
      expect(withdrawal.status).toBe('withdrawn');
      await expectDecision(item, refusedBy('consent', 'withdrawn', withdrawal.id));
    });

    it('allows again after a withdrawal when the person renews', async () => {
      const contact = await createContact(t);
      const item = { contactId: contact.id, purpose: 'commercial-email', channel: 'email' };
      await record(t, { ...item, action: 'grant' });
      await record(t, { ...item, action: 'withdraw' });
      const renewal = await record(t, { ...item, action: 'renew', source: { type: 'campaign', ref: 'repermission-1' } });
      await expectDecision(item, allowedBy('consent', 'consent', renewal.id));
    });
  });

  describe('RULES 10 B2C email and SMS need prior consent', () => {
    it('answers no_consent on consent purposes whoever the contact is, soft opt-in or not', async () => {
      const people = [
        await createContact(t, { phone: mobile() }),
        await createContact(t, { phone: mobile(), lastPurchaseAt: daysAgo(5) }),
        await createContact(t, { phone: mobile(), kind: 'professional', lastPurchaseAt: daysAgo(5) }),
      ];
      for (const contact of people) {
        await expectDecision({ contactId: contact.id, purpose: 'commercial-email', channel: 'email' }, refusedBy('consent', 'no_consent'));
        await expectDecision({ contactId: contact.id, purpose: 'commercial-sms', channel: 'sms' }, refusedBy('consent', 'no_consent'));
      }
      const grant = await record(t, { contactId: people[0]?.id, purpose: 'commercial-sms', channel: 'sms', action: 'grant' });
      await expectDecision(
        { contactId: String(people[0]?.id), purpose: 'commercial-sms', channel: 'sms' },
        allowedBy('consent', 'consent', grant.id),
      );
    });
  });

  describe('RULES 11 soft opt-in', () => {
    it('allows a customer with a recorded purchase on email and SMS', async () => {
      const contact = await createContact(t, { phone: mobile(), lastPurchaseAt: daysAgo(100) });
      expect(contact.lifecycle).toBe('customer');
      for (const channel of ['email', 'sms']) {
        await expectDecision({ contactId: contact.id, purpose: 'li-offers', channel }, allowedBy('legitimate_interest', 'soft_opt_in'));
      }
      // By address too, and with the evidence of a recorded event when there is one.
      const grant = await record(t, { contactId: contact.id, purpose: 'li-offers', channel: 'sms', action: 'grant' });
      await expectDecision(
        { phone: String(contact.phone), purpose: 'li-offers', channel: 'sms' },
        allowedBy('consent', 'consent', grant.id),
      );
      await expectDecision(
        { email: String(contact.email), purpose: 'li-offers', channel: 'email' },
        allowedBy('legitimate_interest', 'soft_opt_in'),
      );
    });

    it('refuses a prospect without an order', async () => {
      const contact = await createContact(t, { phone: mobile() });
      expect(contact.lifecycle).toBe('prospect');
      for (const channel of ['email', 'sms']) {
        await expectDecision(
          { contactId: contact.id, purpose: 'li-offers', channel },
          refusedBy('legitimate_interest', 'soft_opt_in_not_eligible'),
        );
      }
    });

    it('refuses a contact marked customer without a purchase date (an account is not a sale)', async () => {
      const contact = await createContact(t, { phone: mobile(), lifecycle: 'customer' });
      for (const channel of ['email', 'sms']) {
        await expectDecision(
          { contactId: contact.id, purpose: 'li-offers', channel },
          refusedBy('legitimate_interest', 'soft_opt_in_not_eligible'),
        );
      }
    });

    it('refuses a former customer: the last purchase is older than 365 days', async () => {
      const former = await createContact(t, { phone: mobile(), lifecycle: 'customer', lastPurchaseAt: daysAgo(366) });
      expect(former.lifecycle).toBe('former_customer');
      for (const channel of ['email', 'sms']) {
        await expectDecision(
          { contactId: former.id, purpose: 'li-offers', channel },
          refusedBy('legitimate_interest', 'soft_opt_in_not_eligible'),
        );
      }
      // A recent customer asked about a time when the purchase is more than a year old.
      const recent = await createContact(t, { lastPurchaseAt: daysAgo(30) });
      const item = { contactId: recent.id, purpose: 'li-offers', channel: 'email' };
      await expectDecision(
        { ...item, at: new Date(now().getTime() + 335 * DAY - 60_000).toISOString() },
        allowedBy('legitimate_interest', 'soft_opt_in'),
      );
      await expectDecision(
        { ...item, at: new Date(now().getTime() + 336 * DAY).toISOString() },
        refusedBy('legitimate_interest', 'soft_opt_in_not_eligible'),
      );
    });
  });

  describe('RULES 12 B2B email', () => {
    it('allows a professional on email (b2b_opt_out), not the same person kind', async () => {
      const pro = await createContact(t, { kind: 'professional', email: `buyer-${Date.now()}@company.example` });
      await expectDecision({ contactId: pro.id, purpose: 'li-offers', channel: 'email' }, allowedBy('legitimate_interest', 'b2b_opt_out'));
      const person = await createContact(t, { kind: 'person' });
      await expectDecision(
        { contactId: person.id, purpose: 'li-offers', channel: 'email' },
        refusedBy('legitimate_interest', 'soft_opt_in_not_eligible'),
      );
    });

    it('does not extend to SMS unless the professional is a customer', async () => {
      const pro = await createContact(t, { kind: 'professional', phone: mobile() });
      await expectDecision(
        { contactId: pro.id, purpose: 'li-offers', channel: 'sms' },
        refusedBy('legitimate_interest', 'soft_opt_in_not_eligible'),
      );
      const buyer = await createContact(t, { kind: 'professional', phone: mobile(), lastPurchaseAt: daysAgo(3) });
      await expectDecision({ contactId: buyer.id, purpose: 'li-offers', channel: 'sms' }, allowedBy('legitimate_interest', 'soft_opt_in'));
    });
  });

  describe('RULES 13 postal and phone', () => {
    it('allows postal mail on legitimate interest (opt_out_channel), whoever the contact', async () => {
      const prospect = await createContact(t);
      await expectDecision(
        { contactId: prospect.id, purpose: 'li-offers', channel: 'postal' },
        allowedBy('legitimate_interest', 'opt_out_channel'),
      );
      await expectDecision(
        { contactId: prospect.id, purpose: 'li-offers', channel: 'postal', at: '2030-01-01T00:00:00Z' },
        allowedBy('legitimate_interest', 'opt_out_channel'),
      );
    });

    it('allows phone calls to a person prospect before 2026-08-11, needs consent from then', async () => {
      const person = await createContact(t, { phone: mobile() });
      const item = { contactId: person.id, purpose: 'commercial-phone', channel: 'phone' };
      await expectDecision({ ...item, at: SWITCH_EVE }, allowedBy('legitimate_interest', 'opt_out_channel'));
      await expectDecision({ ...item, at: '2026-08-10T23:59:59.999Z' }, allowedBy('legitimate_interest', 'opt_out_channel'));
      await expectDecision({ ...item, at: SWITCH }, refusedBy('legitimate_interest', 'phone_consent_required'));
      await expectDecision({ ...item, at: '2027-03-01T09:00:00Z' }, refusedBy('legitimate_interest', 'phone_consent_required'));
      await expectDecision(item, refusedBy('legitimate_interest', 'phone_consent_required'));
    });

    it('still allows, after the switch, a customer with a purchase and a professional', async () => {
      // Bought before the switch date and within the year before now.
      const customer = await createContact(t, { phone: mobile(), lastPurchaseAt: '2026-07-01T10:00:00Z' });
      const pro = await createContact(t, { phone: mobile(), kind: 'professional' });
      const former = await createContact(t, { phone: mobile(), lastPurchaseAt: '2025-06-01T10:00:00Z' });
      const markedCustomer = await createContact(t, { phone: mobile(), lifecycle: 'customer' });
      for (const at of [SWITCH, now().toISOString()]) {
        await expectDecision(
          { contactId: customer.id, purpose: 'commercial-phone', channel: 'phone', at },
          allowedBy('legitimate_interest', 'opt_out_channel'),
        );
        await expectDecision(
          { contactId: pro.id, purpose: 'commercial-phone', channel: 'phone', at },
          allowedBy('legitimate_interest', 'opt_out_channel'),
        );
        await expectDecision(
          { contactId: former.id, purpose: 'commercial-phone', channel: 'phone', at },
          refusedBy('legitimate_interest', 'phone_consent_required'),
        );
        await expectDecision(
          { contactId: markedCustomer.id, purpose: 'commercial-phone', channel: 'phone', at },
          refusedBy('legitimate_interest', 'phone_consent_required'),
        );
      }
    });

    it('allows a person who granted consent after the switch', async () => {
      const person = await createContact(t, { phone: mobile() });
      const item = { contactId: person.id, purpose: 'commercial-phone', channel: 'phone' };
      await expectDecision(item, refusedBy('legitimate_interest', 'phone_consent_required'));
      const grant = await record(t, { ...item, action: 'grant' });
      await expectDecision(item, allowedBy('consent', 'consent', grant.id));
      await expectDecision({ ...item, at: '2027-03-01T09:00:00Z' }, allowedBy('consent', 'consent', grant.id));
      // …and nobody once the consent is withdrawn: on a legitimate-interest purpose that is an objection.
      const withdrawal = await record(t, { ...item, action: 'withdraw' });
      await expectDecision(item, refusedBy('legitimate_interest', 'objected', withdrawal.id));
      await expectDecision({ ...item, at: SWITCH_EVE }, refusedBy('legitimate_interest', 'objected', withdrawal.id));
    });
  });

  describe('always first: erasure, suppression, channel, contact, address', () => {
    it('answers suppressed for a suppressed address even with a valid consent', async () => {
      const contact = await createContact(t, { phone: mobile() });
      const email = { contactId: contact.id, purpose: 'commercial-email', channel: 'email' };
      const grant = await record(t, { ...email, action: 'grant' });
      await expectDecision(email, allowedBy('consent', 'consent', grant.id));
      const res = await t.call('POST', '/v1/suppressions', { body: { channel: 'email', email: contact.email, reason: 'unsubscribed' } });
      expect(res.statusCode, res.body).toBe(201);
      await expectDecision(email, refusedBy('consent', 'suppressed', grant.id));
      await expectDecision(
        { email: String(contact.email).toUpperCase(), purpose: 'commercial-email', channel: 'email' },
        refusedBy('consent', 'suppressed', grant.id),
      );
      // The suppression is per channel: the SMS consent still holds.
      const sms = await record(t, { contactId: contact.id, purpose: 'commercial-sms', channel: 'sms', action: 'grant' });
      await expectDecision({ contactId: contact.id, purpose: 'commercial-sms', channel: 'sms' }, allowedBy('consent', 'consent', sms.id));
    });

    it('answers suppressed before legitimate interest, on SMS by phone number', async () => {
      const contact = await createContact(t, { phone: mobile(), lastPurchaseAt: daysAgo(1) });
      const item = { contactId: contact.id, purpose: 'li-offers', channel: 'sms' };
      await expectDecision(item, allowedBy('legitimate_interest', 'soft_opt_in'));
      const res = await t.call('POST', '/v1/suppressions', {
        body: { channel: 'sms', phone: String(contact.phone), reason: 'unsubscribed' },
      });
      expect(res.statusCode, res.body).toBe(201);
      await expectDecision(item, refusedBy('legitimate_interest', 'suppressed'));
    });

    it('answers channel_not_in_purpose for a channel the purpose does not use', async () => {
      const contact = await createContact(t, { phone: mobile() });
      await expectDecision(
        { contactId: contact.id, purpose: 'commercial-email', channel: 'sms' },
        refusedBy('consent', 'channel_not_in_purpose'),
      );
      await expectDecision(
        { contactId: contact.id, purpose: 'li-offers', channel: 'phone' },
        refusedBy('legitimate_interest', 'channel_not_in_purpose'),
      );
    });

    it('answers unknown_contact for an id, email or phone nobody has', async () => {
      const item = { purpose: 'commercial-email', channel: 'email' };
      await expectDecision({ ...item, contactId: '01JZZZZZZZZZZZZZZZZZZZZZZZ' }, refusedBy('consent', 'unknown_contact'));
      await expectDecision({ ...item, email: 'nobody-here@example.com' }, refusedBy('consent', 'unknown_contact'));
      await expectDecision(
        { purpose: 'li-offers', channel: 'sms', phone: '+33699999998' },
        refusedBy('legitimate_interest', 'unknown_contact'),
      );
    });

    it('answers no_address when the contact has no address on the channel', async () => {
      const noPhone = await createContact(t, { phone: null, lastPurchaseAt: daysAgo(2) });
      await expectDecision({ contactId: noPhone.id, purpose: 'commercial-sms', channel: 'sms' }, refusedBy('consent', 'no_address'));
      await expectDecision({ contactId: noPhone.id, purpose: 'li-offers', channel: 'sms' }, refusedBy('legitimate_interest', 'no_address'));
      await expectDecision(
        { contactId: noPhone.id, purpose: 'commercial-phone', channel: 'phone', at: SWITCH_EVE },
        refusedBy('legitimate_interest', 'no_address'),
      );
      const noEmail = await createContact(t, { email: null, phone: mobile(), kind: 'professional' });
      await expectDecision(
        { contactId: noEmail.id, purpose: 'li-offers', channel: 'email' },
        refusedBy('legitimate_interest', 'no_address'),
      );
    });

    it('answers erased for an erased contact, suppressed for a new contact with the same email', async () => {
      const contact = await createContact(t, { phone: mobile() });
      const item = { contactId: contact.id, purpose: 'commercial-email', channel: 'email' };
      await record(t, { ...item, action: 'grant' });
      expect((await t.call('DELETE', `/v1/contacts/${contact.id}`)).statusCode).toBe(204);
      await expectDecision(item, refusedBy('consent', 'erased'));
      await expectDecision(
        { contactId: contact.id, purpose: 'commercial-phone', channel: 'phone', at: SWITCH_EVE },
        refusedBy('legitimate_interest', 'erased'),
      );
      const again = await createContact(t, { email: contact.email, phone: contact.phone });
      await expectDecision({ contactId: again.id, purpose: 'commercial-email', channel: 'email' }, refusedBy('consent', 'suppressed'));
      await expectDecision(
        { contactId: again.id, purpose: 'commercial-phone', channel: 'phone', at: SWITCH_EVE },
        refusedBy('legitimate_interest', 'suppressed'),
      );
    });

    it('refuses an unknown purpose or channel with a 422 problem', async () => {
      const contact = await createContact(t);
      const purpose = await t.call(
        'GET',
        `/v1/decisions?${new URLSearchParams({ contactId: contact.id, purpose: 'no-such', channel: 'email' })}`,
      );
      expect(purpose.statusCode).toBe(422);
      expect(purpose.json().code).toBe('unknown_purpose');
      const channel = await t.call('POST', '/v1/decisions', {
        body: { items: [{ contactId: contact.id, purpose: 'commercial-email', channel: 'no-such' }] },
      });
      expect(channel.statusCode).toBe(422);
      expect(channel.json().code).toBe('unknown_channel');
      // GET with the lists cached (decided at once) and not (read first): the same problem.
      const unknownChannel = `/v1/decisions?${new URLSearchParams({ contactId: contact.id, purpose: 'commercial-email', channel: 'no-such' })}`;
      for (const cached of [true, false]) {
        if (!cached) invalidate(t.ctx, 'channels');
        const res = await t.call('GET', unknownChannel);
        expect(res.statusCode).toBe(422);
        expect(res.json()).toMatchObject({ code: 'unknown_channel', status: 422 });
      }
    });
  });

  describe('POST /v1/decisions', () => {
    it('answers in the order of the items, each as GET /v1/decisions does', async () => {
      const customer = await createContact(t, { phone: mobile(), lastPurchaseAt: daysAgo(20) });
      const prospect = await createContact(t, { phone: mobile() });
      const pro = await createContact(t, { kind: 'professional', phone: mobile() });
      const grant = await record(t, { contactId: prospect.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
      const pending = await record(t, { contactId: prospect.id, purpose: 'doi-news', channel: 'email', action: 'grant' });
      const items: Item[] = [
        { contactId: customer.id, purpose: 'li-offers', channel: 'sms' },
        { contactId: prospect.id, purpose: 'li-offers', channel: 'sms' },
        { contactId: prospect.id, purpose: 'commercial-email', channel: 'email' },
        { contactId: pro.id, purpose: 'li-offers', channel: 'email' },
        { contactId: prospect.id, purpose: 'doi-news', channel: 'email' },
        { contactId: prospect.id, purpose: 'commercial-phone', channel: 'phone', at: SWITCH_EVE },
        { contactId: prospect.id, purpose: 'commercial-phone', channel: 'phone', at: SWITCH },
        { contactId: '01JZZZZZZZZZZZZZZZZZZZZZZZ', purpose: 'commercial-sms', channel: 'sms' },
        { contactId: prospect.id, purpose: 'commercial-email', channel: 'sms' },
        { contactId: customer.id, purpose: 'li-offers', channel: 'postal' },
      ];
      const expected: DecisionOut[] = [
        allowedBy('legitimate_interest', 'soft_opt_in'),
        refusedBy('legitimate_interest', 'soft_opt_in_not_eligible'),
        allowedBy('consent', 'consent', grant.id),
        allowedBy('legitimate_interest', 'b2b_opt_out'),
        refusedBy('consent', 'doi_pending', pending.id),
        allowedBy('legitimate_interest', 'opt_out_channel'),
        refusedBy('legitimate_interest', 'phone_consent_required'),
        refusedBy('consent', 'unknown_contact'),
        refusedBy('consent', 'channel_not_in_purpose'),
        allowedBy('legitimate_interest', 'opt_out_channel'),
      ];
      for (const order of [items.map((_, i) => i), items.map((_, i) => items.length - 1 - i)]) {
        const res = await t.call('POST', '/v1/decisions', { body: { items: order.map((i) => items[i]) }, key: t.keys.read });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().results).toEqual(order.map((i) => expected[i]));
      }
      for (const [i, item] of items.entries()) expect(await decideBoth(item)).toEqual(expected[i]);
    });
  });
});

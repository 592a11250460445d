import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordConsents } from '../src/modules/consents/index.ts';
import { runDueJobs } from '../src/modules/scheduler/index.ts';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, decision, record } from './helpers/factories.ts';

describe.each(dialects)('consent core on %s', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp(dialect);
  });
  afterAll(async () => t.close());

  describe('POST /v1/consents', () => {
    it('keeps grant → withdraw → grant as three chained events, state granted, decision on the last grant', async () => {
      const contact = await createContact(t);
      const base = { contactId: contact.id, purpose: 'commercial-email', channel: 'email' };
      const first = await record(t, { ...base, action: 'grant', evidence: { ip: '203.0.113.9', url: 'https://shop.example/signup' } });
      const second = await record(t, { ...base, action: 'withdraw', source: { type: 'preference_centre' } });
      const third = await record(t, { ...base, action: 'grant', source: { type: 'form', ref: 'signup@1' } });

      expect(second.prevHash).toBe(first.hash);
      expect(third.prevHash).toBe(second.hash);

      const history = (await t.call('GET', `/v1/contacts/${contact.id}/consents/history`)).json();
      expect(history.items.map((e: { action: string }) => e.action)).toEqual(['granted', 'withdrawn', 'granted']);

      const states = (await t.call('GET', `/v1/contacts/${contact.id}/consents`)).json();
      const email = states.items.find(
        (s: { purpose: string; channel: string }) => s.purpose === 'commercial-email' && s.channel === 'email',
      );
      expect(email.status).toBe('granted');
      const sms = states.items.find((s: { purpose: string }) => s.purpose === 'commercial-sms');
      expect(sms.status).toBe('none');

      const verify = (await t.call('GET', '/v1/ledger/verify')).json();
      expect(verify.ok).toBe(true);

      const d = await decision(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email' });
      expect(d).toMatchObject({ allowed: true, basis: 'consent', reason: 'consent', evidenceEventId: third.id });
    });

    it('holds a double opt-in grant pending until it is confirmed', async () => {
      const purpose = await t.call('POST', '/v1/purposes', {
        body: { key: 'newsletter', title: { fr: 'Lettre d’information', en: 'Newsletter' }, channels: ['email'], doubleOptIn: true },
      });
      expect(purpose.statusCode).toBe(201);
      const contact = await createContact(t);
      const base = { contactId: contact.id, purpose: 'newsletter', channel: 'email' };
      const grant = await record(t, { ...base, action: 'grant' });
      expect(grant.status).toBe('pending');
      expect(await decision(t, { contactId: contact.id, purpose: 'newsletter', channel: 'email' })).toMatchObject({
        allowed: false,
        reason: 'doi_pending',
      });
      const confirm = await record(t, { ...base, action: 'confirm', source: { type: 'double_opt_in' } });
      expect(confirm.status).toBe('granted');
      expect(await decision(t, { contactId: contact.id, purpose: 'newsletter', channel: 'email' })).toMatchObject({
        allowed: true,
        reason: 'consent',
        evidenceEventId: confirm.id,
      });
    });

    it('refuses to confirm what is not pending', async () => {
      const contact = await createContact(t);
      const res = await t.call('POST', '/v1/consents', {
        body: { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'confirm' },
      });
      expect(res.statusCode).toBe(409);
      expect(res.json().code).toBe('nothing_to_confirm');
    });

    it('expires a consent after expiry.afterDays when the scheduler runs past it', async () => {
      await t.call('POST', '/v1/purposes', {
        body: { key: 'flash-sales', title: { fr: 'Ventes flash' }, channels: ['email', 'sms'], expiry: { afterDays: 30 } },
      });
      const contact = await createContact(t);
      const grant = await record(t, { contactId: contact.id, purpose: 'flash-sales', channel: 'email', action: 'grant' });
      expect(grant.expiresAt).toBe(new Date(t.clock.now().getTime() + 30 * 86_400_000).toISOString());

      const later = new Date(t.clock.now().getTime() + 31 * 86_400_000);
      // The decision is already refused at that time, before any job ran…
      expect(await decision(t, { contactId: contact.id, purpose: 'flash-sales', channel: 'email', at: later.toISOString() })).toMatchObject(
        {
          allowed: false,
          reason: 'consent_expired',
        },
      );
      // …and the scheduler records the expiry in the ledger.
      const saved = t.clock.now();
      t.clock.set(later);
      const results = await runDueJobs(t.ctx, later);
      t.clock.set(saved);
      expect(results.find((r) => r.job === 'expire-consents')?.ran).toBe(true);
      const history = (await t.call('GET', `/v1/contacts/${contact.id}/consents/history`)).json();
      expect(history.items.map((e: { action: string }) => e.action)).toEqual(['granted', 'expired']);
      expect(history.items[1].occurredAt).toBe(grant.expiresAt);
      expect(await decision(t, { contactId: contact.id, purpose: 'flash-sales', channel: 'email' })).toMatchObject({
        allowed: false,
        reason: 'consent_expired',
      });
    });

    it('answers the same event for the same idempotency key and body, 409 for another body', async () => {
      const contact = await createContact(t);
      const body = { contactId: contact.id, purpose: 'commercial-sms', channel: 'sms', action: 'grant', idempotencyKey: `k-${contact.id}` };
      const first = await t.call('POST', '/v1/consents', { body });
      const again = await t.call('POST', '/v1/consents', { body });
      expect(first.statusCode).toBe(201);
      expect(again.statusCode).toBe(200);
      expect(again.json().id).toBe(first.json().id);
      const other = await t.call('POST', '/v1/consents', { body: { ...body, action: 'refuse' } });
      expect(other.statusCode).toBe(409);
      expect(other.json().code).toBe('idempotency_conflict');
      const history = (await t.call('GET', `/v1/contacts/${contact.id}/consents/history`)).json();
      expect(history.items).toHaveLength(1);
    });

    it('records by email, creating the contact, and grants per channel only (an email grant makes no SMS state)', async () => {
      const res = await t.call('POST', '/v1/consents', {
        body: { email: 'New.Person@Example.org', purpose: 'commercial-email', channel: 'email', action: 'grant' },
      });
      expect(res.statusCode).toBe(201);
      const found = (await t.call('GET', '/v1/contacts?email=new.person@example.org')).json();
      expect(found.items).toHaveLength(1);
      const states = (await t.call('GET', `/v1/contacts/${found.items[0].id}/consents`)).json();
      expect(states.items.filter((s: { status: string }) => s.status !== 'none')).toHaveLength(1);
    });
  });

  describe('a batch of consents (recordConsents)', () => {
    it('starts from the stored states, folds several actions on one pair in order, one chain per contact', async () => {
      const purpose = await t.call('POST', '/v1/purposes', {
        body: { key: 'batch-news', title: { fr: 'Lettre', en: 'Letter' }, channels: ['email'], doubleOptIn: true },
      });
      expect(purpose.statusCode).toBe(201);
      const [one, two, three] = [await createContact(t), await createContact(t), await createContact(t)];
      const req = { actor: { type: 'api_key' as const, name: 'batch-test' } };
      const news = { purpose: 'batch-news', channel: 'email' };
      const email = { purpose: 'commercial-email', channel: 'email' };
      // Stored before: two double opt-in grants waiting for confirmation, and one granted consent.
      await recordConsents(t.ctx, req, [
        { contactId: one?.id, ...news, action: 'grant' },
        { contactId: two?.id, ...news, action: 'grant' },
        { contactId: one?.id, ...email, action: 'grant' },
      ]);
      const events = await recordConsents(t.ctx, req, [
        { contactId: one?.id, ...news, action: 'confirm' },
        { contactId: one?.id, ...email, action: 'withdraw' },
        { contactId: three?.id, ...news, action: 'grant' },
        { contactId: one?.id, ...email, action: 'grant' },
        { contactId: three?.id, ...news, action: 'confirm' },
        { contactId: two?.id, ...news, action: 'confirm' },
        { contactId: one?.id, ...email, action: 'withdraw' },
      ]);
      expect(events.map((r) => r.event.status)).toEqual(['granted', 'withdrawn', 'pending', 'granted', 'granted', 'granted', 'withdrawn']);

      const states = async (id: string | undefined) =>
        Object.fromEntries(
          (await t.call('GET', `/v1/contacts/${id}/consents`))
            .json()
            .items.map((s: { purpose: string; channel: string; status: string }) => [`${s.purpose}/${s.channel}`, s.status]),
        );
      expect(await states(one?.id)).toMatchObject({ 'batch-news/email': 'granted', 'commercial-email/email': 'withdrawn' });
      expect(await states(two?.id)).toMatchObject({ 'batch-news/email': 'granted', 'commercial-email/email': 'none' });
      expect(await states(three?.id)).toMatchObject({ 'batch-news/email': 'granted' });

      const history = (await t.call('GET', `/v1/contacts/${one?.id}/consents/history`)).json().items as Array<{
        hash: string;
        prevHash: string;
      }>;
      expect(history).toHaveLength(6);
      for (let k = 1; k < history.length; k += 1) expect(history[k]?.prevHash).toBe(history[k - 1]?.hash);
      expect((await t.call('GET', '/v1/ledger/verify')).json().ok).toBe(true);
    });
  });

  describe('concurrent writes', () => {
    it('keeps one unbroken chain when many consents for one contact arrive at once', async () => {
      const contact = await createContact(t);
      const actions = ['grant', 'withdraw', 'refuse', 'grant'];
      const responses = await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          t.call('POST', '/v1/consents', {
            body: {
              contactId: contact.id,
              purpose: i % 2 ? 'commercial-email' : 'commercial-sms',
              channel: i % 2 ? 'email' : 'sms',
              action: actions[i % 4],
            },
          }),
        ),
      );
      expect(responses.map((r) => r.statusCode)).toEqual(Array(24).fill(201));
      const history = (await t.call('GET', `/v1/contacts/${contact.id}/consents/history`)).json();
      expect(history.items.map((e: { seq: number }) => e.seq)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
      expect((await t.call('GET', `/v1/contacts/${contact.id}/proof`)).json().chain.ok).toBe(true);
    });

    it('creates one contact when several consents for a new email arrive at once', async () => {
      const email = `race-${Date.now()}@example.com`;
      const responses = await Promise.all(
        Array.from({ length: 8 }, () =>
          t.call('POST', '/v1/consents', { body: { email, purpose: 'commercial-email', channel: 'email', action: 'grant' } }),
        ),
      );
      expect(responses.map((r) => r.statusCode)).toEqual(Array(8).fill(201));
      const found = (await t.call('GET', `/v1/contacts?email=${encodeURIComponent(email)}`)).json();
      expect(found.items).toHaveLength(1);
      expect(new Set(responses.map((r) => r.json().contactId))).toEqual(new Set([found.items[0].id]));
    });
  });

  describe('GET /v1/contacts/:id/proof', () => {
    it('bundles the events, the wording of every cited purpose version and the chain check', async () => {
      const contact = await createContact(t);
      await record(t, {
        contactId: contact.id,
        purpose: 'commercial-email',
        channel: 'email',
        action: 'grant',
        evidence: { ip: '198.51.100.7', userAgent: 'Firefox' },
      });
      const patched = await t.call('PATCH', '/v1/purposes/commercial-email', {
        body: { description: { fr: 'Nos offres, chaque semaine.', en: 'Our offers, every week.' } },
      });
      expect(patched.json().version).toBe(2);
      await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'withdraw' });
      const proof = (await t.call('GET', `/v1/contacts/${contact.id}/proof`)).json();
      expect(proof.events).toHaveLength(2);
      expect(proof.events[0].evidence).toMatchObject({ ip: '198.51.100.7', userAgent: 'Firefox' });
      expect(proof.events.map((e: { purposeVersion: number }) => e.purposeVersion)).toEqual([1, 2]);
      expect(proof.purposeVersions.map((v: { version: number }) => v.version)).toEqual([1, 2]);
      expect(proof.purposeVersions[1].description.fr).toBe('Nos offres, chaque semaine.');
      expect(proof.chain).toMatchObject({ ok: true, events: 2 });
    });
  });

  describe('DELETE /v1/contacts/:id', () => {
    it('erases personal data, keeps a verifiable proof, and suppresses the address until the person grants again by form', async () => {
      const contact = await createContact(t, { email: 'erase.me@example.com', phone: '+33611223344' });
      await record(t, {
        contactId: contact.id,
        purpose: 'commercial-email',
        channel: 'email',
        action: 'grant',
        evidence: { ip: '192.0.2.44', userAgent: 'Mozilla/5.0 Erase' },
      });
      expect((await t.call('DELETE', `/v1/contacts/${contact.id}`)).statusCode).toBe(204);

      expect((await t.call('GET', `/v1/contacts/${contact.id}`)).statusCode).toBe(410);
      const proof = (await t.call('GET', `/v1/contacts/${contact.id}/proof`)).json();
      expect(proof.erased).toBe(true);
      expect(proof.chain.ok).toBe(true);
      expect(JSON.stringify(proof)).not.toContain('192.0.2.44');
      expect(JSON.stringify(proof)).not.toContain('Mozilla/5.0 Erase');
      expect(proof.events[0]).toMatchObject({ purpose: 'commercial-email', channel: 'email', action: 'granted' });
      expect((await t.call('GET', '/v1/ledger/verify')).json().ok).toBe(true);

      const raw = await t.ctx.db.kysely.selectFrom('contacts').selectAll().where('id', '=', contact.id).executeTakeFirstOrThrow();
      expect([raw.email, raw.phone, raw.first_name, raw.last_name]).toEqual([null, null, null, null]);

      const again = await createContact(t, { email: 'Erase.Me@example.com' });
      expect(await decision(t, { contactId: again.id, purpose: 'commercial-email', channel: 'email' })).toMatchObject({
        allowed: false,
        reason: 'suppressed',
      });
      // An API grant with source "import" does not lift the suppression…
      await record(t, {
        contactId: again.id,
        purpose: 'commercial-email',
        channel: 'email',
        action: 'grant',
        source: { type: 'import', ref: 'batch-1' },
      });
      expect((await decision(t, { contactId: again.id, purpose: 'commercial-email', channel: 'email' })).reason).toBe('suppressed');
      // …the person's own grant through a form does.
      await record(t, {
        contactId: again.id,
        purpose: 'commercial-email',
        channel: 'email',
        action: 'grant',
        source: { type: 'form', ref: 'signup@1' },
      });
      expect(await decision(t, { contactId: again.id, purpose: 'commercial-email', channel: 'email' })).toMatchObject({
        allowed: true,
        reason: 'consent',
      });
      const fresh = await t.ctx.db.kysely
        .selectFrom('contacts')
        .select('last_interaction_at')
        .where('id', '=', again.id)
        .executeTakeFirstOrThrow();
      expect(fresh.last_interaction_at).toBe(t.clock.now().toISOString());
    });
  });
});

// Exports: contacts (in the import's columns), consent states and ledger events streamed as CSV or
// JSON Lines, restricted to a segment, quoted as RFC 4180 says, 5,000 contacts read page by page;
// the access export of one person as JSON and as a page; an export re-imports into an empty
// database — on every store.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordConsents } from '../src/modules/consents/index.ts';
import { insertContactRows, newContactRow } from '../src/modules/contacts/index.ts';
import { openExport, profileColumns } from '../src/modules/exports/index.ts';
import { runDueJobs } from '../src/modules/scheduler/index.ts';
import { cliRequest } from '../src/platform/context.ts';
import { buildTestApp, TEST_SECRET, type TestApp } from './helpers/build-app.ts';
import { runCli } from './helpers/cli.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, frenchMobile, record } from './helpers/factories.ts';

const START = '2026-11-01T08:00:00.000Z';
const NOW = '2026-11-22T10:00:00.000Z';

type Row = Record<string, string>;
type Json = Record<string, unknown>;

const csvRows = (text: string): Row[] => parse(text, { columns: true, bom: true }) as Row[];
const csvHeader = (text: string): string[] => (parse(text, { to_line: 1 }) as string[][])[0] as string[];
const jsonLines = (text: string): Json[] =>
  text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Json);

const FIELDS = [
  { key: 'city', type: 'string', purpose: 'commercial-email', retentionDays: 730 },
  { key: 'points', type: 'number', purpose: 'commercial-email', retentionDays: 730 },
  { key: 'vip', type: 'boolean', purpose: 'commercial-email', retentionDays: 365 },
];
const NEWSLETTER = {
  key: 'newsletter',
  title: { fr: 'La lettre du jeudi', en: 'The Thursday letter' },
  description: { fr: 'Nos nouveautés chaque jeudi.', en: 'Our news every Thursday.' },
  channels: ['email'],
  doubleOptIn: true,
};
const NEWSLETTER_V2_TITLE = { fr: 'La lettre du vendredi', en: 'The Friday letter' };

/** The settings an empty database needs before contacts come in: declared fields and purposes. */
async function configure(t: TestApp): Promise<void> {
  for (const field of FIELDS) expect((await t.call('POST', '/v1/fields', { body: field })).statusCode).toBe(201);
  expect((await t.call('POST', '/v1/purposes', { body: NEWSLETTER })).statusCode).toBe(201);
}

interface World {
  ann: Json & { id: string; phone: string };
  bob: Json & { id: string };
  cat: Json & { id: string };
  dan: Json & { id: string; phone: string };
  goneId: string;
  annConfirmedAt: string;
  danConfirmedAt: string;
}

const ANN_LAST_NAME = 'O\'Brien, "Junior"\nSecond line';
const ANN_IP = '203.0.113.7';
const ANN_UA = 'Mozilla/5.0 (Ann; Test)';
const DAN_IP = '198.51.100.9';
const DAN_UA = 'UA-of-Dan/1.0';

describe.each(dialects)('exports on %s', (dialect) => {
  let t: TestApp;
  let w: World;

  const get = (url: string, key?: string, headers?: Record<string, string>) =>
    t.call('GET', url, { key: key ?? t.keys.read, ...(headers ? { headers } : {}) });

  async function history(id: string): Promise<Json[]> {
    return (await t.call('GET', `/v1/contacts/${id}/consents/history`)).json().items;
  }

  async function count(table: 'consent_states' | 'consent_events'): Promise<number> {
    const row = await t.ctx.db.kysely
      .selectFrom(table)
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  beforeAll(async () => {
    t = await buildTestApp(dialect, { now: START, env: { PUBLIC_URL: 'https://consent.example', RATE_LIMIT_PER_MINUTE: '10000' } });
    await configure(t);
    const at = (iso: string) => {
      t.clock.set(iso);
      return iso;
    };

    const ann = (await createContact(t, {
      email: 'ann@example.com',
      phone: frenchMobile(),
      firstName: 'Éloïse',
      lastName: ANN_LAST_NAME,
      source: 'Boutique, Paris',
      lastPurchaseAt: '2026-06-01T00:00:00.000Z',
      attributes: { city: 'Saint-Étienne', points: 12, vip: true },
    })) as World['ann'];
    at('2026-11-01T09:00:00.000Z');
    await record(t, {
      contactId: ann.id,
      purpose: 'commercial-email',
      channel: 'email',
      action: 'grant',
      evidence: { ip: ANN_IP, userAgent: ANN_UA },
    });
    await record(t, { contactId: ann.id, purpose: 'commercial-sms', channel: 'sms', action: 'refuse' });
    at('2026-11-02T09:00:00.000Z');
    await record(t, {
      contactId: ann.id,
      purpose: 'newsletter',
      channel: 'email',
      action: 'grant',
      source: { type: 'form', ref: 'home' },
      evidence: { ip: ANN_IP, userAgent: ANN_UA },
    });
    const annConfirmedAt = at('2026-11-02T09:30:00.000Z');
    await record(t, { contactId: ann.id, purpose: 'newsletter', channel: 'email', action: 'confirm', source: { type: 'double_opt_in' } });

    at('2026-11-03T09:00:00.000Z');
    const bob = (await createContact(t, {
      email: 'bob@example.com',
      phone: frenchMobile(),
      firstName: 'Bob',
      attributes: { vip: false },
    })) as World['bob'];
    await record(t, { contactId: bob.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
    at('2026-11-04T09:00:00.000Z');
    await record(t, { contactId: bob.id, purpose: 'commercial-email', channel: 'email', action: 'withdraw' });
    await record(t, { contactId: bob.id, purpose: 'commercial-phone', channel: 'phone', action: 'object' });

    const cat = (await createContact(t, { email: 'cat@example.com', firstName: null, lastName: null })) as World['cat'];
    await record(t, { contactId: cat.id, purpose: 'newsletter', channel: 'email', action: 'grant' });

    const gone = await createContact(t, { email: 'gone@example.com' });
    await record(t, { contactId: gone.id, purpose: 'commercial-email', channel: 'email', action: 'grant', evidence: { ip: ANN_IP } });
    expect((await t.call('DELETE', `/v1/contacts/${gone.id}`)).statusCode).toBe(204);

    // Dan: a double opt-in left pending, the wording changes, a campaign mail confirms it.
    at('2026-11-05T09:00:00.000Z');
    const dan = (await createContact(t, {
      email: 'dan@example.com',
      phone: frenchMobile(),
      firstName: 'Dan',
      lastName: '<b>Durand</b>',
      locale: 'fr',
      attributes: { city: 'Lyon' },
    })) as World['dan'];
    await record(t, {
      contactId: dan.id,
      purpose: 'newsletter',
      channel: 'email',
      action: 'grant',
      source: { type: 'form', ref: 'footer' },
      evidence: { ip: DAN_IP, userAgent: DAN_UA, locale: 'fr' },
    });
    at('2026-11-06T09:00:00.000Z');
    const patched = await t.call('PATCH', '/v1/purposes/newsletter', { body: { title: NEWSLETTER_V2_TITLE } });
    expect(patched.json().version).toBe(2);
    const segment = await t.call('POST', '/v1/segments', {
      body: { key: 'dan-only', name: 'Dan', filter: { field: 'email', op: 'eq', value: 'dan@example.com' } },
    });
    expect(segment.statusCode, segment.body).toBe(201);
    const campaign = await t.call('POST', '/v1/campaigns', {
      body: {
        key: 'relance',
        name: 'Relance lettre',
        segment: 'dan-only',
        purposes: ['newsletter'],
        channel: 'email',
        startAt: '2026-11-06T09:00:00.000Z',
        deadline: '2026-12-06T09:00:00.000Z',
      },
    });
    expect(campaign.statusCode, campaign.body).toBe(201);
    expect((await t.call('POST', '/v1/campaigns/relance/launch')).json().launchReport.audience).toBe(1);
    await runDueJobs(t.ctx, t.clock.now());
    const outbox = (await t.call('GET', `/v1/outbox?contactId=${dan.id}`)).json().items as Array<{ id: string; kind: string }>;
    const mail = (await t.call('GET', `/v1/outbox/${outbox.find((m) => m.kind === 'campaign')?.id}`)).json();
    const link = /https:\/\/consent\.example(\/c\/[A-Za-z0-9_.-]+)/.exec(mail.text)?.[1] as string;
    at('2026-11-07T09:00:00.000Z');
    expect((await t.call('GET', link, { key: null })).statusCode).toBe(200);
    const danConfirmedAt = at('2026-11-07T09:01:00.000Z');
    const confirmed = await t.call('POST', link, {
      key: null,
      body: 'confirm=yes',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(confirmed.statusCode).toBe(200);
    at('2026-11-08T09:00:00.000Z');
    const suppressed = await t.call('POST', '/v1/suppressions', { body: { channel: 'sms', phone: dan.phone, reason: 'unsubscribed' } });
    expect(suppressed.statusCode, suppressed.body).toBe(201);

    const vips = await t.call('POST', '/v1/segments', {
      body: { key: 'vips', name: 'VIP', filter: { field: 'attributes.vip', op: 'eq', value: true } },
    });
    expect(vips.statusCode, vips.body).toBe(201);
    t.clock.set(NOW);
    w = { ann, bob, cat, dan, goneId: gone.id, annConfirmedAt, danConfirmedAt };
  }, 60_000);
  afterAll(async () => t?.close());

  describe('GET /v1/exports/contacts', () => {
    it('streams one CSV row per contact not erased, in the import’s columns', async () => {
      const res = await get('/v1/exports/contacts?format=csv');
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
      expect(res.headers['content-disposition']).toBe('attachment; filename="assent-contacts-2026-11-22.csv"');

      const header = csvHeader(res.body);
      expect(header.slice(0, 11)).toEqual([...profileColumns, 'city', 'points', 'vip']);
      const consentColumns = header.slice(11);
      expect(consentColumns.length % 6).toBe(0);
      for (const column of consentColumns) expect(column).toMatch(/^consent:[a-z0-9_-]+:[a-z0-9_-]+(:at|:source|:wording|:ip|:doi_at)?$/);
      for (const pair of ['commercial-email:email', 'commercial-sms:sms', 'commercial-phone:phone', 'newsletter:email']) {
        const i = header.indexOf(`consent:${pair}`);
        expect(header.slice(i, i + 6)).toEqual(['', ':at', ':source', ':wording', ':ip', ':doi_at'].map((s) => `consent:${pair}${s}`));
      }

      const rows = csvRows(res.body);
      const byEmail = new Map(rows.map((r) => [r.email, r]));
      expect([...byEmail.keys()].sort()).toEqual(['ann@example.com', 'bob@example.com', 'cat@example.com', 'dan@example.com']);

      const annEvents = await history(w.ann.id);
      const annEmailGrant = annEvents.find((e) => e.purpose === 'commercial-email') as { evidence: { text: string } };
      expect(byEmail.get('ann@example.com')).toMatchObject({
        email: 'ann@example.com',
        phone: w.ann.phone,
        firstName: 'Éloïse',
        lastName: ANN_LAST_NAME,
        lifecycle: 'customer',
        lastPurchaseAt: '2026-06-01T00:00:00.000Z',
        kind: 'person',
        source: 'Boutique, Paris',
        city: 'Saint-Étienne',
        points: '12',
        vip: 'true',
        'consent:commercial-email:email': 'yes',
        'consent:commercial-email:email:at': '2026-11-01T09:00:00.000Z',
        'consent:commercial-email:email:source': 'api',
        'consent:commercial-email:email:wording': annEmailGrant.evidence.text,
        'consent:commercial-email:email:ip': ANN_IP,
        'consent:commercial-email:email:doi_at': '',
        'consent:commercial-sms:sms': 'no',
        'consent:commercial-sms:sms:at': '2026-11-01T09:00:00.000Z',
        'consent:commercial-sms:sms:ip': '',
        'consent:newsletter:email': 'yes',
        'consent:newsletter:email:at': w.annConfirmedAt,
        'consent:newsletter:email:source': 'double_opt_in',
        'consent:newsletter:email:doi_at': w.annConfirmedAt,
        'consent:commercial-phone:phone': '',
        'consent:commercial-phone:phone:at': '',
      });
      expect(annEmailGrant.evidence.text).toContain('Informations commerciales par email');
      // Withdrawn and objected both re-import as "withdrawn"; a declared attribute left unset is empty.
      expect(byEmail.get('bob@example.com')).toMatchObject({
        city: '',
        vip: 'false',
        'consent:commercial-email:email': 'withdrawn',
        'consent:commercial-email:email:at': '2026-11-04T09:00:00.000Z',
        'consent:commercial-phone:phone': 'withdrawn',
        'consent:newsletter:email': '',
      });
      // A double opt-in still pending is a yes without a confirmation date.
      expect(byEmail.get('cat@example.com')).toMatchObject({
        firstName: '',
        'consent:newsletter:email': 'yes',
        'consent:newsletter:email:doi_at': '',
        'consent:commercial-email:email': '',
      });
      expect(byEmail.get('dan@example.com')).toMatchObject({
        'consent:newsletter:email': 'yes',
        'consent:newsletter:email:source': 'campaign',
        'consent:newsletter:email:doi_at': w.danConfirmedAt,
      });
    });

    it('quotes commas, quotes and line breaks, and keeps accents as UTF-8', async () => {
      const res = await get('/v1/exports/contacts');
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
      expect(res.body).toContain('"O\'Brien, ""Junior""\nSecond line"');
      expect(res.body).toContain(',"Boutique, Paris",');
      expect(res.body.split('\r\n')[0]).not.toContain('"');
      expect(res.rawPayload.includes(Buffer.from('Éloïse,', 'utf8'))).toBe(true);
      expect(res.rawPayload.includes(Buffer.from('Saint-Étienne', 'utf8'))).toBe(true);
      expect(res.body.endsWith('\r\n')).toBe(true);
      // Every line break outside a quoted field is CRLF.
      const ann = csvRows(res.body).find((r) => r.email === 'ann@example.com');
      expect(ann?.lastName).toBe(ANN_LAST_NAME);
    });

    it('streams JSON Lines with the same names, attributes typed', async () => {
      const csv = await get('/v1/exports/contacts?format=csv');
      const res = await get('/v1/exports/contacts?format=jsonl');
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
      const lines = jsonLines(res.body);
      expect(lines).toHaveLength(4);
      for (const line of lines) expect(Object.keys(line)).toEqual(csvHeader(csv.body));
      const ann = lines.find((l) => l.email === 'ann@example.com');
      expect(ann).toMatchObject({ points: 12, vip: true, lastName: ANN_LAST_NAME, 'consent:commercial-phone:phone': null });
    });

    it('restricts to a segment', async () => {
      const res = await get('/v1/exports/contacts?format=csv&segment=vips');
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-disposition']).toContain('assent-contacts-vips-');
      expect(csvRows(res.body).map((r) => r.email)).toEqual(['ann@example.com']);
    });
  });

  describe('GET /v1/exports/consents', () => {
    it('streams one row per consent state, erased contacts’ pseudonymous states included', async () => {
      const res = await get('/v1/exports/consents?format=csv');
      expect(res.statusCode).toBe(200);
      expect(csvHeader(res.body)).toEqual([
        'contactId',
        'email',
        'phone',
        'purpose',
        'channel',
        'status',
        'since',
        'expiresAt',
        'confirmed',
        'purposeVersion',
        'proofGrade',
        'lastEventId',
        'updatedAt',
      ]);
      const rows = csvRows(res.body);
      expect(rows).toHaveLength(await count('consent_states'));
      const keys = rows.map((r) => `${r.contactId}|${r.purpose}|${r.channel}`);
      expect(new Set(keys).size).toBe(rows.length);
      expect(rows.find((r) => r.contactId === w.goneId)).toMatchObject({ email: '', status: 'granted' });
      expect(rows.find((r) => r.contactId === w.bob.id && r.purpose === 'commercial-phone')).toMatchObject({
        status: 'objected',
        channel: 'phone',
      });
      expect(rows.find((r) => r.contactId === w.ann.id && r.purpose === 'newsletter')).toMatchObject({
        email: 'ann@example.com',
        status: 'granted',
        confirmed: 'true',
        since: w.annConfirmedAt,
        purposeVersion: '1',
      });

      const jsonl = jsonLines((await get('/v1/exports/consents?format=jsonl')).body);
      expect(jsonl).toHaveLength(rows.length);
      expect(jsonl.find((r) => r.contactId === w.dan.id)).toMatchObject({ status: 'granted', confirmed: true, purposeVersion: 2 });
    });

    it('restricts to a segment', async () => {
      const rows = csvRows((await get('/v1/exports/consents?segment=vips')).body);
      expect(new Set(rows.map((r) => r.contactId))).toEqual(new Set([w.ann.id]));
      expect(rows).toHaveLength(3);
    });
  });

  describe('GET /v1/exports/events', () => {
    it('streams every ledger event in chain order, with evidence digests and never a raw IP or user agent', async () => {
      const res = await get('/v1/exports/events?format=jsonl');
      expect(res.statusCode).toBe(200);
      const events = jsonLines(res.body);
      expect(events).toHaveLength(await count('consent_events'));
      const order = events.map((e) => [e.contactId as string, e.seq as number] as const);
      const sorted = [...order].sort((a, b) => (a[0] === b[0] ? a[1] - b[1] : a[0] < b[0] ? -1 : 1));
      expect(order).toEqual(sorted);
      for (const secret of [ANN_IP, ANN_UA, DAN_IP, DAN_UA, 'lightMyRequest', '127.0.0.1']) expect(res.body).not.toContain(secret);

      const annGrant = events.find((e) => e.contactId === w.ann.id && e.seq === 1) as Json & { evidence: Json };
      const stored = (await history(w.ann.id))[0] as Json;
      expect(annGrant).toMatchObject({
        id: stored.id,
        purpose: 'commercial-email',
        action: 'granted',
        sourceType: 'api',
        occurredAt: '2026-11-01T09:00:00.000Z',
        hash: stored.hash,
        prevHash: stored.prevHash,
      });
      expect(annGrant.evidenceHash).toMatch(/^[0-9a-f]{64}$/);
      expect(annGrant.evidence.erased).toEqual({
        ip: expect.stringMatching(/^[0-9a-f]{64}$/),
        userAgent: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
      expect(annGrant.evidence.text).toBe((stored.evidence as Json).text);

      const csv = await get('/v1/exports/events?format=csv');
      expect(csvHeader(csv.body)).toEqual(Object.keys(annGrant));
      expect(csvRows(csv.body)).toHaveLength(events.length);
      for (const secret of [ANN_IP, ANN_UA, DAN_IP, DAN_UA]) expect(csv.body).not.toContain(secret);
    });

    it('restricts to a segment', async () => {
      const events = jsonLines((await get('/v1/exports/events?format=jsonl&segment=vips')).body);
      expect(events.map((e) => e.id)).toEqual((await history(w.ann.id)).map((e) => e.id));
    });
  });

  describe('bad export requests', () => {
    it.each([
      ['an unknown kind', '/v1/exports/people', 400, 'validation_failed'],
      ['an unknown format', '/v1/exports/contacts?format=xlsx', 400, 'validation_failed'],
      ['a segment key that is not a key', '/v1/exports/contacts?segment=Not%20a%20key', 400, 'validation_failed'],
      ['an unknown parameter', '/v1/exports/events?limit=10', 400, 'validation_failed'],
      ['an unknown segment', '/v1/exports/consents?segment=nobody', 404, 'segment_not_found'],
    ])('answers %s with problem+json', async (_name, url, status, code) => {
      const res = await get(url);
      expect(res.statusCode, res.body).toBe(status);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json()).toMatchObject({ status, code });
    });

    it('needs an API key', async () => {
      const res = await t.call('GET', '/v1/exports/contacts', { key: null });
      expect(res.statusCode).toBe(401);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    });
  });

  describe('GET /v1/contacts/{id}/export', () => {
    it('holds every event with the wording it cites, deliveries, messages, states and suppressions', async () => {
      const res = await get(`/v1/contacts/${w.dan.id}/export`);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const body = res.json();
      const stored = await history(w.dan.id);

      expect(body.contact).toMatchObject({ id: w.dan.id, email: 'dan@example.com', phone: w.dan.phone, lastName: '<b>Durand</b>' });
      expect(body.attributes).toEqual([{ key: 'city', value: 'Lyon', type: 'string', purpose: 'commercial-email', retentionDays: 730 }]);

      expect(body.events.map((e: Json) => e.id)).toEqual(stored.map((e) => e.id));
      expect(body.events.length).toBeGreaterThanOrEqual(2);
      const [first, ...later] = body.events;
      expect(first).toMatchObject({
        action: 'granted',
        status: 'pending',
        purpose: 'newsletter',
        purposeVersion: 1,
        source: { type: 'form', ref: 'footer' },
        evidence: { ip: DAN_IP, userAgent: DAN_UA },
        wording: {
          language: 'fr',
          title: NEWSLETTER.title.fr,
          description: NEWSLETTER.description.fr,
          textShown: ((stored[0] as Json).evidence as Json).text,
        },
      });
      const byCampaign = later.find((e: Json) => (e.source as Json).type === 'campaign');
      expect(byCampaign).toMatchObject({
        action: 'renewed',
        status: 'granted',
        purposeVersion: 2,
        wording: { title: NEWSLETTER_V2_TITLE.fr },
      });
      for (const e of body.events) expect(e.wording.title).not.toBe('');

      expect(body.consents).toEqual([
        expect.objectContaining({ purpose: 'newsletter', channel: 'email', status: 'granted', confirmed: true }),
      ]);
      expect(body.purposes).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ key: 'newsletter', version: 2, legalBasis: 'consent', title: NEWSLETTER_V2_TITLE }),
        ]),
      );
      expect(body.deliveries).toEqual([
        expect.objectContaining({
          campaign: 'relance',
          campaignName: 'Relance lettre',
          channel: 'email',
          step: 1,
          sentAt: expect.any(String),
          clickedAt: '2026-11-07T09:00:00.000Z',
          confirmedAt: w.danConfirmedAt,
          unsubscribedAt: null,
        }),
      ]);
      expect(body.messages.map((m: Json) => m.kind).sort()).toEqual(['campaign', 'double_opt_in']);
      for (const m of body.messages)
        expect(Object.keys(m).sort()).toEqual(['channel', 'createdAt', 'id', 'kind', 'purpose', 'sentAt', 'status', 'template']);
      const suppression = (channel: string) => body.suppressions.find((s: Json) => s.channel === channel);
      expect(suppression('sms')).toMatchObject({ address: 'phone', suppressed: true, reasons: ['unsubscribed'] });
      expect(suppression('email')).toMatchObject({ address: 'email', suppressed: false, reasons: [] });
      expect(suppression('phone')).toMatchObject({ suppressed: false });
      // Read access is logged with ids, never the person's address.
      expect(t.logs.some((l) => l.includes('"access export"') && l.includes(w.dan.id))).toBe(true);
      expect(t.logs.join('\n')).not.toContain('dan@example.com');
    });

    it('renders the same as a page without script, in French or English', async () => {
      const res = await get(`/v1/contacts/${w.dan.id}/export?format=html`);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      const csp = String(res.headers['content-security-policy']);
      expect(csp).toContain("default-src 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).not.toContain('script-src');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body).not.toMatch(/<script|\son[a-z]+=/i);
      expect(res.body).toContain('<html lang="fr">');
      expect(res.body).toContain('Historique de vos choix');
      for (const e of await history(w.dan.id)) expect(res.body).toContain(`data-testid="event-${e.id}"`);
      expect(res.body).toContain(NEWSLETTER.title.fr);
      expect(res.body).toContain(NEWSLETTER_V2_TITLE.fr);
      expect(res.body).toContain('Relance lettre');
      expect(res.body).toContain('&lt;b&gt;Durand&lt;/b&gt;');
      expect(res.body).not.toContain('<b>Durand</b>');

      const en = await get(`/v1/contacts/${w.dan.id}/export?lang=en`, undefined, { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' });
      expect(en.statusCode).toBe(200);
      expect(en.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(en.body).toContain('<html lang="en">');
      expect(en.body).toContain('History of your choices');
      expect(en.body).toContain('granted');

      const json = await get(`/v1/contacts/${w.dan.id}/export`, undefined, { accept: 'application/json, text/html;q=0.5' });
      expect(json.headers['content-type']).toMatch(/^application\/json/);
    });

    it('answers 404 for an unknown contact and 410 for an erased one, as problem+json', async () => {
      const unknown = await get('/v1/contacts/01JAAAAAAAAAAAAAAAAAAAAAAA/export');
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json().code).toBe('contact_not_found');
      const erased = await get(`/v1/contacts/${w.goneId}/export?format=html`);
      expect(erased.statusCode).toBe(410);
      expect(erased.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(erased.json().code).toBe('contact_erased');
      expect((await get('/v1/contacts/not-an-id/export')).statusCode).toBe(400);
      expect((await get(`/v1/contacts/${w.dan.id}/export?format=pdf`)).statusCode).toBe(400);
    });
  });

  it('assent export writes a file (or standard output) and reports the rows', async () => {
    const env = { DATABASE_URL: t.database.url, ASSENT_SECRET: TEST_SECRET };
    const dir = mkdtempSync(join(tmpdir(), 'assent-export-'));
    try {
      const out = join(dir, 'vips.csv');
      const run = await runCli(['export', 'contacts', '--segment', 'vips', '--format', 'csv', '--out', out, '--json'], env);
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual({ kind: 'contacts', format: 'csv', segment: 'vips', rows: 1, out });
      expect(csvRows(readFileSync(out, 'utf8')).map((r) => r.email)).toEqual(['ann@example.com']);
      const stdout = await runCli(['export', 'events', '--format', 'jsonl'], env);
      expect(stdout.code, stdout.stderr).toBe(0);
      expect(jsonLines(stdout.stdout)).toHaveLength(await count('consent_events'));
      const bad = await runCli(['export', 'contacts', '--segment', 'nobody', '--out', join(dir, 'x.csv')], env);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('nobody');
      expect(existsSync(join(dir, 'x.csv'))).toBe(false);
      expect((await runCli(['export', 'people'], env)).code).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('streams 5,000 contacts page by page, reading ahead only as far as the reader asks', async () => {
    const big = await buildTestApp(dialect, { now: NOW });
    try {
      const now = big.clock.now().toISOString();
      const rows = Array.from({ length: 5_000 }, (_, i) => {
        const email = `p${i}@example.com`;
        const input = { email, firstName: `Prénom ${i}`, lastName: i % 7 === 0 ? 'Dupont, "dit" Jean' : 'Martin' };
        return newContactRow(big.ctx, big.ctx.newId(), input, { email }, now);
      });
      for (let i = 0; i < rows.length; i += 500) await insertContactRows(big.ctx.db.kysely, rows.slice(i, i + 500));
      const grants = rows
        .filter((_, i) => i % 2 === 0)
        .map((r) => ({ contactId: r.id, purpose: 'commercial-email', channel: 'email', action: 'grant' as const }));
      for (let i = 0; i < grants.length; i += 500) await recordConsents(big.ctx, cliRequest(), grants.slice(i, i + 500));

      const res = await big.call('GET', '/v1/exports/contacts?format=csv', { key: big.keys.read });
      expect(res.statusCode).toBe(200);
      const exported = csvRows(res.body);
      expect(exported).toHaveLength(5_000);
      const byEmail = new Map(exported.map((r) => [r.email, r]));
      rows.forEach((row, i) => {
        const line = byEmail.get(row.email as string);
        expect(line?.firstName).toBe(`Prénom ${i}`);
        expect(line?.lastName).toBe(row.last_name);
        expect(line?.['consent:commercial-email:email']).toBe(i % 2 === 0 ? 'yes' : '');
      });

      const opened = await openExport(big.ctx, { kind: 'contacts', format: 'jsonl' });
      const reader = opened.stream[Symbol.asyncIterator]();
      const first = await reader.next();
      expect(first.done).toBe(false);
      // One page read, perhaps the next one ahead: not the whole table.
      expect(opened.progress.pages).toBeLessThanOrEqual(2);
      let text = String(first.value);
      for (let next = await reader.next(); !next.done; next = await reader.next()) text += String(next.value);
      expect(jsonLines(text)).toHaveLength(5_000);
      expect(opened.progress).toEqual({ rows: 5_000, pages: 5 });

      const events = await big.call('GET', '/v1/exports/events?format=jsonl', { key: big.keys.read });
      expect(jsonLines(events.body)).toHaveLength(2_500);
      const states = await big.call('GET', '/v1/exports/consents?format=csv', { key: big.keys.read });
      expect(csvRows(states.body)).toHaveLength(2_500);
    } finally {
      await big.close();
    }
  }, 120_000);

  it('an export imported into an empty database reproduces the contacts and their consent states', async () => {
    const csv = (await get('/v1/exports/contacts?format=csv')).body;
    const exported = csvRows(csv);
    const target = await buildTestApp(dialect, { now: NOW });
    try {
      await configure(target);
      const patched = await target.call('PATCH', '/v1/purposes/newsletter', { body: { title: NEWSLETTER_V2_TITLE } });
      expect(patched.statusCode).toBe(200);
      const started = await target.call('POST', '/v1/imports', { body: csv, headers: { 'content-type': 'text/csv' } });
      expect(started.statusCode, started.body).toBe(202);
      let summary: Json = {};
      for (let i = 0; i < 600; i += 1) {
        summary = (await target.call('GET', `/v1/imports/${started.json().id}`)).json();
        if (summary.status !== 'running') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(summary).toMatchObject({ status: 'completed', read: exported.length, rejected: 0 });

      const contactCount = await target.ctx.db.kysely
        .selectFrom('contacts')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      expect(Number(contactCount.n)).toBe(exported.length);

      // Objections re-import as withdrawals, expired consents as nothing: the rest is as it was.
      const expected = (status: string) => (status === 'objected' ? 'withdrawn' : status === 'expired' ? 'none' : status);
      let compared = 0;
      for (const row of exported) {
        const before = (await t.call('GET', `/v1/contacts?email=${encodeURIComponent(row.email as string)}`)).json().items[0];
        const after = (await target.call('GET', `/v1/contacts?email=${encodeURIComponent(row.email as string)}`)).json().items[0];
        expect(after, row.email).toBeDefined();
        for (const field of [...profileColumns, 'attributes'] as const)
          expect(after[field], `${row.email} ${field}`).toEqual(before[field]);
        const statesBefore = (await t.call('GET', `/v1/contacts/${before.id}/consents`)).json().items as Json[];
        const statesAfter = new Map(
          ((await target.call('GET', `/v1/contacts/${after.id}/consents`)).json().items as Json[]).map((s) => [
            `${s.purpose}:${s.channel}`,
            s,
          ]),
        );
        for (const state of statesBefore) {
          const now = statesAfter.get(`${state.purpose}:${state.channel}`);
          const status = expected(state.status as string);
          expect(now?.status ?? 'none', `${row.email} ${state.purpose}:${state.channel}`).toBe(status);
          if (status === 'none') continue;
          expect(now?.since, `${row.email} ${state.purpose}:${state.channel} since`).toBe(state.since);
          compared += 1;
        }
      }
      // ann 3, bob 2, cat 1 (pending), dan 1: every state that is not "none" was compared.
      expect(compared).toBe(7);
    } finally {
      await target.close();
    }
  }, 120_000);
});

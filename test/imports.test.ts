// Importing a CRM export: the 10,000-row French sample (test/fixtures/make-crm-sample.ts) with its
// exact counts, rejects, dry run, re-run, dates, sources and proof grades; the API and the CLI;
// duplicates, double opt-in and suppressions; and bad files refused whole — on every store.
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rebuildState } from '../src/modules/consents/index.ts';
import { type ImportOptions, type ImportSummary, importContactsFile } from '../src/modules/imports/index.ts';
import { cliRequest } from '../src/platform/context.ts';
import { DomainError } from '../src/platform/errors.ts';
import {
  collectedAt,
  emailOf,
  firstName,
  hasPhone,
  makeCrmSample,
  newsletterOf,
  phoneOf,
  rowKind,
  WORDING,
} from './fixtures/make-crm-sample.ts';
import { buildTestApp, TEST_SECRET, type TestApp } from './helpers/build-app.ts';
import { runCli } from './helpers/cli.ts';
import { dialects } from './helpers/dialects.ts';
import { record, rowCounts } from './helpers/factories.ts';

const NOW = '2026-11-22T10:00:00.000Z';
const EXAMPLE = join(import.meta.dirname, '..', 'examples', 'crm-export-fr.csv');

const dir = mkdtempSync(join(tmpdir(), 'assent-imports-'));
const SAMPLE = join(dir, 'crm-10k.csv');
writeFileSync(SAMPLE, makeCrmSample(10_000));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
function fileWith(content: string | Buffer): string {
  fileNo += 1;
  const path = join(dir, `file-${fileNo}.csv`);
  writeFileSync(path, content);
  return path;
}

/** Everything an import could touch: a refused file must leave all of it as it was. */
async function allCounts(t: TestApp): Promise<Record<string, number> & { imports: number; import_rejects: number }> {
  const counts: Record<string, number> & { imports: number; import_rejects: number } = {
    ...(await rowCounts(t)),
    imports: 0,
    import_rejects: 0,
  };
  for (const table of ['imports', 'import_rejects', 'webhook_deliveries'] as const) {
    const row = await t.ctx.db.kysely
      .selectFrom(table)
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    counts[table] = Number(row.n);
  }
  return counts;
}

const importFile = (t: TestApp, path: string, options: ImportOptions = {}) => importContactsFile(t.ctx, cliRequest(), path, options);

async function refusal(work: Promise<unknown>): Promise<DomainError> {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DomainError);
  return error as DomainError;
}

const counts = (s: ImportSummary) => ({
  status: s.status,
  read: s.read,
  written: s.written,
  updated: s.updated,
  rejected: s.rejected,
  skipped: s.skipped,
  consents: s.consents,
});

async function setUpCatalogue(t: TestApp): Promise<void> {
  const purpose = await t.call('POST', '/v1/purposes', {
    body: { key: 'newsletter', title: { fr: 'Lettre d’information' }, channels: ['email'] },
  });
  expect(purpose.statusCode).toBe(201);
  for (const [key, type] of [
    ['ville', 'string'],
    ['points', 'number'],
  ]) {
    const field = await t.call('POST', '/v1/fields', { body: { key, type, purpose: 'commercial-email', retentionDays: 730 } });
    expect(field.statusCode).toBe(201);
  }
}

async function contactByEmail(t: TestApp, email: string) {
  const res = await t.call('GET', `/v1/contacts?email=${encodeURIComponent(email)}`);
  expect(res.statusCode).toBe(200);
  return (res.json() as { items: Array<Record<string, unknown> & { id: string }> }).items[0];
}

async function historyOf(t: TestApp, id: string) {
  return (await t.call('GET', `/v1/contacts/${id}/consents/history`)).json() as {
    items: Array<{
      purpose: string;
      channel: string;
      action: string;
      status: string;
      occurredAt: string;
      source: { type: string; ref: string };
      evidence: Record<string, unknown>;
    }>;
  };
}

async function statesOf(t: TestApp, id: string) {
  const res = await t.call('GET', `/v1/contacts/${id}/consents`);
  return (
    res.json() as { items: Array<{ purpose: string; channel: string; status: string; proofGrade: string | null; since: string | null }> }
  ).items;
}

async function waitFor(t: TestApp, id: string): Promise<ImportSummary> {
  for (let i = 0; i < 600; i += 1) {
    const res = await t.call('GET', `/v1/imports/${id}`, { key: t.keys.read });
    expect(res.statusCode).toBe(200);
    const summary = res.json() as ImportSummary;
    if (summary.status !== 'running') return summary;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`import ${id} still running`);
}

/**
 * The sample's counts, derived from its rules (see the fixture's header) over 100 slots × 100
 * blocks, here with two contacts already in the base (rows 10 and 20, the latter with a newsletter
 * consent) and the emails of rows 100 and 200 suppressed:
 * - rejected: slots 7, 23, 41, 77 → 4 × 100 = 400;
 * - updated: slot 59 (100) + slot 88 (100) + slot 95 from row 995 on (91) + rows 10 and 20 = 293;
 * - written: 10,000 − 400 − 293 = 9,307; skipped 0;
 * - newsletter consents: slots with a value (90 with i%10 ≤ 8, plus 19, 39, 59, 79, 99) minus
 *   7, 23, 41, 77, 59, 88 and 95 → 88 × 100, plus the 9 rows of slot 95 before row 990 = 8,809;
 *   minus rows 100 and 200 (suppressed) and 20 (state kept) = 8,806;
 * - SMS consents: slots s%4 = 0 with a phone (s%3 ≠ 0): 16, minus 88 → 15 × 100 = 1,500;
 * - consents = 10,306. Grades: strong 29 × 100 − 3 = 2,897; fair 2,809 (yes) + 900 (no) + 400
 *   (withdrawn) = 4,109; weak 1,800 (newsletter, slots 6 and 7 but 7 and 77) + 1,500 (SMS) = 3,300.
 */
const EXPECTED = { status: 'completed', read: 10_000, written: 9_307, updated: 293, rejected: 400, skipped: 0, consents: 10_306 };

/** The same numbers, tallied from the fixture's own rules: guards the fixture against drift. */
function tally(rows: number) {
  const out = { rejected: 0, duplicates: 0, newsletter: 0, sms: 0, weakNewsletter: [] as number[] };
  for (let i = 0; i < rows; i += 1) {
    const kind = rowKind(i);
    if (kind === 'rejected') out.rejected += 1;
    else if (kind === 'duplicate') out.duplicates += 1;
    else {
      const news = newsletterOf(i);
      if (news) out.newsletter += 1;
      if (news?.grade === 'weak') out.weakNewsletter.push(i);
      if (hasPhone(i) && i % 4 === 0) out.sms += 1;
    }
  }
  return out;
}

describe.each(dialects)('imports on %s', (dialect) => {
  describe('the 10,000-row French CRM sample', () => {
    let t: TestApp;
    let first: ImportSummary;
    const map = { 'Points fidélité': 'points' };

    beforeAll(async () => {
      t = await buildTestApp(dialect, { now: NOW });
      await setUpCatalogue(t);
      // Row 10's person is a contact already (no phone yet); row 20's too, with a newsletter consent.
      expect((await t.call('POST', '/v1/contacts', { body: { email: emailOf(10), firstName: 'Ancienne' } })).statusCode).toBe(201);
      const twenty = await t.call('POST', '/v1/contacts', { body: { email: emailOf(20) } });
      await record(t, { contactId: twenty.json().id, purpose: 'newsletter', channel: 'email', action: 'grant' });
      for (const i of [100, 200]) {
        const res = await t.call('POST', '/v1/suppressions', { body: { channel: 'email', email: emailOf(i), reason: 'unsubscribed' } });
        expect(res.statusCode).toBe(201);
      }
      const hook = await t.call('POST', '/v1/webhooks', { body: { url: 'https://crm.example.com/assent', events: ['import.completed'] } });
      expect(hook.statusCode).toBe(201);
    });
    afterAll(async () => t.close());

    it('follows from the fixture’s rules', () => {
      const n = tally(10_000);
      expect(n.rejected).toBe(EXPECTED.rejected);
      expect(n.duplicates + 2).toBe(EXPECTED.updated);
      expect(n.newsletter - 3 + n.sms).toBe(EXPECTED.consents);
      expect(n.weakNewsletter.length).toBe(1_800);
    });

    it('refuses the file whole while a column maps to nothing, naming it', async () => {
      const before = await allCounts(t);
      const error = await refusal(importFile(t, SAMPLE));
      expect(error.code).toBe('import_columns_invalid');
      expect(error.message).toContain('"Points fidélité"');
      expect(error.message).toContain('--ignore-unknown');
      expect(await allCounts(t)).toEqual(before);
    });

    it('a dry run counts exactly what the import will do and writes nothing but its report', async () => {
      const before = await allCounts(t);
      const dry = await importFile(t, SAMPLE, { map, dryRun: true });
      expect(counts(dry)).toEqual(EXPECTED);
      expect(dry.dryRun).toBe(true);
      const after = await allCounts(t);
      expect(after).toEqual({ ...before, imports: before.imports + 1, import_rejects: before.import_rejects + 400 });
    });

    it('imports with the exact expected counts, graded, and announces it', async () => {
      first = await importFile(t, SAMPLE, { map });
      expect(counts(first)).toEqual(EXPECTED);
      expect(first.report).toMatchObject({
        rows: 10_000,
        encoding: 'windows-1252',
        delimiter: ';',
        events: 10_306,
        grades: { strong: 2_897, fair: 4_109, weak: 3_300 },
        consentsSuppressed: 2,
        consentsKept: 1,
      });
      expect(first.report?.warnings.join(' ')).toContain('unknown purpose "partenaires"');
      const all = await rowCounts(t);
      expect(all.contacts).toBe(9_307 + 2);
      expect(all.consent_events).toBe(10_306 + 1);

      const deliveries = await t.ctx.db.kysely
        .selectFrom('webhook_deliveries')
        .selectAll()
        .where('event_type', '=', 'import.completed')
        .execute();
      expect(deliveries).toHaveLength(1);
      expect(JSON.parse(deliveries[0]?.payload as string).data).toMatchObject({
        importId: first.id,
        counts: { read: 10_000, written: 9_307, rejected: 400, consents: 10_306 },
      });
    });

    it('GET /v1/imports/{id} gives the summary; the rejects CSV names every bad row', async () => {
      const res = await t.call('GET', `/v1/imports/${first.id}`, { key: t.keys.read });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ ...EXPECTED, id: first.id, progress: { rows: 10_000, percent: 100 } });

      const csv = await t.call('GET', `/v1/imports/${first.id}/rejects.csv`, { key: t.keys.read });
      expect(csv.statusCode).toBe(200);
      expect(csv.headers['content-type']).toContain('text/csv');
      const lines = csv.body.trimEnd().split('\r\n');
      expect(lines[0]).toBe('line,column,reason');
      expect(lines).toHaveLength(401);
      const expected: string[] = [];
      for (let k = 0; k < 100; k += 1) {
        expected.push(
          `${100 * k + 9},Courriel`,
          `${100 * k + 25},consent:newsletter:email:at`,
          `${100 * k + 43},consent:partenaires:email`,
          `${100 * k + 79},Téléphone`,
        );
      }
      expect(lines.slice(1).map((l) => l.split(',').slice(0, 2).join(','))).toEqual(expected);
      expect(lines[1]).toBe('9,Courriel,is not a valid email address');
      expect(lines[2]).toContain('is not a date');
      expect(lines[3]).toContain('unknown purpose ""partenaires""');
      expect(lines[4]).toContain('is not a valid phone number');
    });

    it('imported consents carry their original date, the import as source and their grade', async () => {
      const expectations: Array<{ row: number; purpose: string; channel: string; status: string; grade: string; at: string }> = [
        { row: 0, purpose: 'newsletter', channel: 'email', status: 'granted', grade: 'strong', at: collectedAt(0) },
        { row: 3, purpose: 'newsletter', channel: 'email', status: 'granted', grade: 'fair', at: collectedAt(3) },
        { row: 6, purpose: 'newsletter', channel: 'email', status: 'granted', grade: 'weak', at: NOW },
        { row: 8, purpose: 'newsletter', channel: 'email', status: 'refused', grade: 'fair', at: collectedAt(8) },
        { row: 19, purpose: 'newsletter', channel: 'email', status: 'withdrawn', grade: 'fair', at: collectedAt(19) },
        { row: 4, purpose: 'commercial-sms', channel: 'sms', status: 'granted', grade: 'weak', at: collectedAt(7) },
      ];
      for (const e of expectations) {
        const contact = await contactByEmail(t, emailOf(e.row));
        const event = (await historyOf(t, contact?.id as string)).items.find((i) => i.purpose === e.purpose);
        expect(event, `row ${e.row}`).toMatchObject({
          channel: e.channel,
          status: e.status,
          occurredAt: e.at,
          source: { type: 'import', ref: first.id },
          evidence: { method: 'import', proofGrade: e.grade, importLine: e.row + 2 },
        });
        const state = (await statesOf(t, contact?.id as string)).find((s) => s.purpose === e.purpose && s.channel === e.channel);
        expect(state, `row ${e.row}`).toMatchObject({ status: e.status, proofGrade: e.grade, since: e.at });
      }
      const strong = (await historyOf(t, (await contactByEmail(t, emailOf(0)))?.id as string)).items[0];
      expect(strong?.evidence).toMatchObject({ ip: '192.0.2.0', text: WORDING, collectedThrough: 'Formulaire double opt-in' });
      expect(strong?.evidence.doubleOptInAt).toBe(new Date(new Date(collectedAt(0)).getTime() + 86_400_000 + 12 * 60_000).toISOString());
      const kept = await contactByEmail(t, emailOf(12));
      expect(kept).toMatchObject({
        firstName: firstName(12),
        lastName: expect.any(String),
        kind: 'person',
        attributes: { ville: expect.any(String) },
      });
    });

    it('a segment on weak email consent returns exactly the weak ones', async () => {
      const created = await t.call('POST', '/v1/segments', {
        body: {
          key: 'weak-newsletter',
          name: 'Newsletter: weak proof',
          filter: { consent: { purpose: 'newsletter', channel: 'email', proofGrade: ['weak'] } },
        },
      });
      expect(created.statusCode).toBe(201);
      expect((await t.call('GET', '/v1/segments/weak-newsletter/count')).json()).toEqual({ count: 1_800 });
      const emails: string[] = [];
      let cursor: string | null = null;
      do {
        const page = (
          await t.call('GET', `/v1/segments/weak-newsletter/contacts?limit=500${cursor ? `&cursor=${cursor}` : ''}`)
        ).json() as {
          items: Array<{ email: string }>;
          nextCursor: string | null;
        };
        emails.push(...page.items.map((c) => c.email));
        cursor = page.nextCursor;
      } while (cursor);
      expect(emails.sort()).toEqual(tally(10_000).weakNewsletter.map(emailOf).sort());
    });

    it('the ledger verifies, and a replay leaves every state as it is', async () => {
      const verify = await t.call('GET', '/v1/ledger/verify');
      expect(verify.json()).toMatchObject({ ok: true, events: 10_307 });
      const read = async () =>
        (
          await t.ctx.db.kysely
            .selectFrom('consent_states')
            .select([
              'contact_id',
              'purpose_key',
              'channel_key',
              'status',
              'since',
              'expires_at',
              'confirmed',
              'last_event_id',
              'proof_grade',
            ])
            .orderBy('contact_id')
            .orderBy('purpose_key')
            .orderBy('channel_key')
            .execute()
        ).map((s) => ({ ...s, confirmed: Number(s.confirmed) }));
      const before = await read();
      await rebuildState(t.ctx);
      expect(await read()).toEqual(before);
    });

    it('fills the empty fields of duplicates in the file, across batches, by phone and in the base', async () => {
      expect(await contactByEmail(t, emailOf(9))).toMatchObject({ firstName: firstName(9) });
      expect(await contactByEmail(t, emailOf(38))).toMatchObject({ firstName: firstName(38), phone: phoneOf(38) });
      expect(await contactByEmail(t, emailOf(5))).toMatchObject({ attributes: { ville: 'Lyon' } });
      expect(await contactByEmail(t, emailOf(9105))).toMatchObject({ attributes: {} });
      const ten = await contactByEmail(t, emailOf(10));
      expect(ten).toMatchObject({ firstName: 'Ancienne', phone: phoneOf(10), lastName: expect.any(String) });
      expect((await statesOf(t, ten?.id as string)).find((s) => s.purpose === 'newsletter')).toMatchObject({ proofGrade: 'strong' });
      // Row 20's consent was known: kept, with no grade (it is Assent's own proof).
      const twenty = await contactByEmail(t, emailOf(20));
      const events = (await historyOf(t, twenty?.id as string)).items;
      expect(events.filter((e) => e.purpose === 'newsletter').map((e) => e.source.type)).toEqual(['api']);
      expect(events.filter((e) => e.purpose === 'commercial-sms').map((e) => e.source.type)).toEqual(['import']);
    });

    it('never gives a consent to a suppressed address, and still imports the person', async () => {
      for (const i of [100, 200]) {
        const contact = await contactByEmail(t, emailOf(i));
        expect(contact).toMatchObject({ firstName: firstName(i) });
        expect((await historyOf(t, contact?.id as string)).items).toEqual([]);
      }
    });

    it('a re-run of the same file is a no-op; forced, it changes nothing either', async () => {
      const before = await allCounts(t);
      const again = await importFile(t, SAMPLE, { map });
      expect(again).toMatchObject({ status: 'completed', alreadyImported: first.id, read: 0, written: 0, updated: 0, consents: 0 });
      expect(await allCounts(t)).toEqual({ ...before, imports: before.imports + 1 });

      const forced = await importFile(t, SAMPLE, { map, force: true });
      expect(counts(forced)).toEqual({
        status: 'completed',
        read: 10_000,
        written: 0,
        updated: 0,
        rejected: 400,
        skipped: 9_600,
        consents: 0,
      });
      const after = await allCounts(t);
      expect({ ...after, imports: 0, import_rejects: 0, webhook_deliveries: 0 }).toEqual({
        ...before,
        imports: 0,
        import_rejects: 0,
        webhook_deliveries: 0,
      });
    });
  });

  describe('POST /v1/imports', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await buildTestApp(dialect, { now: NOW });
      await setUpCatalogue(t);
    });
    afterAll(async () => t.close());

    it('answers 202 with the id, imports in the background, and serves the rejects', async () => {
      const body = makeCrmSample(1_000);
      const upload = (key: string) =>
        t.app.inject({
          method: 'POST',
          url: '/v1/imports?map=Points%20fid%C3%A9lit%C3%A9%3Dpoints',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'text/csv' },
          payload: body,
        });
      const res = await upload(t.keys.write);
      expect(res.statusCode).toBe(202);
      const { id } = res.json() as { id: string };
      expect(res.headers.location).toBe(`/v1/imports/${id}`);
      const summary = await waitFor(t, id);
      // 1,000 rows: 4 × 10 rejected; 10 + 10 + 1 (row 995) updated; newsletter 88 × 10 + 9, SMS 15 × 10.
      expect(counts(summary)).toEqual({
        status: 'completed',
        read: 1_000,
        written: 939,
        updated: 21,
        rejected: 40,
        skipped: 0,
        consents: 1_039,
      });
      const csv = await t.call('GET', `/v1/imports/${id}/rejects.csv`, { key: t.keys.read });
      expect(csv.body.trimEnd().split('\r\n')).toHaveLength(41);

      const again = await upload(t.keys.write);
      expect(again.statusCode).toBe(202);
      expect(await waitFor(t, again.json().id)).toMatchObject({ alreadyImported: id, written: 0, consents: 0 });
    });

    it('takes the upload over a real connection, and refuses a file over a real connection', async () => {
      const address = await t.app.listen({ port: 0, host: '127.0.0.1' });
      const post = (body: Uint8Array) =>
        fetch(`${address}/v1/imports?ignoreUnknown=true`, {
          method: 'POST',
          headers: { authorization: `Bearer ${t.keys.write}`, 'content-type': 'text/csv; charset=windows-1252' },
          body: new Uint8Array(body),
        });
      const ok = await post(Buffer.from('Courriel;Prénom\r\nreal@exemple.fr;Zoé\r\n', 'latin1'));
      expect(ok.status).toBe(202);
      expect(await waitFor(t, ((await ok.json()) as { id: string }).id)).toMatchObject({ status: 'completed', written: 1 });
      expect(await contactByEmail(t, 'real@exemple.fr')).toMatchObject({ firstName: 'Zoé' });
      const refused = await post(Buffer.from([0x41, 0, 0x42]));
      expect(refused.status).toBe(422);
      expect(((await refused.json()) as { detail: string }).detail).toMatch(/NUL bytes/);
    });

    it('a dry run by query string writes nothing', async () => {
      const before = await allCounts(t);
      const res = await t.call('POST', '/v1/imports?dryRun=true&ignoreUnknown=true', {
        body: 'email;firstName\r\nnew.person@exemple.fr;Lou\r\n',
        headers: { 'content-type': 'text/csv' },
      });
      expect(res.statusCode).toBe(202);
      expect(counts(await waitFor(t, res.json().id))).toEqual({
        status: 'completed',
        read: 1,
        written: 1,
        updated: 0,
        rejected: 0,
        skipped: 0,
        consents: 0,
      });
      expect(await allCounts(t)).toEqual({ ...before, imports: before.imports + 1 });
    });

    it('needs a write key, a CSV body and known options', async () => {
      expect(
        (await t.call('POST', '/v1/imports', { body: 'email\na@b.fr\n', headers: { 'content-type': 'text/csv' }, key: t.keys.read }))
          .statusCode,
      ).toBe(403);
      expect((await t.call('POST', '/v1/imports', { body: { email: 'a@b.fr' } })).statusCode).toBe(415);
      const bad = await t.call('POST', '/v1/imports?onDuplicate=replace', {
        body: 'email\na@b.fr\n',
        headers: { 'content-type': 'text/csv' },
      });
      expect(bad.statusCode).toBe(400);
      expect((await t.call('GET', '/v1/imports/01ARZ3NDEKTSV4RRFFQ69G5FAV')).statusCode).toBe(404);
    });
  });

  describe('bad input: a clear error and nothing written', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await buildTestApp(dialect, { now: NOW });
      await setUpCatalogue(t);
    });
    afterAll(async () => t.close());

    const cases: Array<[string, () => Buffer | string, RegExp]> = [
      [
        'a binary file',
        () => Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52]),
        /NUL bytes|binary/,
      ],
      ['an .xlsx workbook', () => Buffer.from('PK\u0003\u0004\u0014\u0000\u0006\u0000', 'latin1'), /ZIP archive/],
      ['an empty file', () => '', /empty/],
      ['a file of blank lines', () => '\r\n\r\n  \r\n', /empty/],
      ['a header-only file', () => 'Courriel;Prénom\r\n', /header but no rows/],
      [
        'UTF-16 (Excel’s Unicode text)',
        () => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('email\tname\r\na@b.fr\tA\r\n', 'utf16le')]),
        /UTF-16/,
      ],
      [
        'neither UTF-8 nor Windows-1252',
        () => Buffer.from([...Buffer.from('email;nom\r\nx@exemple.fr;'), 0x81, 0x8d, 0x0d, 0x0a]),
        /neither UTF-8 nor Windows-1252 \(line 2/,
      ],
      ['a quote that never closes', () => 'email;nom\r\na@exemple.fr;"Dupont\r\nb@exemple.fr;Martin\r\n', /never closes/],
      ['a control character', () => 'email;nom\r\na@exemple.fr;Du\u0007pont\r\n', /control character/],
    ];
    for (const [name, content, message] of cases) {
      it(`refuses ${name}`, async () => {
        const before = await allCounts(t);
        const error = await refusal(importFile(t, fileWith(content())));
        expect(error.code).toBe('import_file_invalid');
        expect(error.message).toMatch(message);
        expect(await allCounts(t)).toEqual(before);
      });
    }

    it('refuses a Windows-1252 file said to be UTF-8, naming the line', async () => {
      const before = await allCounts(t);
      const latin = Buffer.concat([
        Buffer.from('email;nom\r\na@exemple.fr;Dupont\r\nb@exemple.fr;L'),
        Buffer.from([0xe9]),
        Buffer.from('a\r\n'),
      ]);
      const error = await refusal(importFile(t, fileWith(latin), { encoding: 'utf-8' }));
      expect(error.message).toMatch(/not valid UTF-8 \(line 3\).*windows-1252/);
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/imports',
        headers: { authorization: `Bearer ${t.keys.admin}`, 'content-type': 'text/csv; charset=utf-8' },
        payload: latin,
      });
      expect(res.statusCode).toBe(422);
      expect(res.json()).toMatchObject({ code: 'import_file_invalid' });
      expect(await allCounts(t)).toEqual(before);
    });

    it('refuses a 200 MB line, on the API while it streams and from a file', async () => {
      const before = await allCounts(t);
      const chunk = Buffer.alloc(1 << 20, 'a');
      let sent = 0;
      const stream = Readable.from(
        (function* () {
          yield Buffer.from('email;nom\r\nx@exemple.fr;');
          for (; sent < 200; sent += 1) yield chunk;
        })(),
      );
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/imports',
        headers: { authorization: `Bearer ${t.keys.admin}`, 'content-type': 'text/csv' },
        payload: stream,
      });
      expect(res.statusCode).toBe(422);
      expect(res.json().detail).toMatch(/Line 2 is longer than 1 MiB/);
      expect(sent).toBeLessThan(50);

      const path = join(dir, 'long-line.csv');
      const out = createWriteStream(path);
      out.write('email;nom\r\nx@exemple.fr;');
      for (let i = 0; i < 200; i += 1) if (!out.write(chunk)) await once(out, 'drain');
      out.end('\r\n');
      await once(out, 'close');
      const error = await refusal(importFile(t, path));
      expect(error.message).toMatch(/Line 2 is longer than 1 MiB/);
      rmSync(path);
      expect(await allCounts(t)).toEqual(before);
    });

    it('refuses unknown columns, two columns for one field, and a file with no address column', async () => {
      const before = await allCounts(t);
      const unknown = await refusal(importFile(t, fileWith('Courriel;Couleur préférée\r\na@exemple.fr;bleu\r\n')));
      expect(unknown.message).toMatch(/unknown column "Couleur préférée".*--map "Couleur préférée=<field>".*--ignore-unknown/);
      const twice = await refusal(importFile(t, fileWith('Courriel;E-mail\r\na@exemple.fr;a@exemple.fr\r\n')));
      expect(twice.message).toMatch(/"Courriel" and "E-mail" both fill email/);
      const none = await refusal(importFile(t, fileWith('Prénom;Nom\r\nLou;Martin\r\n')));
      expect(none.message).toMatch(/no column holds an email or a phone/);
      const badMap = await refusal(importFile(t, fileWith('Courriel\r\na@exemple.fr\r\n'), { map: { Mél: 'email' } }));
      expect(badMap.message).toMatch(/there is no column "Mél"/);
      expect(await allCounts(t)).toEqual(before);
    });
  });

  describe('reading files and rows', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await buildTestApp(dialect, { now: NOW });
      await setUpCatalogue(t);
      const doi = await t.call('POST', '/v1/purposes', {
        body: { key: 'offres', title: { fr: 'Offres' }, channels: ['email'], doubleOptIn: true },
      });
      expect(doi.statusCode).toBe(201);
    });
    afterAll(async () => t.close());

    it('reads UTF-8 with a BOM, commas, quoted line breaks, and counts lines as the file does', async () => {
      const csv =
        '\ufeffE-mail,Prénom,Nom,Ville\n' +
        'zoe@exemple.fr,Zoé,"Dupont\nde la Tour",Orléans\n' +
        '\n' +
        'pas-un-email,Léa,Martin,Nîmes\n' +
        'leo@exemple.fr,"Léo ""le grand""",Petit,Sète\n' +
        'tom@exemple.fr,Tom,Durand\n';
      const summary = await importFile(t, fileWith(csv));
      expect(counts(summary)).toEqual({ status: 'completed', read: 4, written: 2, updated: 0, rejected: 2, skipped: 0, consents: 0 });
      expect(summary.report).toMatchObject({ encoding: 'utf-8', delimiter: ',' });
      expect(await contactByEmail(t, 'zoe@exemple.fr')).toMatchObject({
        firstName: 'Zoé',
        lastName: 'Dupont\nde la Tour',
        attributes: { ville: 'Orléans' },
      });
      expect(await contactByEmail(t, 'leo@exemple.fr')).toMatchObject({ firstName: 'Léo "le grand"' });
      const csvOut = (await t.call('GET', `/v1/imports/${summary.id}/rejects.csv`)).body.trimEnd().split('\r\n');
      expect(csvOut.slice(1)).toEqual([
        '5,E-mail,is not a valid email address',
        '7,,has 3 fields where the header has 4: a delimiter is missing or a quote is misplaced',
      ]);
    });

    it('reads tab-separated files and maps columns with --map, ignoring what it is told to', async () => {
      const tsv = 'Adresse\tMobile\tNotes\tOpt-in\tDate opt-in\r\nana@exemple.fr\t06 12 00 00 03\tà rappeler\toui\t15/03/2021 14:30\r\n';
      const summary = await importFile(t, fileWith(tsv), {
        map: { Adresse: 'email', Notes: '-', 'Opt-in': 'consent:newsletter:email', 'Date opt-in': 'consent:newsletter:email:at' },
      });
      expect(counts(summary)).toMatchObject({ written: 1, consents: 1, rejected: 0 });
      expect(summary.report?.ignored).toEqual(['Notes']);
      const ana = await contactByEmail(t, 'ana@exemple.fr');
      expect(ana).toMatchObject({ phone: '+33612000003' });
      expect((await historyOf(t, ana?.id as string)).items[0]).toMatchObject({
        occurredAt: '2021-03-15T14:30:00.000Z',
        evidence: { proofGrade: 'weak' },
      });
    });

    it('a strong yes on a double opt-in purpose is granted then confirmed; without its date it stays pending', async () => {
      const csv =
        'email;consent:offres:email;consent:offres:email:at;consent:offres:email:ip;consent:offres:email:wording;consent:offres:email:doi_at\r\n' +
        'fort@exemple.fr;oui;2022-05-01T10:00:00Z;203.0.113.9;Je veux les offres;2022-05-01T10:20:00Z\r\n' +
        'moyen@exemple.fr;oui;2022-05-01T10:00:00Z;;;\r\n';
      const summary = await importFile(t, fileWith(csv));
      expect(summary).toMatchObject({ written: 2, consents: 2, report: { events: 3, grades: { strong: 1, weak: 1 } } });
      const strong = await contactByEmail(t, 'fort@exemple.fr');
      expect((await historyOf(t, strong?.id as string)).items.map((e) => [e.action, e.status, e.occurredAt])).toEqual([
        ['granted', 'pending', '2022-05-01T10:00:00.000Z'],
        ['confirmed', 'granted', '2022-05-01T10:20:00.000Z'],
      ]);
      expect((await statesOf(t, strong?.id as string)).find((s) => s.purpose === 'offres')).toMatchObject({
        status: 'granted',
        proofGrade: 'strong',
      });
      const fair = await contactByEmail(t, 'moyen@exemple.fr');
      expect((await statesOf(t, fair?.id as string)).find((s) => s.purpose === 'offres')).toMatchObject({
        status: 'pending',
        proofGrade: 'weak',
      });
      expect((await t.call('GET', '/v1/ledger/verify')).json()).toMatchObject({ ok: true });
    });

    it('records a later, dated no over an existing yes, but never a yes over a known state', async () => {
      await importFile(
        t,
        fileWith(
          'email;consent:newsletter:email;consent:newsletter:email:at\r\nclaire@exemple.fr;oui;2021-01-01\r\nmarc@exemple.fr;non;2021-01-01\r\n',
        ),
      );
      const later = await importFile(
        t,
        fileWith(
          'email;consent:newsletter:email;consent:newsletter:email:at\r\nclaire@exemple.fr;non;2022-01-01\r\nmarc@exemple.fr;oui;2022-01-01\r\n',
        ),
      );
      expect(counts(later)).toMatchObject({ updated: 1, skipped: 1, consents: 1 });
      expect(later.report?.consentsKept).toBe(1);
      const claire = await contactByEmail(t, 'claire@exemple.fr');
      expect((await statesOf(t, claire?.id as string)).find((s) => s.purpose === 'newsletter')).toMatchObject({
        status: 'refused',
        since: '2022-01-01T00:00:00.000Z',
      });
      const marc = await contactByEmail(t, 'marc@exemple.fr');
      expect((await statesOf(t, marc?.id as string)).find((s) => s.purpose === 'newsletter')).toMatchObject({ status: 'refused' });
    });

    it('--on-duplicate skip leaves existing contacts untouched; a phone of another contact is rejected', async () => {
      await importFile(t, fileWith('email;phone\r\npaul@exemple.fr;0612000006\r\nrose@exemple.fr;\r\n'));
      const skip = await importFile(
        t,
        fileWith('email;Prénom;phone\r\npaul@exemple.fr;Paul;\r\nrose@exemple.fr;Rose;\r\nnina@exemple.fr;Nina;\r\n'),
        {
          onDuplicate: 'skip',
        },
      );
      expect(counts(skip)).toMatchObject({ written: 1, updated: 0, skipped: 2 });
      expect(await contactByEmail(t, 'paul@exemple.fr')).toMatchObject({ firstName: null });
      const clash = await importFile(t, fileWith('email;phone\r\nrose@exemple.fr;06 12 00 00 06\r\n'));
      expect(counts(clash)).toMatchObject({ rejected: 1 });
      const reason = (await t.call('GET', `/v1/imports/${clash.id}/rejects.csv`)).body;
      expect(reason).toContain('2,phone,belongs to another contact than the email of this row');
    });

    it('never records a consent given for one address against another the contact holds', async () => {
      await importFile(t, fileWith('email;phone\r\nhugo@exemple.fr;0612000012\r\n'));
      const csv = 'email;phone;consent:commercial-sms:sms;Ville\r\nhugo@exemple.fr;0612000015;oui;\r\nhugo@exemple.fr;0612000015;;Metz\r\n';
      const summary = await importFile(t, fileWith(csv));
      expect(counts(summary)).toMatchObject({ rejected: 1, updated: 1, consents: 0 });
      const lines = (await t.call('GET', `/v1/imports/${summary.id}/rejects.csv`)).body;
      expect(lines).toContain(
        '2,consent:commercial-sms:sms,"was given for this row\'s phone, but the contact it matches holds another phone',
      );
      expect(await contactByEmail(t, 'hugo@exemple.fr')).toMatchObject({ phone: '+33612000012', attributes: { ville: 'Metz' } });
    });

    it('rejects a consent on a channel the contact has no address for, and bad values with their column', async () => {
      const csv =
        'email;consent:commercial-sms:sms;consent:newsletter:email;consent:newsletter:email:ip;Ville;points\r\n' +
        'a1@exemple.fr;oui;;;;\r\n' +
        'a2@exemple.fr;;peut-être;;;\r\n' +
        'a3@exemple.fr;;oui;300.1.1.1;;\r\n' +
        'a4@exemple.fr;;;;;douze\r\n' +
        'a5@exemple.fr;;oui;;Metz;1 234,5\r\n';
      const summary = await importFile(t, fileWith(csv));
      expect(counts(summary)).toMatchObject({ read: 5, written: 1, rejected: 4 });
      const lines = (await t.call('GET', `/v1/imports/${summary.id}/rejects.csv`)).body.trimEnd().split('\r\n').slice(1);
      expect(lines).toEqual([
        '2,consent:commercial-sms:sms,"channel ""sms"" reaches people by phone: this contact has no phone"',
        '3,consent:newsletter:email,"must be yes, no, withdrawn, oui or non (got ""peut-être"")"',
        '4,consent:newsletter:email:ip,is not an IP address',
        '5,points,"must be a number (got ""douze"")"',
      ]);
      expect(await contactByEmail(t, 'a5@exemple.fr')).toMatchObject({ attributes: { ville: 'Metz', points: 1234.5 } });
    });
  });

  describe('a dry run of a file with its own duplicates', () => {
    /**
     * 2,509 rows over three batches: 1,200 people, then rows that find them again by email in
     * another case, by phone written another way, by an address a row gave them in an earlier batch;
     * that fill an empty field, add or keep a consent, give a phone of another person, or a consent
     * for another phone; and two people already in the base.
     */
    function duplicatesFile(): string {
      const lines = ['email;phone;Prénom;Ville;consent:newsletter:email;consent:newsletter:email:at;consent:commercial-sms:sms'];
      const phone = (i: number) => `0620${String(i).padStart(6, '0')}`;
      const spaced = (i: number) => phone(i).replace(/(\d\d)(?=\d)/g, '$1 ');
      const international = (i: number) => `+33 ${phone(i).slice(1)}`;
      const person = (i: number) =>
        `p${i}@exemple.fr;${i % 2 === 0 ? phone(i) : ''};${i % 3 === 0 ? '' : 'Léa'};;${i % 4 === 0 ? 'oui;2021-01-01' : ';'};`;
      const onlyPhone = (q: number) => `0630${String(q).padStart(6, '0')}`;
      for (let i = 0; i < 1_200; i += 1) {
        lines.push(person(i));
        // The base's first person gets a phone in the first batch.
        if (i === 500) lines.push('base1@exemple.fr;06 20 99 99 01;;;;;');
        // People with only a phone, written in the first batch…
        if (i % 50 === 25 && i < 900) lines.push(`;${onlyPhone(i)};;;;;`);
      }
      for (let i = 0; i < 1_000; i += 1) {
        const variant = i % 8;
        if (variant === 0) lines.push(`P${i}@EXEMPLE.FR;;Zoé;;;;`);
        else if (variant === 1) lines.push(`;${spaced(i)};;Metz;;;`);
        else if (variant === 2) lines.push(`p${i}@exemple.fr;0621${String(i).padStart(6, '0')};;;;;oui`);
        else if (variant === 3) lines.push(`p${i}@exemple.fr;${phone(i + 1)};;;;;`);
        else if (variant === 4) lines.push(`p${i}@Exemple.fr;;;;non;2022-06-01;`);
        else if (variant === 5) lines.push(`p${i}@exemple.fr;;;;oui;;`);
        else if (variant === 6) lines.push(`;${spaced(i)};;;;;oui`);
        else lines.push(person(i));
        // … given an email in the second (by their phone written another way) …
        if (i === 100) for (let q = 25; q < 900; q += 50) lines.push(`q${q}@exemple.fr;+33 ${onlyPhone(q).slice(1)};;;;;`);
      }
      // People only a new phone found (variant 1): an email, then a consent by it.
      for (let i = 1; i < 1_000; i += 8) lines.push(`late${i}@exemple.fr;${international(i)};;;;;`);
      for (let i = 1; i < 1_000; i += 8) lines.push(`LATE${i}@exemple.fr;;;;oui;2023-02-01;`);
      // … and found by that email in the third.
      for (let q = 25; q < 900; q += 50) lines.push(`Q${q}@EXEMPLE.FR;;;;oui;2023-02-01;`);
      lines.push('base1@exemple.fr;;Ana;;;;', ';+33620999901;;;;;oui', 'BASE2@exemple.fr;;;;oui;;', 'base2@exemple.fr;;;;non;2030-01-01;');
      return fileWith(`${lines.join('\r\n')}\r\n`);
    }

    const rejectsOf = async (t: TestApp, id: string) => (await t.call('GET', `/v1/imports/${id}/rejects.csv`)).body;
    const leftovers = (id: string) => readdirSync(tmpdir()).filter((name) => name.startsWith(`assent-dry-run-${id}-`));

    it.each(['update', 'skip'] as const)('counts what the import then does, on-duplicate %s, and writes nothing', async (onDuplicate) => {
      const t = await buildTestApp(dialect, { now: NOW });
      try {
        await setUpCatalogue(t);
        expect((await t.call('POST', '/v1/contacts', { body: { email: 'base1@exemple.fr' } })).statusCode).toBe(201);
        const base2 = await t.call('POST', '/v1/contacts', { body: { email: 'base2@exemple.fr', phone: '0620999902' } });
        await record(t, { contactId: base2.json().id, purpose: 'newsletter', channel: 'email', action: 'grant' });
        const suppressed = await t.call('POST', '/v1/suppressions', {
          body: { channel: 'email', email: 'p5@exemple.fr', reason: 'unsubscribed' },
        });
        expect(suppressed.statusCode).toBe(201);
        const file = duplicatesFile();

        const before = await allCounts(t);
        const dry = await importFile(t, file, { dryRun: true, onDuplicate });
        expect(dry).toMatchObject({ status: 'completed', dryRun: true });
        expect(leftovers(dry.id)).toEqual([]);
        const dryRejects = await rejectsOf(t, dry.id);
        const rejectLines = dryRejects.trimEnd().split('\r\n').length - 1;
        expect(await allCounts(t)).toEqual({ ...before, imports: before.imports + 1, import_rejects: before.import_rejects + rejectLines });

        // The same file through the API, as a dry run: the same counts, and still nothing written.
        const upload = await t.app.inject({
          method: 'POST',
          url: `/v1/imports?dryRun=true&onDuplicate=${onDuplicate}`,
          headers: { authorization: `Bearer ${t.keys.write}`, 'content-type': 'text/csv' },
          payload: readFileSync(file),
        });
        expect(upload.statusCode).toBe(202);
        const viaApi = await waitFor(t, upload.json().id);
        expect(counts(viaApi)).toEqual(counts(dry));
        expect(leftovers(viaApi.id)).toEqual([]);

        const real = await importFile(t, file, { onDuplicate });
        expect(counts(real)).toEqual(counts(dry));
        const { events, grades, consentsKept, consentsSuppressed } = real.report ?? {};
        expect(dry.report).toMatchObject({ events, grades, consentsKept, consentsSuppressed });
        expect(await rejectsOf(t, real.id)).toBe(dryRejects);
        expect((await allCounts(t)).contacts).toBe(Number(before.contacts) + real.written);

        // The file does hold what the dry run has to see across batches.
        expect(real.read).toBe(2_509);
        expect(real.rejected).toBeGreaterThan(0);
        expect(real.skipped).toBeGreaterThan(0);
        if (onDuplicate === 'update') {
          // 1,200 people, 18 with only a phone, and 125 that only a new phone finds (variant 1).
          expect(real.written).toBe(1_343);
          const q = await contactByEmail(t, 'q425@exemple.fr');
          expect(q).toMatchObject({ phone: '+33630000425' });
          expect((await statesOf(t, q?.id as string)).find((s) => s.purpose === 'newsletter')).toMatchObject({ status: 'granted' });
          expect(real.updated).toBeGreaterThan(500);
          expect(real.report?.consentsKept).toBeGreaterThan(0);
          expect(real.report?.consentsSuppressed).toBe(1);
          const late = await contactByEmail(t, 'late9@exemple.fr');
          expect(late).toMatchObject({ phone: '+33620000009', attributes: { ville: 'Metz' } });
          expect((await statesOf(t, late?.id as string)).find((s) => s.purpose === 'newsletter')).toMatchObject({ status: 'granted' });
          // A person of the base: a phone from the first batch, found by it in the last.
          const base1 = await contactByEmail(t, 'base1@exemple.fr');
          expect(base1).toMatchObject({ phone: '+33620999901', firstName: 'Ana' });
          expect((await statesOf(t, base1?.id as string)).find((s) => s.purpose === 'commercial-sms')).toMatchObject({ status: 'granted' });
        }
      } finally {
        await t.close();
      }
    });
  });

  describe('assent import contacts', () => {
    let t: TestApp;
    let env: Record<string, string>;
    beforeAll(async () => {
      t = await buildTestApp(dialect, { now: NOW });
      await setUpCatalogue(t);
      env = { DATABASE_URL: t.database.url, ASSENT_SECRET: TEST_SECRET };
    });
    afterAll(async () => t.close());

    it('imports the README’s example, prints the summary as JSON and writes the rejects', async () => {
      const rejects = join(dir, 'example-rejects.csv');
      const dry = await runCli(['import', 'contacts', EXAMPLE, '--map', 'Points fidélité=points', '--dry-run', '--json'], env);
      expect(dry.code).toBe(0);
      expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, written: 19, rejected: 1 });
      const run = await runCli(['import', 'contacts', EXAMPLE, '--map', 'Points fidélité=points', '--rejects', rejects, '--json'], env);
      expect(run.code).toBe(0);
      // 20 rows: row 7's email is invalid; 18 newsletter consents (rows 0–18 but 7 and 9, and 19) and 3 SMS (rows 4, 8, 16).
      expect(counts(JSON.parse(run.stdout))).toEqual({
        status: 'completed',
        read: 20,
        written: 19,
        updated: 0,
        rejected: 1,
        skipped: 0,
        consents: 21,
      });
      expect(readFileSync(rejects, 'utf8')).toBe('line,column,reason\r\n9,Courriel,is not a valid email address\r\n');
      const human = await runCli(['import', 'contacts', EXAMPLE, '--map', 'Points fidélité=points'], env);
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(/imported already/);
    });

    it('exits 2 with the reason when the file cannot be imported', async () => {
      const unknown = await runCli(['import', 'contacts', EXAMPLE], env);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toMatch(/unknown column "Points fidélité"/);
      const missing = await runCli(['import', 'contacts', join(dir, 'nope.csv')], env);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/There is no file/);
    });
  });
});

// An import cut off by a crash: a real `assent import contacts` child is killed (SIGKILL) in the
// middle of a large file. Importing the same file again resumes it from its last committed batch
// and ends with exactly what a clean import gives (counters, contacts, events, states, rejects,
// webhook outbox rows) and a ledger that verifies; when the file cannot be read again, the import
// is marked interrupted and a new import of the same bytes brings the rest without duplicates.
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImportSummary } from '../src/modules/imports/index.ts';
import { buildTestApp, TEST_SECRET, type TestApp } from './helpers/build-app.ts';
import { ASSENT_BIN, runCli } from './helpers/cli.ts';
import { dialects } from './helpers/dialects.ts';

const ROWS = 24_000;
const dir = mkdtempSync(join(tmpdir(), 'assent-import-recovery-'));
const FILE = join(dir, 'big.csv');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Distinct contacts, with a bad email every 997 rows and an earlier row's email again every 1,000. */
function makeFile(rows: number): string {
  const lines = ['email,Prénom,phone,consent:commercial-email:email,consent:commercial-email:email:at,consent:commercial-sms:sms'];
  for (let i = 1; i <= rows; i += 1) {
    const email = i % 997 === 0 ? `not-an-email-${i}` : i % 1000 === 0 ? `person${i - 500}@example.org` : `person${i}@example.org`;
    const phone = i % 5 === 0 ? '' : `+3361${String(1_000_000 + i)}`;
    const day = String(1 + (i % 28)).padStart(2, '0');
    lines.push(`${email},Name${i % 50},${phone},${i % 3 === 0 ? 'no' : 'yes'},2025-03-${day},${phone ? (i % 2 ? 'yes' : 'no') : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

writeFileSync(FILE, makeFile(ROWS));

async function countOf(t: TestApp, table: 'contacts' | 'consent_events' | 'consent_states' | 'chain_heads' | 'import_rejects') {
  const row = await t.ctx.db.kysely
    .selectFrom(table)
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function outbox(t: TestApp): Promise<Record<string, number>> {
  const rows = await t.ctx.db.kysely
    .selectFrom('webhook_deliveries')
    .select(['event_type', (eb) => eb.fn.countAll().as('n')])
    .groupBy('event_type')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.event_type, Number(r.n)]));
}

const envOf = (t: TestApp) => ({ DATABASE_URL: t.database.url, ASSENT_SECRET: TEST_SECRET });

/** Runs `assent import contacts` and kills it (SIGKILL) once some batches, not all, are committed. */
async function importAndKill(t: TestApp, file: string): Promise<void> {
  const child: ChildProcess = spawn(process.execPath, [ASSENT_BIN, 'import', 'contacts', file, '--json'], {
    env: { ...process.env, ...envOf(t), LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    for (;;) {
      const row = await t.ctx.db.kysely.selectFrom('imports').select(['read', 'status']).executeTakeFirst();
      if (row && row.read >= 3_000) break;
      if (child.exitCode !== null) throw new Error('the import ended before it could be killed');
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill('SIGKILL');
    await exited;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  const row = await t.ctx.db.kysely.selectFrom('imports').selectAll().executeTakeFirstOrThrow();
  expect(row.status).toBe('running');
  expect(row.read).toBeGreaterThan(0);
  expect(row.read).toBeLessThan(ROWS);
}

async function importToEnd(t: TestApp, file: string): Promise<ImportSummary> {
  const run = await runCli(['import', 'contacts', file, '--json'], envOf(t));
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as ImportSummary;
}

const counters = (s: ImportSummary) => ({
  status: s.status,
  read: s.read,
  written: s.written,
  updated: s.updated,
  rejected: s.rejected,
  skipped: s.skipped,
  consents: s.consents,
  events: s.report?.events,
  grades: s.report?.grades,
});

async function withWebhook(t: TestApp): Promise<void> {
  const res = await t.call('POST', '/v1/webhooks', {
    body: { url: 'https://hooks.example.org/assent', events: ['contact.created', 'consent.changed', 'import.completed'] },
  });
  expect(res.statusCode, res.body).toBe(201);
}

async function everything(t: TestApp) {
  return {
    contacts: await countOf(t, 'contacts'),
    events: await countOf(t, 'consent_events'),
    states: await countOf(t, 'consent_states'),
    heads: await countOf(t, 'chain_heads'),
    outbox: await outbox(t),
  };
}

describe.each(dialects)('an import cut off by a crash, on %s', (dialect) => {
  let clean: TestApp;
  let cleanSummary: ImportSummary;

  beforeAll(async () => {
    clean = await buildTestApp(dialect);
    await withWebhook(clean);
    cleanSummary = await importToEnd(clean, FILE);
  }, 120_000);
  afterAll(async () => clean?.close());

  it('is resumed from its last committed batch by the next run of the same file: the same result as a clean import', async () => {
    const t = await buildTestApp(dialect);
    try {
      await withWebhook(t);
      await importAndKill(t, FILE);
      const resumed = await importToEnd(t, FILE);
      expect(cleanSummary.status).toBe('completed');
      expect(cleanSummary.rejected).toBeGreaterThan(0);
      expect(resumed.alreadyImported).toBeNull();
      expect(counters(resumed)).toEqual(counters(cleanSummary));
      // One import, resumed: not a second one.
      const imports = await t.ctx.db.kysely.selectFrom('imports').select(['id', 'status']).execute();
      expect(imports).toEqual([{ id: resumed.id, status: 'completed' }]);
      expect(await everything(t)).toEqual(await everything(clean));
      expect(await countOf(t, 'import_rejects')).toBe(await countOf(clean, 'import_rejects'));
      const lines = (x: TestApp) =>
        x.ctx.db.kysely.selectFrom('import_rejects').select(['seq', 'line', 'column', 'reason']).orderBy('seq').execute();
      expect(await lines(t)).toEqual(await lines(clean));
      const verify = await runCli(['ledger', 'verify'], envOf(t));
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
      expect(verify.stdout).toMatch(/ledger OK/);
    } finally {
      await t.close();
    }
  }, 180_000);

  it('is marked interrupted when its file is gone; the same bytes imported again bring the rest without duplicates', async () => {
    const t = await buildTestApp(dialect);
    const copy = join(dir, `copy-${dialect}.csv`);
    copyFileSync(FILE, copy);
    try {
      await importAndKill(t, copy);
      rmSync(copy);
      const again = await importToEnd(t, FILE);
      expect(again.status).toBe('completed');
      expect(again.alreadyImported).toBeNull();
      const first = await t.ctx.db.kysely.selectFrom('imports').selectAll().where('id', '!=', again.id).executeTakeFirstOrThrow();
      expect(first.status).toBe('interrupted');
      expect(first.error).toMatch(/cannot be read again/);
      expect(first.read + again.read).toBeGreaterThanOrEqual(ROWS);
      const { outbox: _o, ...rest } = await everything(t);
      const { outbox: _c, ...cleanRest } = await everything(clean);
      expect(rest).toEqual(cleanRest);
      const verify = await runCli(['ledger', 'verify'], envOf(t));
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
      // A third run of the same file: the completed import makes it a no-op.
      const third = await importToEnd(t, FILE);
      expect(third.alreadyImported).toBe(again.id);
    } finally {
      await t.close();
    }
  }, 180_000);
});

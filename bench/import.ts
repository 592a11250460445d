// `--only=import`: a 1,000,000-contact CRM export with two consent columns, imported by a real
// `assent import contacts FILE` child process (streaming parse, mapping, validation, dedup,
// contacts + ledger events + states in batched transactions), against a raw child that reads the
// same file and bulk-inserts the same contact and event rows with the same hashing: better-sqlite3
// batched inserts on SQLite, COPY … FROM STDIN on PostgreSQL. The peak RSS of each child is sampled
// from /proc while it runs; a dry run of the same file is measured first, on the same new store.
//
// Run as a child: node bin/run-ts.js bench/import.ts raw DATABASE_URL FILE
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { createContext } from '../src/boot.ts';
import { loadConfig } from '../src/config.ts';
import {
  type Evidence,
  eventHash,
  evidenceHash,
  GENESIS_HASH,
  type StoredEvent,
  verifyChain,
} from '../src/modules/consents/consents.ledger.ts';
import { type Action, statusAfter } from '../src/modules/consents/consents.state.ts';
import type { ConsentEventsTable } from '../src/modules/consents/consents.table.ts';
import type { ContactsTable } from '../src/modules/contacts/index.ts';
import { listPurposes, type Purpose } from '../src/modules/purposes/index.ts';
import { addressHash } from '../src/modules/suppressions/index.ts';
import { sha256Hex } from '../src/platform/crypto.ts';
import { createIdGenerator } from '../src/platform/ids.ts';
import { fmtInt, fmtRate, fmtSeconds, log, rng } from './common.ts';
import { CONTACT_COLUMNS, EVENT_COLUMNS } from './dataset.rows.ts';
import { DATA_DIR } from './dataset.ts';
import type { Measure } from './report.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ASSENT_BIN = join(ROOT, 'bin', 'assent.js');
const RUN_TS = join(ROOT, 'bin', 'run-ts.js');
const THIS_FILE = fileURLToPath(import.meta.url);
const HEADER =
  'email,first_name,last_name,phone,consent:commercial-email:email,consent:commercial-email:email:at,consent:commercial-sms:sms';
const RAW_BATCH = 1_000;
const COPY_BATCH = 10_000;
const RSS_LIMIT_MB = 300;

export interface ImportRun {
  ms: number;
  rate: number;
  peakRssMb: number;
  contacts: number;
  events: number;
  states: number;
}

export interface ImportStoreResult {
  store: 'SQLite' | 'PostgreSQL';
  ours: ImportRun;
  /** The same file as a dry run first, on the same new store (which it leaves without a contact). */
  dryRun: { ms: number; peakRssMb: number };
  raw: ImportRun;
  chainsVerified: number;
}

export interface ImportResult {
  rows: number;
  fileBytes: number;
  fileMs: number;
  stores: ImportStoreResult[];
}

const firstNames = ['Camille', 'Léa', 'Hugo', 'Chloé', 'Lucas', 'Manon', 'Louis', 'Inès', 'Jules', 'Zoé'];
const lastNames = ['Martin', 'Bernard', 'Dubois', 'Thomas', 'Robert', 'Richard', 'Petit', 'Durand', 'Leroy', 'Moreau'];

/** The bench file (made once, reused): every row a distinct contact, 80% with a mobile phone. */
async function ensureFile(rows: number): Promise<{ file: string; bytes: number; ms: number }> {
  const file = join(DATA_DIR, `import-${rows}.csv`);
  const started = performance.now();
  if (!existsSync(file)) {
    const random = rng(20261124);
    const partial = `${file}.part`;
    const out = createWriteStream(partial);
    out.write(`${HEADER}\n`);
    let chunk = '';
    for (let i = 0; i < rows; i += 1) {
      const phone = random() < 0.8 ? `+336${String(10_000_000 + i)}` : '';
      const email = random() < 0.72 ? 'yes' : 'no';
      const day = new Date(Date.UTC(2023, 0, 1) + Math.floor(random() * 700) * 86_400_000).toISOString().slice(0, 10);
      const sms = phone ? (random() < 0.5 ? 'yes' : 'no') : '';
      chunk += `contact${i}@bench${i % 97}.example.org,${firstNames[i % 10]},${lastNames[(i >> 3) % 10]},${phone},${email},${day},${sms}\n`;
      if (chunk.length > 1 << 20) {
        if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
        chunk = '';
      }
    }
    out.end(chunk);
    await new Promise<void>((resolve, reject) => out.once('close', resolve).once('error', reject));
    renameSync(partial, file);
  }
  const bytes = statSync(file).size;
  return { file, bytes, ms: performance.now() - started };
}

/** Runs a child to its end, sampling its resident memory (VmHWM: the kernel's own peak). */
function runChild(args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; peakRssMb: number; output: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c) => {
      output += c;
    });
    child.stderr.on('data', (c) => {
      output += c;
    });
    let peakKb = 0;
    const sample = () => {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        for (const name of ['VmHWM', 'VmRSS']) {
          const m = new RegExp(`${name}:\\s+(\\d+) kB`).exec(status);
          if (m) peakKb = Math.max(peakKb, Number(m[1]));
        }
      } catch {
        // The process has just ended.
      }
    };
    const timer = setInterval(sample, 50);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearInterval(timer);
      const ms = performance.now() - started;
      if (code !== 0) reject(new Error(`bench import: child ${args.join(' ')} ended with ${code ?? signal}:\n${output.slice(-2000)}`));
      else resolve({ ms, peakRssMb: peakKb / 1024, output });
    });
  });
}

const childEnv = (url: string): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'warn', SCHEDULER_INTERVAL_SECONDS: '0' };
  delete env.ASSENT_SECRET;
  return env;
};

/** Migrates a new store (both sides start from the same empty schema and secret source). */
async function prepareStore(url: string): Promise<void> {
  const ctx = await createContext(loadConfig({ DATABASE_URL: url, LOG_LEVEL: 'warn', SCHEDULER_INTERVAL_SECONDS: '0' }));
  await ctx.db.close();
}

async function countsAndChains(
  url: string,
  rows: number,
  chains: boolean,
): Promise<{ contacts: number; events: number; states: number; verified: number }> {
  const ctx = await createContext(loadConfig({ DATABASE_URL: url, LOG_LEVEL: 'warn', SCHEDULER_INTERVAL_SECONDS: '0' }), {
    migrate: false,
  });
  try {
    const db = ctx.db.kysely;
    const count = async (table: 'contacts' | 'consent_events' | 'consent_states') =>
      Number(
        (
          await db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const contacts = await count('contacts');
    const events = await count('consent_events');
    const states = await count('consent_states');
    const random = rng(7);
    let verified = 0;
    for (let k = 0; chains && k < 200; k += 1) {
      const email = `contact${Math.floor(random() * rows)}@`;
      const contact = await db.selectFrom('contacts').select('id').where('email', 'like', `${email}%`).limit(1).executeTakeFirst();
      if (!contact) continue;
      const chain = (await db
        .selectFrom('consent_events')
        .selectAll()
        .where('contact_id', '=', contact.id)
        .orderBy('seq')
        .execute()) as StoredEvent[];
      const head = await db.selectFrom('chain_heads').selectAll().where('contact_id', '=', contact.id).executeTakeFirst();
      const broken = verifyChain(ctx.secret, contact.id, chain, head);
      if (broken) throw new Error(`bench import: the chain of ${contact.id} does not verify after the import (${broken.reason})`);
      verified += 1;
    }
    return { contacts, events, states, verified };
  } finally {
    await ctx.db.close();
  }
}

async function runOurs(url: string, file: string, rows: number): Promise<{ run: ImportRun; verified: number }> {
  const child = await runChild([ASSENT_BIN, 'import', 'contacts', file, '--json'], childEnv(url));
  const summary = JSON.parse(child.output.slice(child.output.indexOf('{'))) as { status: string; read: number; written: number };
  if (summary.status !== 'completed' || summary.written !== rows) {
    throw new Error(`bench import: the import ended ${summary.status} with ${summary.written} of ${rows} contacts written`);
  }
  const c = await countsAndChains(url, rows, true);
  return {
    run: {
      ms: child.ms,
      rate: (rows * 1000) / child.ms,
      peakRssMb: child.peakRssMb,
      contacts: c.contacts,
      events: c.events,
      states: c.states,
    },
    verified: c.verified,
  };
}

/** `--dry-run` on a new store: every row would be written, and nothing is. */
async function runDry(url: string, file: string, rows: number): Promise<{ ms: number; peakRssMb: number }> {
  const child = await runChild([ASSENT_BIN, 'import', 'contacts', file, '--dry-run', '--json'], childEnv(url));
  const summary = JSON.parse(child.output.slice(child.output.indexOf('{'))) as { status: string; dryRun: boolean; written: number };
  if (summary.status !== 'completed' || !summary.dryRun || summary.written !== rows) {
    throw new Error(`bench import: the dry run ended ${summary.status} with ${summary.written} of ${rows} contacts counted`);
  }
  const c = await countsAndChains(url, rows, false);
  if (c.contacts !== 0 || c.events !== 0) throw new Error(`bench import: the dry run wrote ${c.contacts} contacts, ${c.events} events`);
  return { ms: child.ms, peakRssMb: child.peakRssMb };
}

async function runRaw(url: string, file: string, rows: number): Promise<ImportRun> {
  const child = await runChild([RUN_TS, THIS_FILE, 'raw', url, file], childEnv(url));
  const c = await countsAndChains(url, rows, false);
  if (c.contacts !== rows) throw new Error(`bench import: the raw path wrote ${c.contacts} of ${rows} contacts`);
  return {
    ms: child.ms,
    rate: (rows * 1000) / child.ms,
    peakRssMb: child.peakRssMb,
    contacts: c.contacts,
    events: c.events,
    states: c.states,
  };
}

export async function benchImport(options: { rows: number; postgresUrl: string | null }): Promise<ImportResult> {
  const { file, bytes, ms: fileMs } = await ensureFile(options.rows);
  log(`  file: ${fmtInt(options.rows)} rows, ${(bytes / 1e6).toFixed(0)} MB (${fmtSeconds(fileMs)})`);
  const stores: ImportStoreResult[] = [];

  const sqliteFiles = { ours: join(DATA_DIR, 'import-ours.db'), raw: join(DATA_DIR, 'import-raw.db') };
  const clean = () => {
    for (const f of Object.values(sqliteFiles)) for (const s of ['', '-wal', '-shm']) rmSync(f + s, { force: true });
  };
  clean();
  try {
    for (const f of Object.values(sqliteFiles)) await prepareStore(`sqlite:${f}`);
    const raw = await runRaw(`sqlite:${sqliteFiles.raw}`, file, options.rows);
    log(`  SQLite raw: ${fmtRate(raw.rate)} rows (${fmtSeconds(raw.ms)}), peak RSS ${raw.peakRssMb.toFixed(0)} MB`);
    const dryRun = await runDry(`sqlite:${sqliteFiles.ours}`, file, options.rows);
    log(`  SQLite dry run: ${fmtSeconds(dryRun.ms)}, peak RSS ${dryRun.peakRssMb.toFixed(0)} MB`);
    const ours = await runOurs(`sqlite:${sqliteFiles.ours}`, file, options.rows);
    log(`  SQLite ours: ${fmtRate(ours.run.rate)} rows (${fmtSeconds(ours.run.ms)}), peak RSS ${ours.run.peakRssMb.toFixed(0)} MB`);
    stores.push({ store: 'SQLite', ours: ours.run, raw, dryRun, chainsVerified: ours.verified });
  } finally {
    clean();
  }

  if (options.postgresUrl) {
    const base = new URL(options.postgresUrl);
    if (!base.username) base.username = userInfo().username;
    const admin = new pg.Client({ connectionString: base.toString() });
    await admin.connect();
    const names = { ours: `assent_bench_import_ours_${process.pid}`, raw: `assent_bench_import_raw_${process.pid}` };
    const urlOf = (name: string) => {
      const u = new URL(base);
      u.pathname = `/${name}`;
      return u.toString();
    };
    try {
      for (const name of Object.values(names)) {
        await admin.query(`drop database if exists ${name} with (force)`);
        await admin.query(`create database ${name}`);
        await prepareStore(urlOf(name));
      }
      const raw = await runRaw(urlOf(names.raw), file, options.rows);
      log(`  PostgreSQL raw COPY: ${fmtRate(raw.rate)} rows (${fmtSeconds(raw.ms)}), peak RSS ${raw.peakRssMb.toFixed(0)} MB`);
      const dryRun = await runDry(urlOf(names.ours), file, options.rows);
      log(`  PostgreSQL dry run: ${fmtSeconds(dryRun.ms)}, peak RSS ${dryRun.peakRssMb.toFixed(0)} MB`);
      const ours = await runOurs(urlOf(names.ours), file, options.rows);
      log(`  PostgreSQL ours: ${fmtRate(ours.run.rate)} rows (${fmtSeconds(ours.run.ms)}), peak RSS ${ours.run.peakRssMb.toFixed(0)} MB`);
      stores.push({ store: 'PostgreSQL', ours: ours.run, raw, dryRun, chainsVerified: ours.verified });
    } finally {
      for (const name of Object.values(names)) await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  }
  return { rows: options.rows, fileBytes: bytes, fileMs, stores };
}

export function importMeasures(r: ImportResult): Measure[] {
  return r.stores.flatMap((s) => [
    {
      name: `import of ${fmtInt(r.rows)} contacts with 2 consent columns, ${s.store} (assent import contacts)`,
      ours: s.ours.rate,
      unit: 'rows/s',
      baselineName: s.store === 'SQLite' ? 'raw better-sqlite3 batched insert' : 'raw COPY FROM STDIN',
      baseline: s.raw.rate,
      target: '≥ 40% of raw',
      pass: s.ours.rate >= 0.4 * s.raw.rate,
    },
    {
      name: `import of ${fmtInt(r.rows)} contacts, ${s.store}: peak RSS of the importing process`,
      ours: s.ours.peakRssMb,
      unit: 'MB',
      baselineName: 'peak RSS of the raw child',
      baseline: s.raw.peakRssMb,
      target: `< ${RSS_LIMIT_MB} MB`,
      pass: s.ours.peakRssMb < RSS_LIMIT_MB,
    },
    {
      name: `dry run of ${fmtInt(r.rows)} contacts, ${s.store}: peak RSS of the importing process (--dry-run)`,
      ours: s.dryRun.peakRssMb,
      unit: 'MB',
      baselineName: 'peak RSS of the real import',
      baseline: s.ours.peakRssMb,
      target: 'report only (no target)',
      pass: null,
    },
  ]);
}

export function importDetails(r: ImportResult): string[] {
  const out = [
    `Import: a generated CRM export of ${fmtInt(r.rows)} distinct contacts (${(r.fileBytes / 1e6).toFixed(0)} MB in bench/.data, made once and reused): ${HEADER.split(',').join(', ')}; 80% of the rows have a mobile phone and only those an SMS answer. Each side starts from a new, migrated store. Ours: a child process running \`node bin/assent.js import contacts FILE --json\` — the whole command, start-up and the checking pass (hash, encoding, record count) included — timed from spawn to exit. Raw: a child process that reads the same file line by line (split on commas, no validation, no dedup lookups), hashes the addresses and computes the same evidence and event hashes, and writes the same contact and event rows: on SQLite with prepared INSERTs, ${fmtInt(RAW_BATCH)} rows a transaction; on PostgreSQL with COPY … FROM STDIN, ${fmtInt(COPY_BATCH)} rows a COPY and a transaction. Raw writes no states, heads, outbox rows or import records. Before ours, the same command with \`--dry-run\` runs on ours' new store (it must count every row as written and leave no contact nor event there). Peak RSS: the larger of VmHWM and VmRSS of the child, read from /proc every 50 ms.`,
  ];
  for (const s of r.stores) {
    out.push(
      `${s.store}: ours ${fmtRate(s.ours.rate)} rows in ${fmtSeconds(s.ours.ms)} (${fmtInt(s.ours.contacts)} contacts, ${fmtInt(s.ours.events)} events, ${fmtInt(s.ours.states)} states; ${s.chainsVerified} sampled chains verified), peak RSS ${s.ours.peakRssMb.toFixed(0)} MB (its dry run: ${fmtSeconds(s.dryRun.ms)}, peak RSS ${s.dryRun.peakRssMb.toFixed(0)} MB); raw ${fmtRate(s.raw.rate)} rows in ${fmtSeconds(s.raw.ms)} (${fmtInt(s.raw.contacts)} contacts, ${fmtInt(s.raw.events)} events), peak RSS ${s.raw.peakRssMb.toFixed(0)} MB; ratio ${(s.ours.rate / s.raw.rate).toFixed(2)}.`,
    );
  }
  return out;
}

// ————— The raw child —————

interface RawRows {
  contacts: ContactsTable[];
  events: ConsentEventsTable[];
}

async function rawChild(url: string, file: string): Promise<void> {
  const ctx = await createContext(loadConfig({ DATABASE_URL: url, LOG_LEVEL: 'warn', SCHEDULER_INTERVAL_SECONDS: '0' }), {
    migrate: false,
  });
  const secret = ctx.secret;
  const purposes = new Map<string, Purpose>((await listPurposes(ctx)).map((p) => [p.key, p]));
  await ctx.db.close();
  const newId = createIdGenerator();
  const emailPurpose = purposes.get('commercial-email') as Purpose;
  const smsPurpose = purposes.get('commercial-sms') as Purpose;
  const textHash = sha256Hex('');
  const importRef = newId();

  const toRows = (lines: Array<{ line: number; text: string }>): RawRows => {
    const now = new Date().toISOString();
    const out: RawRows = { contacts: [], events: [] };
    for (const { line, text } of lines) {
      const [email = '', firstName, lastName, phone = '', emailAnswer, at, smsAnswer] = text.split(',');
      const contact: ContactsTable = {
        id: newId(),
        email,
        email_hash: addressHash(secret, email),
        phone: phone || null,
        phone_hash: phone ? addressHash(secret, phone) : null,
        first_name: firstName || null,
        last_name: lastName || null,
        locale: null,
        kind: 'person',
        lifecycle: 'prospect',
        last_purchase_at: null,
        source: null,
        attributes: '{}',
        created_at: now,
        updated_at: now,
        last_interaction_at: null,
        erased_at: null,
      };
      out.contacts.push(contact);
      let head = { seq: 0, hash: GENESIS_HASH };
      const answers: Array<[Purpose, string, string | undefined, string | undefined]> = [
        [emailPurpose, 'email', emailAnswer, at],
        [smsPurpose, 'sms', smsAnswer, undefined],
      ];
      for (const [purpose, channel, answer, collected] of answers) {
        if (!answer) continue;
        const action: Action = answer === 'yes' ? 'granted' : 'refused';
        const occurredAt = collected ? new Date(`${collected}T00:00:00.000Z`).toISOString() : now;
        const evidence: Evidence = {
          method: 'import',
          text: '',
          proofGrade: collected ? 'fair' : 'weak',
          importLine: line,
          ...(collected ? { collectedAt: occurredAt } : {}),
          textHash,
          wordingHash: purpose.wordingHash,
        };
        const rules = { doubleOptIn: purpose.doubleOptIn && channel === 'email', expiryAfterDays: null };
        const row: ConsentEventsTable = {
          id: newId(),
          contact_id: contact.id,
          seq: head.seq + 1,
          purpose_key: purpose.key,
          purpose_version: purpose.version,
          channel_key: channel,
          action,
          status: statusAfter(undefined, action, rules, 'import'),
          legal_basis: purpose.legalBasis,
          source_type: 'import',
          source_ref: importRef,
          evidence: JSON.stringify(evidence),
          evidence_hash: evidenceHash(secret, evidence),
          expires_at: null,
          occurred_at: occurredAt,
          recorded_at: now,
          idempotency_key: null,
          request_hash: null,
          prev_hash: head.hash,
          hash: '',
        };
        row.hash = eventHash(row);
        head = { seq: row.seq, hash: row.hash };
        out.events.push(row);
      }
    }
    return out;
  };

  let write: (rows: RawRows) => Promise<void>;
  let close: () => Promise<void>;
  let batchSize: number;
  if (url.startsWith('sqlite:')) {
    const db = new SqliteDatabase(url.slice('sqlite:'.length));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    const insertContact = db.prepare(
      `insert into contacts (${CONTACT_COLUMNS.join(',')}) values (${CONTACT_COLUMNS.map(() => '?').join(',')})`,
    );
    const insertEvent = db.prepare(
      `insert into consent_events (${EVENT_COLUMNS.join(',')}) values (${EVENT_COLUMNS.map(() => '?').join(',')})`,
    );
    const tx = db.transaction((rows: RawRows) => {
      for (const c of rows.contacts) insertContact.run(CONTACT_COLUMNS.map((k) => c[k]));
      for (const e of rows.events) insertEvent.run(EVENT_COLUMNS.map((k) => e[k]));
    });
    write = async (rows) => tx(rows);
    close = async () => {
      db.close();
    };
    batchSize = RAW_BATCH;
  } else {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    write = async (rows) => {
      await client.query('begin');
      await copyIn(client, 'contacts', CONTACT_COLUMNS, rows.contacts);
      await copyIn(client, 'consent_events', EVENT_COLUMNS, rows.events);
      await client.query('commit');
    };
    close = () => client.end();
    batchSize = COPY_BATCH;
  }

  const lines = createInterface({ input: createReadStream(file, { highWaterMark: 1 << 20 }), crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  let batch: Array<{ line: number; text: string }> = [];
  for await (const text of lines) {
    lineNo += 1;
    if (lineNo === 1 || text === '') continue;
    batch.push({ line: lineNo, text });
    if (batch.length >= batchSize) {
      await write(toRows(batch));
      batch = [];
    }
  }
  if (batch.length > 0) await write(toRows(batch));
  await close();
}

/** COPY's text format: tab-separated, `\N` for null, backslash escapes. */
const copyValue = (v: unknown): string =>
  v === null || v === undefined
    ? '\\N'
    : String(v).replace(/[\\\t\n\r]/g, (ch) => (ch === '\\' ? '\\\\' : ch === '\t' ? '\\t' : ch === '\n' ? '\\n' : '\\r'));

/** COPY … FROM STDIN through the pg driver's copy-in messages (a minimal submittable). */
function copyIn<T>(client: pg.Client, table: string, columns: ReadonlyArray<keyof T & string>, rows: T[]): Promise<void> {
  let body = '';
  for (const row of rows) body += `${columns.map((c) => copyValue(row[c])).join('\t')}\n`;
  const data = Buffer.from(body);
  return new Promise((resolve, reject) => {
    let failed: Error | null = null;
    const submittable = {
      submit(connection: { query(text: string): void }) {
        connection.query(`copy ${table} (${columns.join(',')}) from stdin`);
      },
      handleCopyInResponse(connection: { sendCopyFromChunk(b: Buffer): void; endCopyFrom(): void }) {
        for (let i = 0; i < data.length; i += 1 << 16) connection.sendCopyFromChunk(data.subarray(i, i + (1 << 16)));
        connection.endCopyFrom();
      },
      handleCommandComplete() {},
      handleError(error: Error) {
        failed = error;
      },
      handleReadyForQuery() {
        if (failed) reject(failed);
        else resolve();
      },
    };
    client.query(submittable as unknown as pg.QueryConfig);
  });
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url && process.argv[2] === 'raw') {
  await rawChild(process.argv[3] as string, process.argv[4] as string);
}

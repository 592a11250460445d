// The bench database: N contacts with three hash-chained consent events each. The schema comes
// from the real migrations (createContext); the rows are hashed on worker threads with the
// ledger's own functions and bulk-inserted with raw prepared statements. Reused while complete.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { createContext } from '../src/boot.ts';
import { loadConfig } from '../src/config.ts';
import type { Database } from '../src/database.ts';
import { migrateToLatest } from '../src/migrations/index.ts';
import { listChannels } from '../src/modules/channels/index.ts';
import { type StoredEvent, verifyChain } from '../src/modules/consents/consents.ledger.ts';
import { listPurposes, wordingText } from '../src/modules/purposes/index.ts';
import { fmtInt, fmtSeconds, log, progress, tsWorker } from './common.ts';
import {
  CONTACT_COLUMNS,
  EVENT_COLUMNS,
  EVENTS_PER_CONTACT,
  type GeneratorConfig,
  HEAD_COLUMNS,
  type PurposeFacts,
  type RowChunk,
  STATE_COLUMNS,
} from './dataset.rows.ts';

/** Bump when the generator changes: older files are then rebuilt. */
const DATASET_VERSION = 1;
const CHUNK = 5_000;

export const DATA_DIR = join(dirname(fileURLToPath(import.meta.url)), '.data');

export interface Dataset {
  file: string;
  contacts: number;
  events: number;
  reused: boolean;
  buildMs: number;
  bytes: number;
}

interface Meta {
  version: number;
  contacts: number;
  events: number;
  complete: boolean;
  builtAt: string;
  buildMs: number;
}

const removeDb = (file: string) => {
  for (const suffix of ['', '-wal', '-shm', '-journal', '.json']) rmSync(file + suffix, { force: true });
};

function readMeta(file: string): Meta | undefined {
  try {
    return JSON.parse(readFileSync(`${file}.json`, 'utf8')) as Meta;
  } catch {
    return undefined;
  }
}

/** Multi-row INSERT of flat positional values, `perStatement` rows per statement. */
function flatInserter(db: SqliteDatabase.Database, table: string, columns: readonly string[], perStatement: number) {
  const row = `(${columns.map(() => '?').join(',')})`;
  const head = `insert into ${table} (${columns.join(',')}) values `;
  const many = db.prepare(head + Array.from({ length: perStatement }, () => row).join(','));
  const one = db.prepare(head + row);
  const width = columns.length;
  return (flat: unknown[]) => {
    const rows = flat.length / width;
    let r = 0;
    for (; r + perStatement <= rows; r += perStatement) many.run(flat.slice(r * width, (r + perStatement) * width));
    for (; r < rows; r += 1) one.run(flat.slice(r * width, (r + 1) * width));
  };
}

/** Fails clearly when the generator's column lists and the migrated tables disagree. */
function checkColumns(db: SqliteDatabase.Database): void {
  const expected: Record<string, readonly string[]> = {
    contacts: CONTACT_COLUMNS,
    consent_events: EVENT_COLUMNS,
    consent_states: STATE_COLUMNS,
    chain_heads: HEAD_COLUMNS,
  };
  for (const [table, columns] of Object.entries(expected)) {
    const actual = (db.prepare(`select name from pragma_table_info('${table}')`).all() as Array<{ name: string }>).map((r) => r.name);
    if ([...actual].sort().join() !== [...columns].sort().join()) {
      throw new Error(`bench dataset: ${table} has columns ${actual.join(', ')}; the generator writes ${columns.join(', ')}`);
    }
  }
}

async function migrate(file: string): Promise<string[]> {
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SqliteDatabase(file) }) });
  try {
    return await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
}

async function generatorConfig(file: string): Promise<GeneratorConfig> {
  // The real boot: migrations, built-in channels and purposes, the server secret.
  const ctx = await createContext(loadConfig({ DATABASE_URL: `sqlite:${file}`, LOG_LEVEL: 'warn' }));
  try {
    const purposes: Record<string, PurposeFacts> = {};
    for (const p of await listPurposes(ctx)) {
      purposes[p.key] = {
        key: p.key,
        version: p.version,
        legalBasis: p.legalBasis,
        doubleOptIn: p.doubleOptIn,
        expiryAfterDays: p.expiry.afterDays,
        wordingHash: p.wordingHash,
        text: { fr: wordingText(p, 'fr'), en: wordingText(p, 'en') },
      };
    }
    const channels: Record<string, string> = {};
    for (const c of await listChannels(ctx)) channels[c.key] = c.kind;
    return { secret: ctx.secret, purposes, channels };
  } finally {
    await ctx.db.close();
  }
}

async function build(file: string, contacts: number): Promise<number> {
  const started = performance.now();
  removeDb(file);
  mkdirSync(dirname(file), { recursive: true });
  const config = await generatorConfig(file);

  const db = new SqliteDatabase(file);
  // Bulk-load settings: this file is rebuilt from scratch on any failure, so no journal.
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('cache_size = -1048576');
  db.pragma('temp_store = MEMORY');
  db.pragma('foreign_keys = OFF');
  checkColumns(db);

  // Secondary indexes are cheaper to build once at the end; unique ones stay (constraints).
  const indexes = db
    .prepare(
      "select name, sql from sqlite_master where type = 'index' and sql is not null and tbl_name in ('contacts', 'consent_events', 'consent_states', 'chain_heads') and sql not like 'create unique%'",
    )
    .all() as Array<{ name: string; sql: string }>;
  for (const index of indexes) db.exec(`drop index "${index.name}"`);

  const insertContacts = flatInserter(db, 'contacts', CONTACT_COLUMNS, 50);
  const insertEvents = flatInserter(db, 'consent_events', EVENT_COLUMNS, 40);
  const insertStates = flatInserter(db, 'consent_states', STATE_COLUMNS, 80);
  const insertHeads = flatInserter(db, 'chain_heads', HEAD_COLUMNS, 200);
  const insertChunk = db.transaction((chunk: RowChunk) => {
    insertContacts(chunk.contacts);
    insertHeads(chunk.heads);
    insertEvents(chunk.events);
    insertStates(chunk.states);
  });

  const bar = progress('contacts written');
  const workerCount = Math.max(1, cpus().length);
  const workers = Array.from({ length: workerCount }, () => tsWorker(new URL('./dataset.worker.ts', import.meta.url), config));
  try {
    await new Promise<void>((resolve, reject) => {
      const ready = new Map<number, RowChunk>();
      const pending: Array<(typeof workers)[number]> = [];
      let nextTask = 0;
      let nextInsert = 0;
      let written = 0;
      const dispatch = (worker: (typeof workers)[number]) => {
        if (nextTask >= contacts) return;
        const count = Math.min(CHUNK, contacts - nextTask);
        worker.postMessage({ start: nextTask, count });
        nextTask += count;
      };
      for (const worker of workers) {
        worker.on('error', reject);
        worker.on('message', (chunk: RowChunk) => {
          ready.set(chunk.start, chunk);
          // Keep the workers busy only while the writer keeps up (bounded memory).
          if (ready.size < workerCount * 4) dispatch(worker);
          else pending.push(worker);
          try {
            for (let c = ready.get(nextInsert); c; c = ready.get(nextInsert)) {
              ready.delete(nextInsert);
              insertChunk(c);
              nextInsert += c.count;
              written += c.count;
              bar.update(written, contacts);
              while (pending.length > 0 && ready.size < workerCount * 4) dispatch(pending.shift() as (typeof workers)[number]);
            }
          } catch (error) {
            reject(error);
            return;
          }
          if (written === contacts) resolve();
        });
        // Two tasks in flight per worker: one computing, one queued.
        dispatch(worker);
        dispatch(worker);
      }
      if (contacts === 0) resolve();
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  bar.end(`  rows written in ${fmtSeconds(performance.now() - started)}`);

  const indexStarted = performance.now();
  for (const index of indexes) db.exec(index.sql);
  log(`  secondary indexes rebuilt in ${fmtSeconds(performance.now() - indexStarted)}`);
  db.pragma('locking_mode = NORMAL');
  db.pragma('journal_mode = WAL');
  db.close();
  return performance.now() - started;
}

/** Checks a sample of chains with the ledger's verifier (a full `ledger verify` takes minutes at 1M). */
function verifySample(file: string, secret: string, sample: number): void {
  const db = new SqliteDatabase(file, { readonly: true });
  try {
    // chain_heads has no rowid (a WITHOUT ROWID table): spread the sample over contacts by theirs.
    const max = (db.prepare('select max(rowid) as m from contacts').get() as { m: number }).m;
    const headAt = db.prepare(
      'select h.* from contacts c join chain_heads h on h.contact_id = c.id where c.rowid >= ? order by c.rowid limit 1',
    );
    const eventsOf = db.prepare('select * from consent_events where contact_id = ? order by seq');
    for (let k = 0; k < sample; k += 1) {
      const rowid = 1 + Math.floor((k / sample) * max);
      const head = headAt.get(rowid) as { contact_id: string; seq: number; hash: string };
      const broken = verifyChain(secret, head.contact_id, eventsOf.all(head.contact_id) as StoredEvent[], head);
      if (broken) throw new Error(`bench dataset: chain of ${head.contact_id} does not verify (${broken.reason})`);
    }
  } finally {
    db.close();
  }
}

function secretOf(file: string): string {
  const db = new SqliteDatabase(file, { readonly: true });
  try {
    return (db.prepare("select value from settings where key = 'secret'").get() as { value: string }).value;
  } finally {
    db.close();
  }
}

function counts(file: string): { contacts: number; heads: number; events: number } {
  const db = new SqliteDatabase(file, { readonly: true });
  try {
    const one = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
    return {
      contacts: one('select count(*) as n from contacts'),
      heads: one('select count(*) as n from chain_heads'),
      events: one('select max(rowid) as n from consent_events'),
    };
  } finally {
    db.close();
  }
}

export async function ensureDataset(contacts: number, options: { rebuild: boolean }): Promise<Dataset> {
  const file = join(DATA_DIR, `assent-${contacts}.db`);
  const events = contacts * EVENTS_PER_CONTACT;
  const meta = readMeta(file);
  if (!options.rebuild && meta && existsSync(file) && meta.complete && meta.version === DATASET_VERSION && meta.contacts === contacts) {
    const found = counts(file);
    if (found.contacts === contacts && found.heads === contacts && found.events === events) {
      log(`Dataset: reusing ${file} (${fmtInt(contacts)} contacts, ${fmtInt(events)} events; --rebuild to start over)`);
      // Migrations added since the build run on it now, as they would on an upgraded install.
      const applied = await migrate(file);
      if (applied.length > 0) log(`  applied migrations: ${applied.join(', ')}`);
      verifySample(file, secretOf(file), 200);
      return { file, contacts, events, reused: true, buildMs: meta.buildMs, bytes: statSync(file).size };
    }
    log('Dataset: the file on disk is incomplete; rebuilding it');
  }
  log(`Dataset: building ${file} (${fmtInt(contacts)} contacts × ${EVENTS_PER_CONTACT} events)`);
  const buildMs = await build(file, contacts);
  const found = counts(file);
  if (found.contacts !== contacts || found.events !== events) {
    throw new Error(`bench dataset: expected ${contacts} contacts and ${events} events, found ${found.contacts} and ${found.events}`);
  }
  verifySample(file, secretOf(file), 200);
  const done: Meta = { version: DATASET_VERSION, contacts, events, complete: true, builtAt: new Date().toISOString(), buildMs };
  writeFileSync(`${file}.json`, `${JSON.stringify(done, null, 2)}\n`);
  log(`Dataset: built in ${fmtSeconds(buildMs)}, ${(statSync(file).size / 1e9).toFixed(2)} GB; 200 sampled chains verify`);
  return { file, contacts, events, reused: false, buildMs, bytes: statSync(file).size };
}

// Ledger append through the service (recordConsents in batches: validation, hashing, chaining,
// state projection, one transaction per batch) against a raw better-sqlite3 batched insert of
// the same event rows with the same hashing. Both run on one scratch copy of the bench database
// (the appends land in a ledger of the full size; the reusable file stays untouched), in two
// workloads: contacts imported just before (chains start empty) and random existing contacts
// (chains and states of a large ledger move).
import { closeSync, copyFileSync, fsyncSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
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
import { actionsByVerb, statusAfter } from '../src/modules/consents/consents.state.ts';
import { type ConsentInput, recordConsents } from '../src/modules/consents/index.ts';
import { listPurposes, type Purpose, wordingText } from '../src/modules/purposes/index.ts';
import type { RequestContext } from '../src/platform/context.ts';
import { sha256Hex } from '../src/platform/crypto.ts';
import { createIdGenerator } from '../src/platform/ids.ts';
import { fmtRate, fmtSeconds, log } from './common.ts';
import { CONTACT_COLUMNS, EVENT_COLUMNS, HEAD_COLUMNS, newContacts } from './dataset.rows.ts';
import { DATA_DIR } from './dataset.ts';
import { pairAt, type SampleContact } from './sample.ts';

export interface AppendRun {
  service: number;
  raw: number;
  events: number;
}

export interface AppendResult {
  /** Contacts imported just before, each getting its first events. */
  fresh: AppendRun;
  /** Random existing contacts of the big ledger. */
  existing: AppendRun;
  batch: number;
  rounds: number;
  copyMs: number;
}

type Input = ConsentInput & { locale: string | null };

const WARM_BATCHES = 4;
const BATCHES_PER_ROUND = 20;
const userAgent = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';

/** Batch b of a workload: distinct contacts, every pair, grants and withdrawals in turn. */
function batchOf(pool: Array<{ id: string; locale: string | null }>, b: number, size: number): Input[] {
  const out: Input[] = [];
  for (let k = 0; k < size; k += 1) {
    const contact = pool[(b * size + k) % pool.length] as { id: string; locale: string | null };
    const pair = pairAt(b + k);
    out.push({
      contactId: contact.id,
      purpose: pair.purpose,
      channel: pair.channel,
      action: (b + k) % 2 === 0 ? 'grant' : 'withdraw',
      source: { type: 'api', ref: 'bench-append' },
      evidence: { ip: `198.51.100.${k % 256}`, userAgent },
      locale: contact.locale,
    });
  }
  return out;
}

export function copyDatabase(sourceFile: string, scratch: string): number {
  const started = performance.now();
  const source = new SqliteDatabase(sourceFile);
  source.pragma('wal_checkpoint(TRUNCATE)');
  source.close();
  copyFileSync(sourceFile, scratch);
  // Flush the copy now: otherwise the first checkpoint's fsync inside the measure writes it all.
  const fd = openSync(scratch, 'r+');
  fsyncSync(fd);
  closeSync(fd);
  return performance.now() - started;
}

export async function benchAppend(
  sourceFile: string,
  datasetContacts: number,
  sample: SampleContact[],
  options: { events: number; batch: number },
): Promise<AppendResult> {
  const scratch = join(DATA_DIR, 'scratch-append.db');
  const clean = () => {
    for (const suffix of ['', '-wal', '-shm']) rmSync(scratch + suffix, { force: true });
  };
  clean();
  const copyMs = copyDatabase(sourceFile, scratch);
  log(`  scratch copy of the database made and flushed in ${fmtSeconds(copyMs)}`);

  const batches = Math.max(1, Math.round(options.events / options.batch));
  const ctx = await createContext(loadConfig({ DATABASE_URL: `sqlite:${scratch}`, LOG_LEVEL: 'warn', SCHEDULER_INTERVAL_SECONDS: '0' }));
  const db = new SqliteDatabase(scratch);
  try {
    // The raw path's connection has the app writer's settings (src/database.ts).
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    const secret = (db.prepare("select value from settings where key = 'secret'").get() as { value: string }).value;

    // Workload 1's contacts: imported beforehand (outside the measure), two events each.
    const fresh = newContacts(secret, datasetContacts, Math.ceil((batches * options.batch) / 2));
    db.transaction(() => {
      const contact = db.prepare(
        `insert into contacts (${CONTACT_COLUMNS.join(',')}) values (${CONTACT_COLUMNS.map(() => '?').join(',')})`,
      );
      const head = db.prepare(`insert into chain_heads (${HEAD_COLUMNS.join(',')}) values (?, ?, ?)`);
      for (let r = 0; r < fresh.ids.length; r += 1) {
        contact.run(fresh.contacts.slice(r * CONTACT_COLUMNS.length, (r + 1) * CONTACT_COLUMNS.length));
        head.run(fresh.heads.slice(r * 3, r * 3 + 3));
      }
    })();
    const freshPool = fresh.ids.map((id, r) => ({ id, locale: (fresh.contacts[r * CONTACT_COLUMNS.length + 7] as string | null) ?? null }));
    // Workload 2's contacts: each at most once per batch (the sample is drawn with replacement).
    const existingPool = [...new Map(sample.map((c) => [c.id, { id: c.id, locale: c.locale }])).values()];

    const req: RequestContext = { actor: { type: 'api_key', id: 'bench', name: 'bench' } };
    const purposes = new Map((await listPurposes(ctx)).map((p) => [p.key, p]));
    const newId = createIdGenerator();
    const insert = db.prepare(`insert into consent_events (${EVENT_COLUMNS.join(',')}) values (${EVENT_COLUMNS.map(() => '?').join(',')})`);
    // The raw rows chain on their own (seq far above the service's: the unique (contact, seq) holds).
    const rawHeads = new Map<string, { seq: number; hash: string }>();
    const rawBatch = db.transaction((inputs: Input[]) => {
      const recordedAt = new Date().toISOString();
      for (const input of inputs) {
        const purpose = purposes.get(input.purpose) as Purpose;
        const action = actionsByVerb[input.action as keyof typeof actionsByVerb];
        const status = statusAfter(undefined, action, { doubleOptIn: false, expiryAfterDays: null }, 'api');
        const text = wordingText(purpose, input.locale);
        const evidence: Evidence = { ...(input.evidence ?? {}), text, textHash: sha256Hex(text), wordingHash: purpose.wordingHash };
        if (input.locale) evidence.locale = input.locale;
        const contactId = input.contactId as string;
        const head = rawHeads.get(contactId) ?? { seq: 1_000_000, hash: GENESIS_HASH };
        const row = {
          id: newId(),
          contact_id: contactId,
          seq: head.seq + 1,
          purpose_key: purpose.key,
          purpose_version: purpose.version,
          channel_key: input.channel,
          action,
          status,
          legal_basis: purpose.legalBasis,
          source_type: 'api',
          source_ref: 'bench-append',
          evidence: JSON.stringify(evidence),
          evidence_hash: evidenceHash(secret, evidence),
          expires_at: null,
          occurred_at: recordedAt,
          recorded_at: recordedAt,
          idempotency_key: null,
          request_hash: null,
          prev_hash: head.hash,
          hash: '',
        };
        row.hash = eventHash(row);
        rawHeads.set(contactId, { seq: row.seq, hash: row.hash });
        insert.run(EVENT_COLUMNS.map((c) => row[c]));
      }
    });
    const writers: Record<'service' | 'raw', (inputs: Input[]) => Promise<unknown>> = {
      service: (inputs) => recordConsents(ctx, req, inputs),
      raw: async (inputs) => rawBatch(inputs),
    };

    /** Alternating rounds (service, raw, service, …) over the same inputs, after a warm-up each. */
    const measure = async (pool: Array<{ id: string; locale: string | null }>, warmFrom: number): Promise<AppendRun> => {
      const totals = { service: { events: 0, ms: 0 }, raw: { events: 0, ms: 0 } };
      for (const write of Object.values(writers)) {
        for (let b = 0; b < WARM_BATCHES; b += 1) await write(batchOf(pool, warmFrom + b, options.batch));
      }
      const rounds = Math.max(1, Math.round(batches / BATCHES_PER_ROUND));
      let next = 0;
      for (let r = 0; r < rounds; r += 1) {
        const count = Math.round(((r + 1) * batches) / rounds) - Math.round((r * batches) / rounds);
        for (const name of ['service', 'raw'] as const) {
          const inputs = Array.from({ length: count }, (_, k) => batchOf(pool, next + k, options.batch));
          const started = performance.now();
          for (const batch of inputs) await writers[name](batch);
          totals[name].ms += performance.now() - started;
          totals[name].events += count * options.batch;
        }
        next += count;
      }
      return {
        service: (totals.service.events * 1000) / totals.service.ms,
        raw: (totals.raw.events * 1000) / totals.raw.ms,
        events: totals.service.events,
      };
    };

    const freshRun = await measure(freshPool, batches);
    log(`  contacts imported beforehand — service: ${fmtRate(freshRun.service)}, raw: ${fmtRate(freshRun.raw)}`);
    const existingRun = await measure(existingPool, batches);
    log(`  random existing contacts    — service: ${fmtRate(existingRun.service)}, raw: ${fmtRate(existingRun.raw)}`);

    // The chains the service extended still verify (the raw rows sit at seq > 1,000,000).
    const headOf = db.prepare('select * from chain_heads where contact_id = ?');
    const eventsOf = db.prepare('select * from consent_events where contact_id = ? and seq < 1000000 order by seq');
    for (const c of [...freshPool.slice(0, 50), ...existingPool.slice(0, 50)]) {
      const broken = verifyChain(secret, c.id, eventsOf.all(c.id) as StoredEvent[], headOf.get(c.id) as { seq: number; hash: string });
      if (broken) throw new Error(`bench append: the chain of ${c.id} does not verify after the service appended (${broken.reason})`);
    }
    return {
      fresh: freshRun,
      existing: existingRun,
      batch: options.batch,
      rounds: Math.max(1, Math.round(batches / BATCHES_PER_ROUND)),
      copyMs,
    };
  } finally {
    db.close();
    await ctx.db.close();
    clean();
  }
}

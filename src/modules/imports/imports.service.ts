// Importing a CRM export: the file is checked whole first (nothing is written for a file that
// cannot be imported whole), then read again as a stream, 1,000 rows a batch, each batch one
// transaction that writes its contacts, its consents as ledger events (source `import`, dated
// when collected, graded by their proof), its rejected rows and the import's counters, with how
// far it reached and a heartbeat: an import cut off by a crash is resumed after its last committed
// batch (the same file imported again, or a server's start), or marked `interrupted`.
import { once } from 'node:events';
import { accessSync, constants, createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parse } from 'csv-parse';
import type { Executor } from '../../database.ts';
import { addressKindFor } from '../../platform/addresses.ts';
import { iso } from '../../platform/clock.ts';
import { type AppContext, type RequestContext, systemRequest } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { listChannels } from '../channels/index.ts';
import { appendConsentsBulk, type BulkConsent } from '../consents/consents.bulk.ts';
import { type ContactsTable, newContactRow, updateContactRow } from '../contacts/index.ts';
import { listPurposes } from '../purposes/index.ts';
import { emitWebhookEvent, emitWebhookEvents, type WebhookEvent } from '../webhooks/index.ts';
import { type Mapping, mapColumns } from './imports.columns.ts';
import { DryRunMemory } from './imports.dry-run.ts';
import {
  claimImport,
  findCompletedImportOfFile,
  findContactsByAddresses,
  findImportRow,
  findStatesOfContacts,
  findSuppressedHashes,
  insertGenesisHeads,
  insertImportRow,
  insertNewContacts,
  insertRejectRows,
  listFieldTypes,
  listRunningImports,
  pageRejectRows,
  updateImportRow,
} from './imports.repository.ts';
import { type ImportedConsent, type ImportRow, type ProofGrade, type RowReject, readRow } from './imports.rows.ts';
import { type EncodingChoice, type FileFacts, MAX_RECORD_BYTES, scanFile, toUtf8Lines } from './imports.scan.ts';
import type { ImportsTable } from './imports.table.ts';

export type OnDuplicate = 'update' | 'skip';

export interface ImportOptions {
  /** Header name → target (`email`, `attributes.city`, `consent:newsletter:email:at`, `-` to ignore). */
  map?: Record<string, string>;
  ignoreUnknown?: boolean;
  /** A row whose email (or else phone) is already a contact: fill its empty fields (update), or leave it (skip). */
  onDuplicate?: OnDuplicate;
  dryRun?: boolean;
  /** Import a file again although an import of it completed. */
  force?: boolean;
  encoding?: EncodingChoice;
}

type Settled = Required<Omit<ImportOptions, 'map'>> & { map: Record<string, string> };

export type ImportStatus = 'running' | 'completed' | 'failed' | 'interrupted';

export interface ImportReport {
  /** Data rows the check counted (what `read` reaches at the end). */
  rows: number;
  encoding: string;
  delimiter: string;
  /** Header name → what it fills. */
  columns: Record<string, string>;
  ignored: string[];
  warnings: string[];
  /** Ledger events written (a consent with a double opt-in date on a double opt-in purpose is two). */
  events: number;
  grades: Record<ProofGrade, number>;
  /** Consents not recorded because the address is on the suppression list (RULES 15). */
  consentsSuppressed: number;
  /** Consents not recorded because Assent already holds a state for that purpose and channel. */
  consentsKept: number;
  alreadyImported?: { id: string; completedAt: string | null };
}

export interface ImportSummary {
  id: string;
  status: ImportStatus;
  dryRun: boolean;
  read: number;
  written: number;
  updated: number;
  rejected: number;
  skipped: number;
  consents: number;
  /** Set when this file was imported already: nothing was done (pass force to import it again). */
  alreadyImported: string | null;
  progress: { rows: number; percent: number };
  report: ImportReport | null;
  error: string | null;
  createdAt: string;
  completedAt: string | null;
}

export interface ImportPlan {
  facts: FileFacts;
  mapping: Mapping;
  options: Settled;
}

export type ProgressListener = (
  summary: Pick<ImportSummary, 'read' | 'written' | 'updated' | 'rejected' | 'skipped' | 'consents'> & { rows: number },
) => void;

const BATCH_ROWS = 1_000;
/**
 * The second pass reads the file in small chunks: the parser turns a whole chunk into records at
 * once, so the chunk size bounds how many records wait for the batch being written.
 */
const READ_CHUNK = 64 * 1024;

/** A running import silent for this long (no batch committed) is taken for stopped, wherever its process runs. */
const LEASE_MS = 2 * 60_000;
/** Who runs an import: this host and process (a process on this host that is gone is seen at once). */
const OWNER = `${hostname()}:${process.pid}`;
/** The imports this process is running now. */
const active = new Set<string>();

/** Whether a `running` import has lost its process: ours but not running here, gone from this host, or silent past the lease. */
function isStale(row: ImportsTable, now: Date): boolean {
  if (row.owner === OWNER) return !active.has(row.id);
  const cut = row.owner?.lastIndexOf(':') ?? -1;
  if (row.owner && cut > 0 && row.owner.slice(0, cut) === hostname()) {
    try {
      process.kill(Number(row.owner.slice(cut + 1)), 0);
    } catch (error) {
      if ((error as { code?: string }).code === 'ESRCH') return true;
    }
  }
  return !row.heartbeat_at || now.getTime() - new Date(row.heartbeat_at).getTime() > LEASE_MS;
}

const readable = (path: string | null): path is string => {
  if (!path) return false;
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};

/** An API upload's spool directory (made by importUpload): removed once its import ends. */
const spoolDir = (path: string): string | null => {
  const dir = dirname(path);
  return dirname(dir) === tmpdir() && basename(dir).startsWith('assent-import-') ? dir : null;
};

const INTERRUPTED =
  'The import stopped before its end (its process ended) and its file cannot be read again: what was committed stays; import the file again to bring in the rest (the rows already imported are not written twice)';

/** Uploads up to this size are accepted (a million-row export is ~150 MB). */
export const IMPORT_BODY_LIMIT = 2 * 1024 ** 3;

export function toSummary(row: ImportsTable): ImportSummary {
  const report = row.report ? (JSON.parse(row.report) as ImportReport) : null;
  const rows = report?.rows ?? 0;
  const done = row.status === 'completed';
  return {
    id: row.id,
    status: row.status as ImportStatus,
    dryRun: row.dry_run === 1,
    read: row.read,
    written: row.written,
    updated: row.updated,
    rejected: row.rejected,
    skipped: row.skipped,
    consents: row.consents,
    alreadyImported: report?.alreadyImported?.id ?? null,
    progress: { rows, percent: done ? 100 : rows === 0 ? 0 : Math.min(100, Math.floor((row.read / rows) * 100)) },
    report,
    error: row.error,
    createdAt: row.created_at,
    completedAt: row.completed_at,
  };
}

export async function getImport(ctx: AppContext, id: string): Promise<ImportSummary> {
  const row = await findImportRow(ctx.db.kysely, id);
  if (!row) throw new DomainError('import_not_found', `There is no import "${id}"`);
  return toSummary(row);
}

const settle = (options: ImportOptions): Settled => ({
  map: options.map ?? {},
  ignoreUnknown: options.ignoreUnknown ?? false,
  onDuplicate: options.onDuplicate ?? 'update',
  dryRun: options.dryRun ?? false,
  force: options.force ?? false,
  encoding: options.encoding ?? 'auto',
});

/** Checks a whole file (see imports.scan.ts): its facts, or `import_file_invalid`. */
export const checkImportFile = (
  source: AsyncIterable<Buffer | string>,
  options: ImportOptions = {},
  copy?: (chunk: Buffer) => Promise<void> | void,
): Promise<FileFacts> => scanFile(source, { encoding: options.encoding ?? 'auto', maxBytes: IMPORT_BODY_LIMIT }, copy);

/** Maps the checked file's header onto fields, attributes and consents (`import_columns_invalid` if it cannot). */
export async function planImport(ctx: AppContext, facts: FileFacts, options: ImportOptions = {}): Promise<ImportPlan> {
  const settled = settle(options);
  const mapping = mapColumns(
    facts.header,
    { fields: await listFieldTypes(ctx.db.kysely), purposes: await listPurposes(ctx), channels: await listChannels(ctx) },
    { map: settled.map, ignoreUnknown: settled.ignoreUnknown },
  );
  return { facts, mapping, options: settled };
}

function emptyReport(plan: ImportPlan): ImportReport {
  return {
    rows: plan.facts.rows,
    encoding: plan.facts.encoding,
    delimiter: plan.facts.delimiter,
    columns: plan.mapping.targets,
    ignored: plan.mapping.ignored,
    warnings: plan.mapping.warnings,
    events: 0,
    grades: { strong: 0, fair: 0, weak: 0 },
    consentsSuppressed: 0,
    consentsKept: 0,
  };
}

/**
 * Records the import. A file whose import completed already is a no-op (the answer is a completed
 * import that did nothing, naming the earlier one) unless `force`; otherwise the import is
 * `running` and `runImport` does the work.
 */
export async function beginImport(
  ctx: AppContext,
  plan: ImportPlan,
  sourcePath: string | null = null,
): Promise<{ summary: ImportSummary; run: boolean; resume?: ImportsTable }> {
  const now = iso(ctx.clock.now());
  // The same file and options as an import cut off by a crash: that import goes on where it stopped.
  if (!plan.options.dryRun) {
    for (const stale of await listRunningImports(ctx.db.kysely)) {
      if (stale.file_hash !== plan.facts.hash || stale.dry_run !== 0 || stale.options !== JSON.stringify(plan.options)) continue;
      if (!isStale(stale, ctx.clock.now())) continue;
      const patch = { owner: OWNER, heartbeat_at: now, source_path: sourcePath };
      if (!(await claimImport(ctx.db.kysely, stale, patch))) continue;
      ctx.logger.info({ importId: stale.id, afterLine: stale.resume_line }, 'import resumed after an interruption');
      if (stale.source_path && stale.source_path !== sourcePath) {
        const dir = spoolDir(stale.source_path);
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
      const resume = { ...stale, ...patch };
      active.add(resume.id);
      return { summary: toSummary(resume), run: true, resume };
    }
  }
  const earlier = plan.options.force ? undefined : await findCompletedImportOfFile(ctx.db.kysely, plan.facts.hash);
  const report = emptyReport(plan);
  if (earlier) report.alreadyImported = { id: earlier.id, completedAt: earlier.completed_at };
  const row: ImportsTable = {
    id: ctx.newId(),
    file_hash: plan.facts.hash,
    status: earlier ? 'completed' : 'running',
    dry_run: plan.options.dryRun ? 1 : 0,
    options: JSON.stringify(plan.options),
    read: 0,
    written: 0,
    updated: 0,
    rejected: 0,
    skipped: 0,
    consents: 0,
    report: JSON.stringify(report),
    error: null,
    created_at: now,
    completed_at: earlier ? now : null,
    owner: earlier ? null : OWNER,
    heartbeat_at: earlier ? null : now,
    source_path: earlier ? null : sourcePath,
    resume_line: 0,
    reject_seq: 0,
  };
  if (!earlier) active.add(row.id);
  await insertImportRow(ctx.db.kysely, row);
  return { summary: toSummary(row), run: !earlier };
}

/** A contact as the batch sees it: its row with what earlier rows filled in, and its consent states. */
interface Known {
  row: ContactsTable;
  attributes: Record<string, unknown> | null;
  states: Map<string, { since: string }>;
  isNew: boolean;
  patch: Partial<ContactsTable> | null;
  changed: Set<string>;
}

interface PreparedBatch {
  now: Date;
  rows: ImportRow[];
  rejects: RowReject[];
  rejectedRows: number;
  read: number;
  lastLine: number;
}

interface ToRecord {
  known: Known;
  consent: ImportedConsent;
  line: number;
}

interface BatchOutcome {
  /** Dry run: the contacts this batch found in the run's memory, with what was remembered of them. */
  recalled: Map<Known, string>;
  written: number;
  updated: number;
  skipped: number;
  rejects: RowReject[];
  created: Known[];
  patched: Known[];
  consents: ToRecord[];
  suppressed: number;
  kept: number;
}

const stateKey = (purpose: string, channel: string) => `${purpose}\u0000${channel}`;

const wireNames: Array<[keyof ContactsTable, string]> = [
  ['email', 'email'],
  ['phone', 'phone'],
  ['first_name', 'firstName'],
  ['last_name', 'lastName'],
  ['locale', 'locale'],
  ['last_purchase_at', 'lastPurchaseAt'],
  ['source', 'source'],
];

function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_UNIQUE' || /UNIQUE constraint/.test(e.message ?? '');
}

/** The keys a dry run remembers a contact by: its email and its phone. */
const memoryKeys = (row: { email: string | null; phone: string | null }): string[] => [
  ...(row.email ? [`e:${row.email}`] : []),
  ...(row.phone ? [`p:${row.phone}`] : []),
];

/**
 * A contact as a dry run remembers it between batches: what later rows of the file read of it
 * (its row, states, whether it is new or changed). The parsed attributes are read again from the
 * row, and the changed field names only serve announcements, which a dry run does not make.
 */
const rememberedForm = (k: Known): string => JSON.stringify({ row: k.row, states: [...k.states], isNew: k.isNew, patch: k.patch });

function recalledKnown(data: string): Known {
  const r = JSON.parse(data) as { row: ContactsTable; states: Array<[string, { since: string }]>; isNew: boolean; patch: Known['patch'] };
  return { row: r.row, attributes: null, states: new Map(r.states), isNew: r.isNew, patch: r.patch, changed: new Set() };
}

/** When an imported consent happened: its collection date, else its double opt-in, else now (a bare flag). */
const occurredAt = (c: ImportedConsent, now: string) => c.at ?? c.doiAt ?? now;

class ImportRun {
  readonly totals = { read: 0, written: 0, updated: 0, rejected: 0, skipped: 0, consents: 0 };
  readonly report: ImportReport;
  /**
   * Dry run only: contacts earlier batches would have written or changed, by `e:<email>` /
   * `p:<phone>` (opened by the first batch that has some to remember).
   */
  #memory: DryRunMemory | null = null;
  #seq = 0;

  constructor(
    readonly ctx: AppContext,
    readonly req: RequestContext,
    readonly id: string,
    readonly plan: ImportPlan,
    resume?: ImportsTable,
  ) {
    this.report = emptyReport(plan);
    if (resume) {
      // Where the committed batches left it: counters, report and rejects go on from there.
      const { read, written, updated, rejected, skipped, consents } = resume;
      Object.assign(this.totals, { read, written, updated, rejected, skipped, consents });
      if (resume.report) {
        const before = JSON.parse(resume.report) as ImportReport;
        Object.assign(this.report, {
          events: before.events,
          grades: before.grades,
          consentsSuppressed: before.consentsSuppressed,
          consentsKept: before.consentsKept,
        });
      }
      this.#seq = resume.reject_seq;
    }
  }

  get dryRun(): boolean {
    return this.plan.options.dryRun;
  }

  /** Ends the run's scratch memory (a dry run's): called once no batch is running. */
  close(): void {
    this.#memory?.close();
  }

  /** Reads one batch's rows and writes them (or, in a dry run, only what would be). */
  /**
   * Reads one batch's rows (validation, normalisation, address hashes: no database), so that it can
   * run while the batch before is being written.
   */
  prepare(records: Array<{ line: number; cells: string[] }>, extraRejects: RowReject[], lastLine: number): PreparedBatch {
    const now = this.ctx.clock.now();
    const rowContext = { now, defaultRegion: this.ctx.config.defaultRegion, secret: this.ctx.secret };
    const rows: ImportRow[] = [];
    const rejects: RowReject[] = [...extraRejects];
    let rejectedRows = extraRejects.length;
    for (const r of records) {
      const read = readRow(r.cells, r.line, this.plan.mapping, rowContext);
      if (read.row) rows.push(read.row);
      else {
        rejects.push(...read.rejects);
        rejectedRows += 1;
      }
    }
    return { now, rows, rejects, rejectedRows, read: records.length + extraRejects.length, lastLine };
  }

  /** Writes a prepared batch (or, in a dry run, only what it would write). */
  async batch(prepared: PreparedBatch): Promise<void> {
    const { now, rows, rejects, rejectedRows, read, lastLine } = prepared;

    const attempt = async (db: Executor, afterCommit?: Array<() => void>) => {
      const outcome = await this.#merge(db, rows, iso(now));
      const events = afterCommit ? await this.#write(db, outcome, iso(now), afterCommit) : this.#eventsOf(outcome);
      return { outcome, events };
    };
    const finish = async (db: Executor, outcome: BatchOutcome, events: number) => {
      // In file order: a row's read faults and its merge faults (a phone of another contact) interleave.
      const allRejects = [...rejects, ...outcome.rejects].sort((x, y) => x.line - y.line);
      await insertRejectRows(
        db,
        allRejects.map((r, i) => ({ import_id: this.id, seq: this.#seq + i + 1, line: r.line, column: r.column, reason: r.reason })),
      );
      const totals = this.#add(read, rejectedRows, outcome, true);
      await updateImportRow(db, this.id, {
        ...totals,
        report: JSON.stringify(this.#reportAfter(outcome, events)),
        // The batch and how far it reached commit together: a resume starts right after it.
        resume_line: lastLine,
        reject_seq: this.#seq + allRejects.length,
        heartbeat_at: iso(this.ctx.clock.now()),
      });
      return allRejects.length;
    };

    let done: { outcome: BatchOutcome; events: number; rejects: number } | undefined;
    if (this.dryRun) {
      const { outcome, events } = await attempt(this.ctx.db.kysely);
      const n = await this.ctx.db.kysely.transaction().execute((trx) => finish(trx, outcome, events));
      done = { outcome, events, rejects: n };
      this.#remember(outcome);
    } else {
      for (let tries = 0; !done; tries += 1) {
        try {
          const afterCommit: Array<() => void> = [];
          done = await this.ctx.db.kysely.transaction().execute(async (trx) => {
            const { outcome, events } = await attempt(trx, afterCommit);
            const n = await finish(trx, outcome, events);
            return { outcome, events, rejects: n };
          });
          for (const then of afterCommit) then();
        } catch (error) {
          // Another writer took one of this batch's addresses meanwhile: read the batch again.
          if (tries === 0 && isUniqueViolation(error)) continue;
          throw error;
        }
      }
    }
    this.#seq += done.rejects;
    this.#add(read, rejectedRows, done.outcome, false);
    this.report.events += done.events;
    this.report.consentsSuppressed += done.outcome.suppressed;
    this.report.consentsKept += done.outcome.kept;
    for (const c of done.outcome.consents) this.report.grades[c.consent.grade] += 1;
  }

  /** The counters with a batch added (without keeping them when `preview`). */
  #add(read: number, rejected: number, o: BatchOutcome, preview: boolean) {
    const next = {
      read: this.totals.read + read,
      written: this.totals.written + o.written,
      updated: this.totals.updated + o.updated,
      rejected: this.totals.rejected + rejected + new Set(o.rejects.map((r) => r.line)).size,
      skipped: this.totals.skipped + o.skipped,
      consents: this.totals.consents + o.consents.length,
    };
    if (!preview) Object.assign(this.totals, next);
    return next;
  }

  #reportAfter(o: BatchOutcome, events: number): ImportReport {
    const grades = { ...this.report.grades };
    for (const c of o.consents) grades[c.consent.grade] += 1;
    return {
      ...this.report,
      events: this.report.events + events,
      grades,
      consentsSuppressed: this.report.consentsSuppressed + o.suppressed,
      consentsKept: this.report.consentsKept + o.kept,
    };
  }

  #eventsOf(o: BatchOutcome): number {
    return o.consents.reduce((n, c) => n + (this.#confirmsToo(c.consent) ? 2 : 1), 0);
  }

  /** A yes with its double opt-in date, on a purpose that asks for one: `granted` then `confirmed`. */
  #confirmsToo(c: ImportedConsent): boolean {
    return c.action === 'granted' && c.doiAt !== null && c.purpose.doubleOptIn && c.channel.kind === 'email';
  }

  /** Dry run: what the earlier batches left of the contacts under these keys, one object per contact. */
  #recall(keys: string[], recalled: Map<Known, string>, byId: Map<string, Known>): Map<string, Known> {
    const out = new Map<string, Known>();
    if (!this.#memory) return out;
    for (const [key, hit] of this.#memory.find(keys)) {
      let known = byId.get(hit.id);
      if (!known) {
        known = recalledKnown(hit.data);
        byId.set(hit.id, known);
        recalled.set(known, hit.data);
      }
      out.set(key, known);
    }
    return out;
  }

  /** Dry run: remembers the contacts this batch would have written or changed. */
  #remember(o: BatchOutcome): void {
    const changed = new Map<Known, string>();
    for (const known of [...o.created, ...o.patched, ...o.consents.map((c) => c.known), ...o.recalled.keys()]) {
      if (changed.has(known)) continue;
      const data = rememberedForm(known);
      // A contact recalled but left as it was needs no writing back.
      if (data !== o.recalled.get(known)) changed.set(known, data);
    }
    if (changed.size === 0) return;
    this.#memory ??= new DryRunMemory(this.id);
    this.#memory.remember([...changed].map(([k, data]) => ({ id: k.row.id, keys: memoryKeys(k.row), data })));
  }

  async #lookup(db: Executor, rows: ImportRow[]) {
    const byEmail = new Map<string, Known>();
    const byPhone = new Map<string, Known>();
    const emails = new Set<string>();
    const phones = new Set<string>();
    const recalled = new Map<Known, string>();
    const recalledById = new Map<string, Known>();
    const remembered = this.#recall(rows.flatMap(memoryKeys), recalled, recalledById);
    for (const r of rows) {
      if (r.email) {
        const v = remembered.get(`e:${r.email}`);
        if (v) byEmail.set(r.email, v);
        else emails.add(r.email);
      }
      if (r.phone) {
        const v = remembered.get(`p:${r.phone}`);
        if (v) byPhone.set(r.phone, v);
        else phones.add(r.phone);
      }
    }
    const found = new Map<string, Known>();
    const stored = await findContactsByAddresses(db, this.ctx.db.dialect, [...emails], [...phones]);
    const alsoRemembered = this.#recall(stored.flatMap(memoryKeys), recalled, recalledById);
    for (const row of stored) {
      if (found.has(row.id)) continue;
      // A contact an earlier dry-run batch already changed is that one.
      const v = (row.email && alsoRemembered.get(`e:${row.email}`)) || (row.phone && alsoRemembered.get(`p:${row.phone}`)) || undefined;
      found.set(row.id, v ?? { row, attributes: null, states: new Map(), isNew: false, patch: null, changed: new Set() });
    }
    const fresh = [...found.values()].filter((k) => !k.isNew && k.patch === null && k.states.size === 0);
    for (const s of await findStatesOfContacts(
      db,
      fresh.map((k) => k.row.id),
    )) {
      found.get(s.contact_id)?.states.set(stateKey(s.purpose_key, s.channel_key), { since: s.since });
    }
    for (const known of found.values()) {
      if (known.row.email && emails.has(known.row.email)) byEmail.set(known.row.email, known);
      if (known.row.phone && phones.has(known.row.phone)) byPhone.set(known.row.phone, known);
    }
    const hashes = new Set<string>();
    for (const r of rows) {
      if (r.emailHash) hashes.add(r.emailHash);
      if (r.phoneHash) hashes.add(r.phoneHash);
    }
    for (const k of [...byEmail.values(), ...byPhone.values()]) {
      if (k.row.email_hash) hashes.add(k.row.email_hash);
      if (k.row.phone_hash) hashes.add(k.row.phone_hash);
    }
    const channels = [...new Set(this.plan.mapping.consents.flatMap((c) => (c.resolved ? [c.resolved.channel.key] : [])))];
    const suppressed = new Set(
      (await findSuppressedHashes(db, this.ctx.db.dialect, channels, [...hashes])).map((s) => `${s.channel_key}\u0000${s.address_hash}`),
    );
    return { byEmail, byPhone, suppressed, recalled };
  }

  /** Decides, row by row in file order, what each row does to the base. Reads only. */
  async #merge(db: Executor, rows: ImportRow[], now: string): Promise<BatchOutcome> {
    const { byEmail, byPhone, suppressed, recalled } = await this.#lookup(db, rows);
    const { mapping, options } = this.plan;
    const o: BatchOutcome = {
      recalled,
      written: 0,
      updated: 0,
      skipped: 0,
      rejects: [],
      created: [],
      patched: [],
      consents: [],
      suppressed: 0,
      kept: 0,
    };
    const patchedSet = new Set<Known>();

    for (const row of rows) {
      const byE = row.email ? byEmail.get(row.email) : undefined;
      const byP = row.phone ? byPhone.get(row.phone) : undefined;
      if (byE && byP && byE !== byP) {
        o.rejects.push({
          line: row.line,
          column: mapping.fields.phone?.name ?? '',
          reason: 'belongs to another contact than the email of this row: fix one of them',
        });
        continue;
      }
      const target = byE ?? byP;
      if (target && options.onDuplicate === 'skip') {
        o.skipped += 1;
        continue;
      }

      // What the contact would be after this row.
      let candidate: ContactsTable | undefined;
      let patch: Partial<ContactsTable> = {};
      let attributes: Record<string, unknown> | null = null;
      let filled: string[] = [];
      if (!target) {
        candidate = newContactRow(
          this.ctx,
          this.ctx.newId(),
          {
            firstName: row.values.first_name ?? null,
            lastName: row.values.last_name ?? null,
            locale: row.values.locale ?? null,
            source: row.values.source ?? null,
            attributes: row.attributes,
            ...(row.values.kind ? { kind: row.values.kind as 'person' } : {}),
            ...(row.values.lifecycle ? { lifecycle: row.values.lifecycle as 'prospect' } : {}),
          },
          { lastPurchaseAt: row.values.last_purchase_at ?? null },
          now,
        );
        // The addresses come normalised and hashed from the row: set here, not hashed twice.
        Object.assign(candidate, { email: row.email, email_hash: row.emailHash, phone: row.phone, phone_hash: row.phoneHash });
      } else {
        ({ patch, attributes, filled } = this.#fillEmpty(target, row));
      }
      const after = candidate ?? { ...(target as Known).row, ...patch };

      const states = target?.states;
      const decisions: Array<{ consent: ImportedConsent; outcome: 'record' | 'suppressed' | 'kept' }> = [];
      const rowRejects: RowReject[] = [];
      for (const consent of row.consents) {
        const kind = addressKindFor(consent.channel.kind);
        const hash = kind === 'email' ? after.email_hash : kind === 'phone' ? after.phone_hash : null;
        if (kind && !hash) {
          rowRejects.push({
            line: row.line,
            column: consent.column,
            reason: `channel "${consent.channel.key}" reaches people by ${kind}: this contact has no ${kind}`,
          });
          continue;
        }
        // A consent given for the row's address is never recorded against another one.
        const given = kind === 'email' ? row.email : kind === 'phone' ? row.phone : null;
        const held = kind === 'email' ? after.email : kind === 'phone' ? after.phone : null;
        if (given && held && given !== held) {
          rowRejects.push({
            line: row.line,
            column: consent.column,
            reason: `was given for this row's ${kind}, but the contact it matches holds another ${kind}: fix the row or the contact first`,
          });
          continue;
        }
        if (hash && suppressed.has(`${consent.channel.key}\u0000${hash}`)) {
          decisions.push({ consent, outcome: 'suppressed' });
          continue;
        }
        const state = states?.get(stateKey(consent.purpose.key, consent.channel.key));
        // An import never overrides what Assent knows, except to record a later, dated no.
        const record = !state || (consent.action !== 'granted' && consent.at !== null && consent.at > state.since);
        decisions.push({ consent, outcome: record ? 'record' : 'kept' });
      }
      if (rowRejects.length > 0) {
        o.rejects.push(...rowRejects);
        continue;
      }

      let known: Known;
      if (!target) {
        known = {
          row: candidate as ContactsTable,
          attributes: null,
          states: new Map(),
          isNew: true,
          patch: null,
          changed: new Set(),
        };
        o.created.push(known);
        o.written += 1;
        if (known.row.email) byEmail.set(known.row.email, known);
        if (known.row.phone) byPhone.set(known.row.phone, known);
      } else {
        known = target;
        if (Object.keys(patch).length > 0) {
          Object.assign(known.row, patch);
          if (attributes) known.attributes = attributes;
          if (!known.isNew) {
            known.patch = { ...(known.patch ?? {}), ...patch, updated_at: now };
            for (const [column, name] of wireNames) if (column in patch) known.changed.add(name);
            for (const key of filled) known.changed.add(`attributes.${key}`);
            if (!patchedSet.has(known)) {
              patchedSet.add(known);
              o.patched.push(known);
            }
          }
          if (patch.email) byEmail.set(patch.email, known);
          if (patch.phone) byPhone.set(patch.phone, known);
        }
      }
      let recorded = 0;
      for (const d of decisions) {
        if (d.outcome === 'suppressed') o.suppressed += 1;
        else if (d.outcome === 'kept') o.kept += 1;
        else {
          recorded += 1;
          o.consents.push({ known, consent: d.consent, line: row.line });
          const at = this.#confirmsToo(d.consent) ? (d.consent.doiAt as string) : occurredAt(d.consent, now);
          known.states.set(stateKey(d.consent.purpose.key, d.consent.channel.key), { since: at });
        }
      }
      if (target) {
        if (Object.keys(patch).length > 0 || recorded > 0) o.updated += 1;
        else o.skipped += 1;
      }
    }
    return o;
  }

  /** The empty fields of an existing contact this row fills (kind and lifecycle always hold a value: kept). */
  #fillEmpty(
    target: Known,
    row: ImportRow,
  ): { patch: Partial<ContactsTable>; attributes: Record<string, unknown> | null; filled: string[] } {
    const patch: Partial<ContactsTable> = {};
    const current = target.row;
    if (row.email && !current.email) {
      patch.email = row.email;
      patch.email_hash = row.emailHash;
    }
    if (row.phone && !current.phone) {
      patch.phone = row.phone;
      patch.phone_hash = row.phoneHash;
    }
    for (const column of ['first_name', 'last_name', 'locale', 'last_purchase_at', 'source'] as const) {
      const value = row.values[column];
      if (value !== undefined && current[column] === null) patch[column] = value;
    }
    let attributes: Record<string, unknown> | null = null;
    let missing: string[] = [];
    const keys = Object.keys(row.attributes);
    if (keys.length > 0) {
      const existing = target.attributes ?? (JSON.parse(current.attributes) as Record<string, unknown>);
      missing = keys.filter((k) => !(k in existing));
      if (missing.length > 0) {
        attributes = { ...existing };
        for (const k of missing) attributes[k] = row.attributes[k];
        patch.attributes = JSON.stringify(attributes);
      }
    }
    return { patch, attributes, filled: missing };
  }

  /** Writes a batch's outcome in the transaction; returns the ledger events written. */
  async #write(trx: Executor, o: BatchOutcome, now: string, afterCommit: Array<() => void>): Promise<number> {
    await insertNewContacts(
      this.ctx,
      trx,
      o.created.map((k) => k.row),
    );
    for (const known of o.patched) await updateContactRow(trx, known.row.id, known.patch as Partial<ContactsTable>);

    const inputs: BulkConsent[] = [];
    const source = { type: 'import', ref: this.id };
    for (const { known, consent: c, line } of o.consents) {
      const evidence: BulkConsent['evidence'] = {
        method: 'import',
        // The wording the person saw, when the file gives it: never today's text of the purpose.
        text: c.wording ?? '',
        proofGrade: c.grade,
        importLine: line,
        ...(c.ip ? { ip: c.ip } : {}),
        ...(c.at ? { collectedAt: c.at } : {}),
        ...(c.doiAt ? { doubleOptInAt: c.doiAt } : {}),
        ...(c.source ? { collectedThrough: c.source } : {}),
      };
      const base = { contact: { ...known.row, isNew: known.isNew }, purpose: c.purpose, channel: c.channel, source, evidence };
      const confirms = this.#confirmsToo(c);
      // The state the consent's last event leads carries its proof grade.
      inputs.push({ ...base, action: c.action, occurredAt: occurredAt(c, now), stateProofGrade: confirms ? null : c.grade });
      if (confirms) inputs.push({ ...base, action: 'confirmed', occurredAt: c.doiAt as string, stateProofGrade: c.grade });
    }
    const chained = new Set<string>();
    if (inputs.length > 0) {
      await appendConsentsBulk(this.ctx, trx, inputs, afterCommit);
      for (const input of inputs) chained.add(input.contact.id);
    }
    // Every contact starts a proof chain: an empty one when this batch gave it no event.
    await insertGenesisHeads(
      this.ctx,
      trx,
      o.created.flatMap((k) => (chained.has(k.row.id) ? [] : [k.row.id])),
    );

    const announcements: WebhookEvent[] = [
      ...o.created.map((k) => ({ type: 'contact.created' as const, data: { contactId: k.row.id } })),
      ...o.patched.map((k) => ({ type: 'contact.updated' as const, data: { contactId: k.row.id, fields: [...k.changed].sort() } })),
    ];
    await emitWebhookEvents(this.ctx, trx, announcements);
    return inputs.length;
  }
}

/**
 * Reads the file again (it passed the check) and imports it batch by batch. The import ends
 * `completed` (with `import.completed` announced in the same transaction) or `failed` with the
 * reason; batches committed before a failure stay, and a re-run fills in the rest.
 */
export async function runImport(
  ctx: AppContext,
  req: RequestContext,
  id: string,
  plan: ImportPlan,
  open: () => Readable,
  onProgress?: ProgressListener,
  resume?: ImportsTable,
): Promise<ImportSummary> {
  active.add(id);
  try {
    return await runImportWork(ctx, req, id, plan, open, onProgress, resume);
  } finally {
    active.delete(id);
  }
}

async function runImportWork(
  ctx: AppContext,
  req: RequestContext,
  id: string,
  plan: ImportPlan,
  open: () => Readable,
  onProgress: ProgressListener | undefined,
  resume: ImportsTable | undefined,
): Promise<ImportSummary> {
  const run = new ImportRun(ctx, req, id, plan, resume);
  /** Lines the committed batches covered (a resumed import): their records are not read again. */
  const done = resume?.resume_line ?? 0;
  const parser = parse({
    delimiter: plan.facts.delimiter,
    info: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: true,
    skip_records_with_empty_values: true,
    skip_records_with_error: true,
    max_record_size: MAX_RECORD_BYTES,
  });
  const skipped: RowReject[] = [];
  parser.on('skip', (error: Error & { lines?: number }) => {
    if ((error.lines ?? 0) <= done) return;
    skipped.push({ line: error.lines ?? 0, column: '', reason: `cannot be read as CSV: ${error.message}` });
  });
  const source = open();
  const piping = pipeline(source, toUtf8Lines(plan.facts.encoding), parser);
  piping.catch(() => undefined);
  const progress = () =>
    onProgress?.({
      ...run.totals,
      rows: plan.facts.rows,
    });
  let writing: Promise<void> = Promise.resolve();
  try {
    let header = true;
    let batch: Array<{ line: number; cells: string[] }> = [];
    let lastLine = done;
    const reached = (extra: RowReject[]) => Math.max(lastLine, ...extra.map((r) => r.line));
    for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      if (header) {
        header = false;
        const names = item.record.map((h) => h.trim());
        if (names.join('\u0000') !== plan.facts.header.join('\u0000')) {
          throw new DomainError('import_file_invalid', 'The file changed since it was checked: import it again');
        }
        continue;
      }
      if (item.info.lines <= done) continue;
      lastLine = item.info.lines;
      // The parser counts the line a record ends on; a record spanning lines started earlier.
      let line = item.info.lines;
      for (const cell of item.record) for (let i = cell.indexOf('\n'); i >= 0; i = cell.indexOf('\n', i + 1)) line -= 1;
      batch.push({ line, cells: item.record });
      if (batch.length >= BATCH_ROWS) {
        const extra = skipped.splice(0);
        // This batch is read while the one before is written; batches still commit one by one, in order.
        const prepared = run.prepare(batch, extra, reached(extra));
        batch = [];
        await writing;
        writing = run.batch(prepared).then(progress);
        // A failure surfaces at the next await of `writing` (the loop's or the end's).
        writing.catch(() => undefined);
      }
    }
    await writing;
    await piping;
    if (batch.length > 0 || skipped.length > 0) {
      const extra = skipped.splice(0);
      await run.batch(run.prepare(batch, extra, reached(extra)));
      progress();
    }
    const completedAt = iso(ctx.clock.now());
    await ctx.db.kysely.transaction().execute(async (trx) => {
      await updateImportRow(trx, id, {
        status: 'completed',
        completed_at: completedAt,
        ...run.totals,
        report: JSON.stringify(run.report),
        owner: null,
      });
      if (!plan.options.dryRun) {
        await emitWebhookEvent(ctx, trx, 'import.completed', { importId: id, status: 'completed', counts: { ...run.totals } });
      }
    });
  } catch (error) {
    parser.destroy();
    source.destroy();
    // A batch still being written ends (commits or rolls back) before the import is marked failed.
    await writing.catch(() => undefined);
    const detail =
      error instanceof DomainError
        ? error.message
        : 'The import stopped on an internal error (it has been logged); what was committed stays';
    if (!(error instanceof DomainError)) ctx.logger.error({ err: error, importId: id }, 'import failed');
    await updateImportRow(ctx.db.kysely, id, {
      status: 'failed',
      error: detail,
      completed_at: iso(ctx.clock.now()),
      ...run.totals,
      report: JSON.stringify(run.report),
      owner: null,
    });
    throw error;
  } finally {
    // No batch is running any more (a failure waited for the last one).
    run.close();
  }
  return getImport(ctx, id);
}

/** Check, plan, begin and run a file on disk (the CLI). */
export async function importContactsFile(
  ctx: AppContext,
  req: RequestContext,
  path: string,
  options: ImportOptions,
  onProgress?: ProgressListener,
): Promise<ImportSummary> {
  await closeInterrupted(ctx);
  const facts = await checkImportFile(createReadStream(path, { highWaterMark: 1 << 20 }), options);
  const plan = await planImport(ctx, facts, options);
  const { summary, run, resume } = await beginImport(ctx, plan, resolve(path));
  if (!run) return summary;
  return runImport(ctx, req, summary.id, plan, () => createReadStream(path, { highWaterMark: READ_CHUNK }), onProgress, resume);
}

/**
 * An upload (the API): copied to a spool file while it is checked, so the import can read it
 * again after the answer; the spool file goes when the import ends. Resolves once the import is
 * recorded, with the work still running in the background (`ctx.background`).
 */
export async function importUpload(
  ctx: AppContext,
  req: RequestContext,
  body: AsyncIterable<Buffer | string>,
  options: ImportOptions,
): Promise<ImportSummary> {
  const dir = mkdtempSync(join(tmpdir(), 'assent-import-'));
  const path = join(dir, 'upload.csv');
  const drop = () => rmSync(dir, { recursive: true, force: true });
  let plan: ImportPlan;
  let begun: Awaited<ReturnType<typeof beginImport>>;
  try {
    const spool = createWriteStream(path);
    // Its errors surface through write/close; opened first, so a refusal can close it cleanly.
    spool.on('error', () => undefined);
    await once(spool, 'open');
    try {
      // A refused upload is left unread, not destroyed: the client still gets the answer saying why.
      const source = body instanceof Readable ? body.iterator({ destroyOnReturn: false }) : body;
      const facts = await checkImportFile(source, options, async (chunk) => {
        if (!spool.write(chunk)) await once(spool, 'drain');
      });
      spool.end();
      await once(spool, 'close');
      plan = await planImport(ctx, facts, options);
    } finally {
      if (!spool.closed) {
        const closed = new Promise<void>((resolve) => spool.once('close', () => resolve()));
        spool.destroy();
        await closed;
      }
    }
    begun = await beginImport(ctx, plan, path);
  } catch (error) {
    drop();
    throw error;
  }
  if (!begun.run) {
    drop();
    return begun.summary;
  }
  const work = runImport(
    ctx,
    req,
    begun.summary.id,
    plan,
    () => createReadStream(path, { highWaterMark: READ_CHUNK }),
    undefined,
    begun.resume,
  )
    .catch(() => undefined)
    .finally(() => {
      drop();
      ctx.background.delete(work);
    });
  ctx.background.add(work);
  return begun.summary;
}

/**
 * Marks `interrupted` the stale running imports whose file cannot be read again (their process
 * is gone: nothing can finish them). Those whose file is still there wait to be resumed.
 */
export async function closeInterrupted(ctx: AppContext): Promise<number> {
  let closed = 0;
  for (const stale of await listRunningImports(ctx.db.kysely)) {
    if (!isStale(stale, ctx.clock.now()) || (stale.dry_run === 0 && readable(stale.source_path))) continue;
    const patch: Partial<ImportsTable> = {
      status: 'interrupted',
      error: stale.dry_run === 1 ? 'The dry run stopped before its end (its process ended): run it again' : INTERRUPTED,
      completed_at: iso(ctx.clock.now()),
      owner: null,
    };
    if (await claimImport(ctx.db.kysely, stale, patch)) {
      ctx.logger.warn({ importId: stale.id }, 'a running import whose process is gone was marked interrupted');
      closed += 1;
    }
  }
  return closed;
}

/**
 * At a server's start: stale running imports go on from their last committed batch when their
 * file is still there and unchanged (in the background), and are marked `interrupted` otherwise.
 */
export async function recoverImports(ctx: AppContext): Promise<void> {
  await closeInterrupted(ctx);
  for (const stale of await listRunningImports(ctx.db.kysely)) {
    if (!isStale(stale, ctx.clock.now()) || !readable(stale.source_path)) continue;
    const path = stale.source_path;
    const options = JSON.parse(stale.options) as Settled;
    const spool = spoolDir(path);
    let plan: ImportPlan;
    try {
      const facts = await checkImportFile(createReadStream(path, { highWaterMark: 1 << 20 }), options);
      if (facts.hash !== stale.file_hash) throw new DomainError('import_file_invalid', 'The file changed since the import began');
      plan = await planImport(ctx, facts, options);
    } catch (error) {
      const reason = error instanceof DomainError ? error.message : 'it cannot be read';
      const patch = { status: 'interrupted', error: `${INTERRUPTED} (${reason})`, completed_at: iso(ctx.clock.now()), owner: null };
      if (await claimImport(ctx.db.kysely, stale, patch)) {
        ctx.logger.warn({ importId: stale.id }, 'a running import whose process is gone was marked interrupted');
        if (spool) rmSync(spool, { recursive: true, force: true });
      }
      continue;
    }
    const patch = { owner: OWNER, heartbeat_at: iso(ctx.clock.now()) };
    if (!(await claimImport(ctx.db.kysely, stale, patch))) continue;
    ctx.logger.info({ importId: stale.id, afterLine: stale.resume_line }, 'import resumed after an interruption');
    active.add(stale.id);
    const open = () => createReadStream(path, { highWaterMark: READ_CHUNK });
    const work = runImport(ctx, systemRequest('import-recovery'), stale.id, plan, open, undefined, { ...stale, ...patch })
      .catch(() => undefined)
      .finally(() => {
        if (spool) rmSync(spool, { recursive: true, force: true });
        ctx.background.delete(work);
      });
    ctx.background.add(work);
  }
}

/** The rejected rows as CSV (`line,column,reason`), page by page: constant memory whatever their number. */
export async function* rejectsCsv(ctx: AppContext, id: string): AsyncGenerator<string> {
  yield 'line,column,reason\r\n';
  let after = 0;
  for (;;) {
    const page = await pageRejectRows(ctx.db.kysely, id, after, 1_000);
    if (page.length === 0) return;
    yield page.map((r) => `${r.line},${csvCell(r.column)},${csvCell(r.reason)}\r\n`).join('');
    after = (page.at(-1) as { seq: number }).seq;
  }
}

/** RFC 4180 quoting, and a leading quote on what a spreadsheet would run as a formula. */
function csvCell(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

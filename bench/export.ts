// Exporting the 1,000,000-contact database: the real `assent export contacts --format csv|jsonl`
// (bin/assent.js in a child process, writing to its standard output) against a bare
// better-sqlite3 baseline in another child process (`.iterate()` over the same rows, merged with
// their consent states, writing the same columns in the same format). Both outputs are piped to
// this process, which counts and fingerprints them line by line and throws them away (a
// /dev/null-like sink), while each child's resident memory is sampled from /proc. Reported: rows/s
// and peak RSS, side by side; the issue sets no ratio target, only flat memory.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import SqliteDatabase from 'better-sqlite3';
import { fmtInt, fmtSeconds, log } from './common.ts';
import type { Measure } from './report.ts';

export interface ExportOptions {
  formats: Array<'csv' | 'jsonl'>;
  /** Alternating rounds per format (raw, ours; ours, raw; …). */
  rounds: number;
}

/** What the raw child needs to write the same columns: the layout the export derives from the configuration. */
interface RawSpec {
  file: string;
  format: 'csv' | 'jsonl';
  columns: string[];
  fieldKeys: string[];
  pairs: Array<{ purpose: string; channel: string; doubleOptIn: boolean }>;
  /** `purpose@version` → locale ('' for none) → wording text. */
  wordings: Record<string, Record<string, string>>;
  nowMs: number;
  formerAfterDays: number;
}

export interface ExportRun {
  side: 'ours' | 'raw';
  format: 'csv' | 'jsonl';
  rows: number;
  bytes: number;
  /** Spawn to exit. */
  totalMs: number;
  /** First byte to last byte of output. */
  streamMs: number;
  rate: number;
  /** VmHWM of the child (kernel's high-water mark), MB. */
  peakMb: number;
  /** RSS when 20% and 90% of the output had arrived, MB. */
  rssAt20Mb: number;
  rssAt90Mb: number;
  /** CPU time of the child per wall second while streaming (1 = a whole core). */
  cpuShare: number;
  /** A digest of each line (first 32 bits of its MD5): compared between the two sides. */
  lineHashes: Uint32Array;
}

export interface ExportResult {
  contacts: number;
  rounds: number;
  formats: Array<{
    format: 'csv' | 'jsonl';
    ours: ExportRun[];
    raw: ExportRun[];
    /** Lines that differ between the last ours and the last raw output. */
    differingLines: number;
  }>;
}

const MB = 1024 * 1024;
const runTs = fileURLToPath(new URL('../bin/run-ts.js', import.meta.url));
const assentBin = fileURLToPath(new URL('../bin/assent.js', import.meta.url));
const thisFile = fileURLToPath(import.meta.url);
const RAW_CHILD_FLAG = '--raw-export-child';
const SPEC_VARIABLE = 'BENCH_EXPORT_RAW_SPEC';

/** VmRSS and VmHWM (bytes) and CPU ticks of a live process; undefined once it is gone. */
function procSample(pid: number): { rss: number; hwm: number; cpuTicks: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    // utime and stime are fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the name.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { rss: kb('VmRSS'), hwm: kb('VmHWM'), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

/** Runs one child writing an export to its stdout; counts and fingerprints the lines as they arrive. */
async function measureChild(side: 'ours' | 'raw', format: 'csv' | 'jsonl', child: ChildProcess, expectedRows: number): Promise<ExportRun> {
  const started = performance.now();
  const pid = child.pid as number;
  const stdout = child.stdout as NonNullable<ChildProcess['stdout']>;
  // Expected output size is unknown beforehand: progress is measured in lines (rows + header).
  const lineHashes = new Uint32Array(expectedRows + 2);
  let lines = 0;
  let bytes = 0;
  let firstByte = 0;
  let lastByte = 0;
  let peak = 0;
  let rssAt20 = 0;
  let rssAt90 = 0;
  let cpuAtFirst = 0;
  let lastCpu = 0;
  const take = () => {
    const s = procSample(pid);
    if (!s) return;
    peak = Math.max(peak, s.hwm);
    lastCpu = s.cpuTicks;
    if (!rssAt20 && lines >= expectedRows * 0.2) rssAt20 = s.rss;
    if (!rssAt90 && lines >= expectedRows * 0.9) rssAt90 = s.rss;
  };
  const timer = setInterval(take, 50);
  // The line being read, hashed natively (a byte loop in JavaScript would make this process the bottleneck).
  let line = createHash('md5');
  stdout.on('data', (chunk: Buffer) => {
    if (bytes === 0) {
      firstByte = performance.now();
      cpuAtFirst = procSample(pid)?.cpuTicks ?? 0;
    }
    bytes += chunk.length;
    lastByte = performance.now();
    let start = 0;
    for (let end = chunk.indexOf(10, start); end !== -1; end = chunk.indexOf(10, start)) {
      line.update(chunk.subarray(start, end));
      if (lines < lineHashes.length) lineHashes[lines] = line.digest().readUInt32LE(0);
      lines += 1;
      line = createHash('md5');
      start = end + 1;
    }
    if (start < chunk.length) line.update(chunk.subarray(start));
  });
  const code = await new Promise<number | null>((done, fail) => {
    child.once('error', fail);
    child.once('exit', (c) => done(c));
  });
  clearInterval(timer);
  if (code !== 0) throw new Error(`bench export: the ${side} ${format} child exited with ${code}`);
  const rows = lines - (format === 'csv' ? 1 : 0);
  if (rows !== expectedRows) throw new Error(`bench export: ${side} ${format} wrote ${rows} rows, expected ${expectedRows}`);
  const streamMs = lastByte - firstByte;
  return {
    side,
    format,
    rows,
    bytes,
    totalMs: performance.now() - started,
    streamMs,
    rate: (rows * 1000) / streamMs,
    peakMb: peak / MB,
    rssAt20Mb: rssAt20 / MB,
    rssAt90Mb: rssAt90 / MB,
    // Clock ticks are 1/100 s on Linux.
    cpuShare: ((lastCpu - cpuAtFirst) * 10) / streamMs,
    lineHashes: lineHashes.subarray(0, lines),
  };
}

function runOurs(file: string, format: 'csv' | 'jsonl', rows: number): Promise<ExportRun> {
  const child = spawn(process.execPath, [assentBin, 'export', 'contacts', '--format', format], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, DATABASE_URL: `sqlite:${file}`, LOG_LEVEL: 'warn' },
  });
  return measureChild('ours', format, child, rows);
}

function runRaw(spec: RawSpec, rows: number): Promise<ExportRun> {
  const child = spawn(process.execPath, [runTs, thisFile, RAW_CHILD_FLAG], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, [SPEC_VARIABLE]: JSON.stringify(spec) },
  });
  return measureChild('raw', spec.format, child, rows);
}

/** The column layout, read from the configuration as the export reads it (not timed). */
async function rawSpecs(file: string, formats: Array<'csv' | 'jsonl'>): Promise<RawSpec[]> {
  const { closeContext, createContext } = await import('../src/boot.ts');
  const { loadConfig } = await import('../src/config.ts');
  const { listChannels } = await import('../src/modules/channels/index.ts');
  const { listPurposes, wordingText } = await import('../src/modules/purposes/index.ts');
  const { profileColumns } = await import('../src/modules/exports/exports.service.ts');
  const ctx = await createContext(loadConfig({ DATABASE_URL: `sqlite:${file}`, LOG_LEVEL: 'warn', SCHEDULER_INTERVAL_SECONDS: '0' }));
  try {
    const channels = new Map((await listChannels(ctx)).map((c) => [c.key, c]));
    const pairs = (await listPurposes(ctx)).flatMap((p) =>
      p.channels.flatMap((key) => {
        const channel = channels.get(key);
        return channel ? [{ purpose: p.key, channel: key, doubleOptIn: p.doubleOptIn && channel.kind === 'email' }] : [];
      }),
    );
    const fieldKeys = (await ctx.db.kysely.selectFrom('fields').select('key').orderBy('key').execute()).map((f) => f.key);
    const wordings: RawSpec['wordings'] = {};
    for (const v of await ctx.db.kysely.selectFrom('purpose_versions').selectAll().execute()) {
      const version = { title: JSON.parse(v.title), description: JSON.parse(v.description) };
      wordings[`${v.purpose_key}@${v.version}`] = Object.fromEntries(['', 'fr', 'en'].map((l) => [l, wordingText(version, l || null)]));
    }
    const suffixes = ['', ':at', ':source', ':wording', ':ip', ':doi_at'];
    const columns = [
      ...profileColumns,
      ...fieldKeys,
      ...pairs.flatMap(({ purpose, channel }) => suffixes.map((s) => `consent:${purpose}:${channel}${s}`)),
    ];
    return formats.map((format) => ({
      file,
      format,
      columns,
      fieldKeys,
      pairs,
      wordings,
      nowMs: ctx.clock.now().getTime(),
      formerAfterDays: ctx.config.formerCustomerAfterDays,
    }));
  } finally {
    await closeContext(ctx);
  }
}

export async function benchExport(file: string, contacts: number, options: ExportOptions): Promise<ExportResult> {
  const probe = new SqliteDatabase(file, { readonly: true });
  const rows = (probe.prepare('select count(*) as n from contacts where erased_at is null').get() as { n: number }).n;
  probe.close();
  const specs = await rawSpecs(file, options.formats);
  const result: ExportResult = { contacts, rounds: options.rounds, formats: [] };
  for (const spec of specs) {
    const entry: ExportResult['formats'][number] = { format: spec.format, ours: [], raw: [], differingLines: 0 };
    for (let r = 0; r < options.rounds; r += 1) {
      const order: Array<'raw' | 'ours'> = r % 2 === 0 ? ['raw', 'ours'] : ['ours', 'raw'];
      for (const side of order) {
        const run = side === 'ours' ? await runOurs(file, spec.format, rows) : await runRaw(spec, rows);
        entry[side].push(run);
        log(
          `  ${spec.format} ${side.padEnd(4)}: ${fmtInt(run.rows)} rows, ${(run.bytes / MB).toFixed(0)} MB in ${fmtSeconds(run.streamMs)} (${fmtInt(run.rate)} rows/s; ${fmtSeconds(run.totalMs)} from spawn to exit), peak RSS ${run.peakMb.toFixed(0)} MB (RSS ${run.rssAt20Mb.toFixed(0)} MB at 20% of the rows, ${run.rssAt90Mb.toFixed(0)} MB at 90%), ${run.cpuShare.toFixed(2)} of a core`,
        );
      }
    }
    const ours = entry.ours.at(-1) as ExportRun;
    const raw = entry.raw.at(-1) as ExportRun;
    for (let i = 0; i < ours.lineHashes.length; i += 1) if (ours.lineHashes[i] !== raw.lineHashes[i]) entry.differingLines += 1;
    // The lifecycle column depends on the time of the run (a purchase older than the setting makes
    // a former customer): runs seconds apart may differ on a handful of contacts, never more.
    if (entry.differingLines > Math.max(10, rows / 10_000)) {
      throw new Error(`bench export: the ${spec.format} outputs of ours and raw differ on ${entry.differingLines} lines`);
    }
    for (const run of [...entry.ours, ...entry.raw]) run.lineHashes = new Uint32Array(0);
    result.formats.push(entry);
  }
  return result;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

/** Growth of RSS between 20% and 90% of the rows that still counts as flat. */
const FLAT_MB = 32;
const PEAK_LIMIT_MB = 300;

export function exportMeasures(r: ExportResult): Measure[] {
  return r.formats.flatMap((f) => {
    const oursPeak = Math.max(...f.ours.map((x) => x.peakMb));
    const growth = Math.max(...f.ours.map((x) => x.rssAt90Mb - x.rssAt20Mb));
    return [
      {
        name: `assent export contacts --format ${f.format}, ${fmtInt(r.contacts)} contacts (streamed, median)`,
        ours: median(f.ours.map((x) => x.rate)),
        unit: 'rows/s',
        baselineName: 'raw better-sqlite3 .iterate()',
        baseline: median(f.raw.map((x) => x.rate)),
        target: 'report only (no target)',
        pass: null,
      },
      {
        name: `peak RSS of that export (${f.format}); RSS change from 20% to 90% of the rows ${growth >= 0 ? '+' : '−'}${Math.abs(growth).toFixed(0)} MB`,
        ours: oursPeak,
        unit: 'MB',
        baselineName: 'raw child',
        baseline: Math.max(...f.raw.map((x) => x.peakMb)),
        target: `flat (< ${FLAT_MB} MB growth), < ${PEAK_LIMIT_MB} MB`,
        pass: oursPeak < PEAK_LIMIT_MB && growth < FLAT_MB,
      },
    ];
  });
}

export function exportDetails(r: ExportResult): string[] {
  return [
    `Export: the real CLI (\`node bin/assent.js export contacts --format F\`, openExport → Readable → stdout) and a bare better-sqlite3 baseline each run in their own child process (both load tsx), ${r.rounds} alternating round(s) per format (raw first); each writes to a pipe read by the bench process, which splits the lines, fingerprints each (MD5, natively) and discards them. Rows/s are counted from the first to the last byte of output; peak RSS is the child's VmHWM from /proc, sampled every 50 ms, with its RSS when 20% and 90% of the rows had arrived to show whether memory grows with the export.`,
    'Ours writes each page as one string chunk (the stream has an encoding): with a Buffer made per page (before issue 6), the dead pages waited for a full garbage collection and the RSS of ours saw-toothed between about 180 and 310 MB over the CSV export, on this machine.',
    'Raw baseline: three read-only connections — `.iterate()` over `contacts` (erased_at is null, in id order) merged with `.iterate()` over `consent_states` left-joined to the event that set each state (in contact order), plus the double opt-in confirmations when any state is confirmed — writing the same columns (profile, declared attributes, six columns per purpose × channel), CSV quoted as RFC 4180 or JSON Lines, 1,000 rows a write with backpressure. Ours reads 1,000 contacts a page by keyset and their states by id range (two to three queries a page).',
    ...r.formats.map((f) => {
      const o = f.ours.at(-1) as ExportRun;
      const w = f.raw.at(-1) as ExportRun;
      return `${f.format}: ours ${f.ours.map((x) => fmtInt(x.rate)).join(', ')} rows/s, raw ${f.raw.map((x) => fmtInt(x.rate)).join(', ')} rows/s (ratio ${(median(f.ours.map((x) => x.rate)) / median(f.raw.map((x) => x.rate))).toFixed(2)}×); ${(o.bytes / MB).toFixed(0)} MB of output; ours ${fmtSeconds(o.totalMs)} from spawn to exit (${fmtSeconds(o.streamMs)} streaming, ${o.cpuShare.toFixed(2)} of a core), raw ${fmtSeconds(w.totalMs)} (${fmtSeconds(w.streamMs)}, ${w.cpuShare.toFixed(2)} of a core). RSS of ours ${o.rssAt20Mb.toFixed(0)} MB at 20% of the rows, ${o.rssAt90Mb.toFixed(0)} MB at 90%, peak ${o.peakMb.toFixed(0)} MB; raw ${w.rssAt20Mb.toFixed(0)} → ${w.rssAt90Mb.toFixed(0)} MB, peak ${w.peakMb.toFixed(0)} MB. The two outputs are ${f.differingLines === 0 ? 'identical line for line' : `identical but for ${f.differingLines} line(s) (lifecycle: a last purchase crossing the former-customer age between the two runs)`}.`;
    }),
  ];
}

// ——— The raw child ———

function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

interface RawState {
  contact_id: string;
  purpose_key: string;
  channel_key: string;
  status: string;
  since: string;
  confirmed: number;
  purpose_version: number;
  source_type: string | null;
  evidence: string | null;
}

async function rawExport(spec: RawSpec): Promise<void> {
  const open = () => {
    const db = new SqliteDatabase(spec.file, { readonly: true });
    db.pragma('busy_timeout = 5000');
    return db;
  };
  const [contactsDb, statesDb, confirmDb] = [open(), open(), open()];
  const contacts = contactsDb.prepare('select * from contacts where erased_at is null order by id').iterate() as IterableIterator<
    Record<string, string | null>
  >;
  const states = statesDb
    .prepare(
      `select s.contact_id, s.purpose_key, s.channel_key, s.status, s.since, s.confirmed, s.purpose_version, e.source_type, e.evidence
       from consent_states s left join consent_events e on e.id = s.last_event_id order by s.contact_id`,
    )
    .iterate() as IterableIterator<RawState>;
  const anyConfirmed = confirmDb.prepare('select 1 from consent_states where confirmed = 1 limit 1').get() !== undefined;
  const confirmations = anyConfirmed
    ? (confirmDb
        .prepare(
          `select contact_id, purpose_key, channel_key, max(occurred_at) as confirmed_at from consent_events
           where status = 'granted' and (action in ('confirmed', 'renewed') or source_type in ('double_opt_in', 'campaign'))
           group by contact_id, purpose_key, channel_key order by contact_id`,
        )
        .iterate() as IterableIterator<{ contact_id: string; purpose_key: string; channel_key: string; confirmed_at: string }>)
    : undefined;
  let nextState = states.next();
  let nextConfirmation = confirmations?.next();
  const formerMs = spec.formerAfterDays * 86_400_000;
  const csv = spec.format === 'csv';
  const out = process.stdout;
  const write = (text: string) => (out.write(text) ? undefined : new Promise<void>((done) => out.once('drain', done)));
  let chunk = csv ? `${spec.columns.map(csvField).join(',')}\r\n` : '';
  let inChunk = 0;
  for (const c of contacts) {
    const id = c.id as string;
    const mine = new Map<string, RawState>();
    while (!nextState.done && (nextState.value as RawState).contact_id <= id) {
      const s = nextState.value as RawState;
      if (s.contact_id === id) mine.set(`${s.purpose_key}\u0000${s.channel_key}`, s);
      nextState = states.next();
    }
    const confirmed = new Map<string, string>();
    while (confirmations && nextConfirmation && !nextConfirmation.done && nextConfirmation.value.contact_id <= id) {
      const k = nextConfirmation.value;
      if (k.contact_id === id && k.confirmed_at) confirmed.set(`${k.purpose_key}\u0000${k.channel_key}`, k.confirmed_at);
      nextConfirmation = confirmations.next();
    }
    const lastPurchase = c.last_purchase_at;
    const row: Record<string, unknown> = {
      email: c.email,
      phone: c.phone,
      firstName: c.first_name,
      lastName: c.last_name,
      lifecycle: lastPurchase ? (spec.nowMs - Date.parse(lastPurchase) > formerMs ? 'former_customer' : 'customer') : c.lifecycle,
      lastPurchaseAt: lastPurchase,
      kind: c.kind,
      source: c.source,
    };
    const attributes = JSON.parse(c.attributes as string) as Record<string, unknown>;
    for (const key of spec.fieldKeys) row[key] = attributes[key] ?? null;
    for (const { purpose, channel, doubleOptIn } of spec.pairs) {
      const base = `consent:${purpose}:${channel}`;
      const s = mine.get(`${purpose}\u0000${channel}`);
      const value = !s
        ? null
        : s.status === 'granted'
          ? 'yes'
          : s.status === 'refused'
            ? 'no'
            : s.status === 'withdrawn' || s.status === 'objected'
              ? 'withdrawn'
              : s.status === 'pending' && doubleOptIn
                ? 'yes'
                : null;
      if (!s || value === null) {
        for (const suffix of ['', ':at', ':source', ':wording', ':ip', ':doi_at']) row[`${base}${suffix}`] = null;
        continue;
      }
      let evidence: Record<string, unknown> = {};
      try {
        evidence = s.evidence ? (JSON.parse(s.evidence) as Record<string, unknown>) : {};
      } catch {}
      const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
      const wording = spec.wordings[`${purpose}@${Number(s.purpose_version)}`];
      row[base] = value;
      row[`${base}:at`] = s.since;
      row[`${base}:source`] = s.source_type ?? null;
      row[`${base}:wording`] = text(evidence.text) ?? (wording ? (wording[c.locale ?? ''] ?? wording[''] ?? null) : null);
      row[`${base}:ip`] = text(evidence.ip);
      row[`${base}:doi_at`] =
        Number(s.confirmed) === 1 && s.status === 'granted'
          ? (confirmed.get(`${purpose}\u0000${channel}`) ?? text(evidence.doiAt) ?? text(evidence.doi_at))
          : null;
    }
    chunk += csv ? `${spec.columns.map((k) => csvField(row[k])).join(',')}\r\n` : `${JSON.stringify(row)}\n`;
    inChunk += 1;
    if (inChunk === 1_000) {
      await write(chunk);
      chunk = '';
      inChunk = 0;
    }
  }
  if (chunk) await write(chunk);
  await new Promise<void>((done) => out.end(done));
  for (const db of [contactsDb, statesDb, confirmDb]) db.close();
}

const entry = process.argv[1] ? pathToFileURL(resolve(process.argv[1])).href : '';
if (entry === import.meta.url && process.argv.includes(RAW_CHILD_FLAG)) {
  rawExport(JSON.parse(process.env[SPEC_VARIABLE] ?? '{}') as RawSpec).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}

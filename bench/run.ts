// `npm run bench` — builds (or reuses) the bench database, then measures, each beside a raw
// baseline taken in the same run: decide() in process, GET /v1/decisions over HTTP, and ledger
// appends through the service; mail and forms; campaign launch, campaign mail and segment counts.
// Prints a table and writes bench/RESULTS.md (a partial run of launch, campaign-mail or
// segment-count writes its own block there, under "Separate runs").
//
//   npm run bench [-- --rebuild] [-- --only=decide,http,append,mail,form,launch,campaign-mail,segment-count,import,export]
//   BENCH_CONTACTS=50000 npm run bench      (a quick run on a smaller database)
//
// Environment: BENCH_CONTACTS (1000000), BENCH_SECONDS (3, per in-process measure),
// BENCH_HTTP_SECONDS (10), BENCH_HTTP_CONNECTIONS (10), BENCH_APPEND_EVENTS (100000),
// BENCH_APPEND_BATCH (500), BENCH_MAILS (4000), BENCH_CAMPAIGN_MAILS (5000),
// BENCH_LAUNCH_ROUNDS (2, per segment), BENCH_COUNT_ROUNDS (5, per segment), BENCH_IMPORT_ROWS (1000000),
// BENCH_IMPORT_PG (0: SQLite only; PostgreSQL from DATABASE_URL, else postgres://127.0.0.1:5432/test),
// BENCH_EXPORT_ROUNDS (1, per format).
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createContext } from '../src/boot.ts';
import { loadConfig } from '../src/config.ts';
import { createKey } from '../src/modules/auth/index.ts';
import { type AppendResult, benchAppend } from './append.ts';
import { benchCampaignMail } from './campaign-mail.ts';
import { fmtInt, fmtSeconds, log } from './common.ts';
import { ensureDataset } from './dataset.ts';
import { benchDecide, type DecideResult } from './decide.ts';
import { benchExport, exportDetails, exportMeasures } from './export.ts';
import { benchFormPost } from './form-post.ts';
import { benchHttp, type HttpResult } from './http.ts';
import { benchImport, importDetails, importMeasures } from './import.ts';
import { benchLaunch, launchDetails, launchMeasures } from './launch.ts';
import { benchMail } from './mail.ts';
import { type Measure, machine, printTable, targetsMet, upsertPartSection, writeResults } from './report.ts';
import { sampleContacts } from './sample.ts';
import { benchSegmentCount, segmentCountDetails, segmentCountMeasures } from './segment-count.ts';

function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(n) || n < min) {
    console.error(`${name} must be a whole number of at least ${min} (got "${raw}")`);
    process.exit(2);
  }
  return n;
}

const args = process.argv.slice(2);
const rebuild = args.includes('--rebuild');
const onlyArg = args.find((a) => a.startsWith('--only='));
const allParts = ['decide', 'http', 'append', 'mail', 'form', 'launch', 'campaign-mail', 'segment-count', 'import', 'export'];
const only = new Set((onlyArg ? onlyArg.slice('--only='.length) : allParts.join(',')).split(','));
const unknownParts = [...only].filter((part) => !allParts.includes(part));
if (unknownParts.length > 0) {
  console.error(`--only: unknown part ${unknownParts.join(', ')} (parts: ${allParts.join(', ')})`);
  process.exit(2);
}
const settings = {
  contacts: envInt('BENCH_CONTACTS', 1_000_000, 1_000),
  seconds: envInt('BENCH_SECONDS', 3, 1),
  httpSeconds: envInt('BENCH_HTTP_SECONDS', 10, 1),
  httpConnections: envInt('BENCH_HTTP_CONNECTIONS', 10, 1),
  appendEvents: envInt('BENCH_APPEND_EVENTS', 100_000, 1_000),
  appendBatch: envInt('BENCH_APPEND_BATCH', 500, 1),
  campaignMails: envInt('BENCH_CAMPAIGN_MAILS', 5_000, 100),
  launchRounds: envInt('BENCH_LAUNCH_ROUNDS', 2, 1),
  countRounds: envInt('BENCH_COUNT_ROUNDS', 5, 1),
};
/** Parts whose partial runs write their own block in bench/RESULTS.md, with its title. */
const separateParts: Record<string, string> = {
  decide: `decide — decide() in process on ${fmtInt(settings.contacts)} contacts`,
  http: `http — GET /v1/decisions over HTTP on ${fmtInt(settings.contacts)} contacts vs a bare Fastify route`,
  append: `append — ledger append through recordConsents vs a raw better-sqlite3 insert, on ${fmtInt(settings.contacts)} contacts`,
  launch: `launch — a re-permission campaign launched on ${fmtInt(settings.contacts)} contacts (audience frozen, step 1 queued)`,
  'campaign-mail': 'campaign-mail — campaign deliveries to a local SMTP sink',
  'segment-count': `segment-count — counting a segment with a consent condition on ${fmtInt(settings.contacts)} contacts`,
  export: `export — streaming the ${fmtInt(settings.contacts)} contacts out (assent export contacts, CSV and JSON Lines)`,
  import: `import — a CSV export of ${fmtInt(envInt('BENCH_IMPORT_ROWS', 1_000_000, 1_000))} contacts with 2 consent columns (assent import contacts)`,
};
const envShown = [
  'BENCH_CONTACTS',
  'BENCH_MAILS',
  'BENCH_SECONDS',
  'BENCH_HTTP_SECONDS',
  'BENCH_HTTP_CONNECTIONS',
  'BENCH_APPEND_EVENTS',
  'BENCH_APPEND_BATCH',
  'BENCH_CAMPAIGN_MAILS',
  'BENCH_LAUNCH_ROUNDS',
  'BENCH_COUNT_ROUNDS',
  'BENCH_EXPORT_ROUNDS',
  'BENCH_IMPORT_ROWS',
  'BENCH_IMPORT_PG',
  'BENCH_PROFILE',
]
  .filter((name) => process.env[name])
  .map((name) => `${name}=${process.env[name]}`);
const command = [...envShown, 'npm run bench', ...(args.length > 0 ? ['--', ...args] : [])].join(' ');

const startedAt = new Date();
const started = performance.now();
const loadAtStart = loadavg()[0] as number;
const m = machine();
log(`Assent bench — ${m.cpu}, ${m.cores} cores, ${m.memory.split(' (')[0]}, Node.js ${m.node}; load average ${loadAtStart.toFixed(2)}`);

// The issue-4 benches and campaign-mail need no dataset: they build their own small databases.
let mail: Awaited<ReturnType<typeof benchMail>> | undefined;
let form: Awaited<ReturnType<typeof benchFormPost>> | undefined;
let campaignMail: Awaited<ReturnType<typeof benchCampaignMail>> | undefined;
if (only.has('mail')) {
  log('\nMail: dispatch through the pooled SMTP transport vs bare nodemailer, to a local sink');
  mail = await benchMail({ messages: envInt('BENCH_MAILS', 4_000, 100) });
}
if (only.has('form')) {
  log(`\nPOST /f/{key} under autocannon (${settings.httpConnections} connections × ${settings.httpSeconds} s)`);
  form = await benchFormPost({ connections: settings.httpConnections, seconds: settings.httpSeconds });
}
if (only.has('campaign-mail')) {
  log('\nCampaign mail: dispatchDeliveries through the pooled SMTP transport vs bare nodemailer, to a local sink');
  campaignMail = await benchCampaignMail({ deliveries: settings.campaignMails });
}
let importResult: Awaited<ReturnType<typeof benchImport>> | undefined;
if (only.has('import')) {
  log('\nImport: assent import contacts (a child process) vs a raw child writing the same rows (batched INSERTs, COPY)');
  importResult = await benchImport({
    rows: envInt('BENCH_IMPORT_ROWS', 1_000_000, 1_000),
    postgresUrl: process.env.BENCH_IMPORT_PG === '0' ? null : (process.env.DATABASE_URL ?? 'postgres://127.0.0.1:5432/test'),
  });
}

const datasetParts = ['decide', 'http', 'append', 'launch', 'segment-count', 'export'];
const dataset = datasetParts.some((part) => only.has(part)) ? await ensureDataset(settings.contacts, { rebuild }) : undefined;
const sample = dataset && ['decide', 'http', 'append'].some((part) => only.has(part)) ? sampleContacts(dataset.file, 100_000) : [];

let decideResult: DecideResult | undefined;
let httpResult: HttpResult | undefined;
let appendResult: AppendResult | undefined;
let launchResult: Awaited<ReturnType<typeof benchLaunch>> | undefined;
let countResult: Awaited<ReturnType<typeof benchSegmentCount>> | undefined;
let exportResult: Awaited<ReturnType<typeof benchExport>> | undefined;
if (dataset && (only.has('decide') || only.has('http'))) {
  const ctx = await createContext(
    loadConfig({ DATABASE_URL: `sqlite:${dataset.file}`, LOG_LEVEL: 'warn', SCHEDULER_INTERVAL_SECONDS: '0' }),
  );
  const keyName = `bench-${Date.now()}`;
  try {
    if (only.has('decide')) {
      log('\ndecide() in process');
      decideResult = await benchDecide(ctx, dataset.file, sample, settings.seconds);
    }
    if (only.has('http')) {
      log(`\nGET /v1/decisions over HTTP (autocannon, ${settings.httpConnections} connections × ${settings.httpSeconds} s, pipelining 1)`);
      const { key } = await createKey(ctx, { name: keyName, scope: 'read' });
      httpResult = await benchHttp(dataset.file, sample, key, { connections: settings.httpConnections, seconds: settings.httpSeconds });
    }
  } finally {
    await ctx.db.kysely.deleteFrom('api_keys').where('name', '=', keyName).execute();
    await ctx.db.close();
  }
}
if (dataset && only.has('append')) {
  log(`\nLedger append (${fmtInt(settings.appendEvents)} events in batches of ${settings.appendBatch})`);
  appendResult = await benchAppend(dataset.file, dataset.contacts, sample, { events: settings.appendEvents, batch: settings.appendBatch });
}
if (dataset && only.has('launch')) {
  log(`\nCampaign launch on ${fmtInt(dataset.contacts)} contacts (createCampaign + launchCampaign) vs a raw INSERT … SELECT`);
  launchResult = await benchLaunch(dataset.file, dataset.contacts, { rounds: settings.launchRounds });
}
if (dataset && only.has('segment-count')) {
  log(`\nSegment count on ${fmtInt(dataset.contacts)} contacts: countSegment vs a raw SELECT count(*)`);
  countResult = await benchSegmentCount(dataset.file, dataset.contacts, { rounds: settings.countRounds });
}
if (dataset && only.has('export')) {
  log(`\nExport of ${fmtInt(dataset.contacts)} contacts: assent export contacts (child process) vs a raw better-sqlite3 .iterate() child`);
  exportResult = await benchExport(dataset.file, dataset.contacts, {
    formats: ['csv', 'jsonl'],
    rounds: envInt('BENCH_EXPORT_ROUNDS', 1, 1),
  });
}

const measures: Measure[] = [];
const details: string[] = [];
/** The decide, http and append figures: in the full table in issue 3's place, and each its own block in a partial run. */
const coreParts = new Map<string, { measures: Measure[]; details: string[] }>();
if (decideResult) {
  const d = decideResult;
  const part = { measures: [] as Measure[], details: [] as string[] };
  coreParts.set('decide', part);
  for (const [name, ours] of [
    ['decide() in process, by contactId', d.byId.rate],
    ['decide() in process, by email', d.byEmail.rate],
  ] as const) {
    part.measures.push({
      name,
      ours,
      unit: '/s',
      baselineName: 'raw better-sqlite3 lookup by email',
      baseline: d.raw.rate,
      target: '≥ 50,000 decisions/s',
      pass: ours >= 50_000,
    });
  }
  const total = Object.values(d.reasons).reduce((a, b) => a + b, 0);
  part.details.push(
    `decide(): back-to-back awaited calls over ${fmtInt(sample.length)} random existing contacts and the three built-in (purpose, channel) pairs in turn; each row (and the raw lookup) first makes one warm-up pass over the whole sample (the steady state of a long-running process), then all three are timed in alternating 250 ms slices, ${settings.seconds} s each.`,
    `decide() answers over the first ${fmtInt(total)} sampled calls: ${Object.entries(d.reasons)
      .sort((a, b) => b[1] - a[1])
      .map(([r, n]) => `${r} ${fmtInt(n)}`)
      .join(', ')}.`,
    `Raw lookup by email (\`select * from contacts where email = ?\`, prepared, on a read-only connection with the app reader's settings): ${fmtInt(d.raw.rate)}/s in the same interleaved loop as decide(); ${fmtInt(d.rawTinybench)}/s with tinybench (cross-check).`,
    `CPU share this process got while measuring (1.00 = a whole core): decide() by id ${d.byId.cpuShare.toFixed(2)}, by email ${d.byEmail.cpuShare.toFixed(2)}, raw ${d.raw.cpuShare.toFixed(2)}.`,
  );
}
if (httpResult) {
  const h = httpResult;
  const part = { measures: [] as Measure[], details: [] as string[] };
  coreParts.set('http', part);
  part.measures.push({
    name: 'GET /v1/decisions over HTTP',
    ours: h.ours.rate,
    unit: 'req/s',
    baselineName: 'bare Fastify route (constant)',
    baseline: h.bare.rate,
    target: '≥ 50% of bare Fastify',
    pass: h.ours.rate >= 0.5 * h.bare.rate,
  });
  part.details.push(
    `HTTP: autocannon in the bench process, each server in its own child process (one core each), ${h.connections} connections, pipelining 1, ${h.seconds} s per server in ${h.rounds} alternating rounds (bare, ours, bare, …) after a warm-up of one pass over all ${fmtInt(h.paths)} paths plus 2 s; requests rotate over random contacts (by contactId and by email, the three pairs) with a read-scope API key.`,
    `GET /v1/decisions: ${fmtInt(h.ours.requests)} requests, rounds ${h.ours.rounds.map((x) => fmtInt(x)).join(', ')} req/s, latency p50 ${h.ours.p50} ms, p99 ${h.ours.p99} ms (worst round), non-2xx ${h.ours.non2xx}, errors ${h.ours.errors}; the server process was busy ${h.ours.serverCpu.toFixed(2)} of a core.`,
    `Bare Fastify: ${fmtInt(h.bare.requests)} requests, rounds ${h.bare.rounds.map((x) => fmtInt(x)).join(', ')} req/s, latency p50 ${h.bare.p50} ms, p99 ${h.bare.p99} ms; the server process was busy ${h.bare.serverCpu.toFixed(2)} of a core${h.bare.serverCpu < 0.8 ? ' (well below 1: the bare figure is bounded by the load tool on the other core, not by Fastify)' : ''}.`,
  );
}
if (appendResult) {
  const a = appendResult;
  const appendPart = { measures: [] as Measure[], details: [] as string[] };
  coreParts.set('append', appendPart);
  for (const [name, run] of [
    [`ledger append via recordConsents, contacts imported beforehand (batches of ${a.batch})`, a.fresh],
    [`ledger append via recordConsents, random existing contacts (batches of ${a.batch})`, a.existing],
  ] as const) {
    appendPart.measures.push({
      name,
      ours: run.service,
      unit: 'events/s',
      baselineName: 'raw better-sqlite3 batched insert',
      baseline: run.raw,
      target: '≥ 50% of raw',
      pass: run.service >= 0.5 * run.raw,
    });
  }
  appendPart.details.push(
    `Append: ${fmtInt(a.fresh.events)} events each way per workload in batches of ${a.batch}, ${a.rounds} alternating rounds (service, raw, service, …) after 4 warm-up batches each, both writing into one scratch copy of the database (copied and flushed in ${fmtSeconds(a.copyMs)}, outside the measure); source "api", grants and withdrawals over the three pairs, each contact at most once per batch. Workload 1: ${fmtInt(a.fresh.events / 2)} contacts bulk-imported just before (two events each; their chains and states are new). Workload 2: random contacts of the ${fmtInt(settings.contacts)} (their chains, heads and states sit anywhere in the file).`,
    'The service path validates, resolves the contacts, reads and advances chain heads, computes evidence and event hashes, projects the state and writes events, states and heads in one transaction per batch; the raw path computes the same evidence and event hashes and inserts the same event rows with one prepared statement, one transaction per batch, and reads and projects nothing. 100 chains the service extended are verified afterwards.',
  );
}
for (const part of coreParts.values()) {
  measures.push(...part.measures);
  details.push(...part.details);
}

if (mail) {
  measures.push(...mail.measures);
  details.push(...mail.details);
}
if (form) {
  measures.push(...form.measures);
  details.push(...form.details);
}
/** Each issue-5 part's figures and details, for the full table or its own block. */
const parts = new Map<string, { measures: Measure[]; details: string[] }>();
if (launchResult) parts.set('launch', { measures: launchMeasures(launchResult), details: launchDetails(launchResult) });
if (campaignMail) parts.set('campaign-mail', { measures: campaignMail.measures, details: campaignMail.details });
if (countResult) parts.set('segment-count', { measures: segmentCountMeasures(countResult), details: segmentCountDetails(countResult) });
if (exportResult) parts.set('export', { measures: exportMeasures(exportResult), details: exportDetails(exportResult) });
if (importResult) parts.set('import', { measures: importMeasures(importResult), details: importDetails(importResult) });
for (const part of parts.values()) {
  measures.push(...part.measures);
  details.push(...part.details);
}
// Already in the table above (in their place among issue 3's figures); their own blocks in a partial run.
for (const [name, part] of coreParts) parts.set(name, part);

const totalMs = performance.now() - started;
log(`\n${printTable(measures)}\n`);
log(
  `Total: ${fmtSeconds(totalMs)}${dataset ? (dataset.reused ? ' (dataset reused)' : ` (dataset built in ${fmtSeconds(dataset.buildMs)})`) : ''}`,
);

log(`${targetsMet(measures)}.`);
const resultsFile = fileURLToPath(new URL('./RESULTS.md', import.meta.url));
const datasetLines = (d: NonNullable<typeof dataset>) => [
  `${fmtInt(d.contacts)} contacts, ${fmtInt(d.events)} consent events (3 per contact, hash-chained, state projected), SQLite (WAL), ${(d.bytes / 1e9).toFixed(2)} GB.`,
  d.reused
    ? `Reused from an earlier run (built then in ${fmtSeconds(d.buildMs)}); 200 sampled chains verified.`
    : `Built in this run in ${fmtSeconds(d.buildMs)} (real migrations, rows hashed on worker threads with the ledger's functions, bulk-inserted); 200 sampled chains verified.`,
];
if (!allParts.every((part) => only.has(part))) {
  const load = { start: loadAtStart, end: loadavg()[0] as number };
  for (const [name, part] of parts) {
    upsertPartSection(
      resultsFile,
      {
        part: name,
        title: separateParts[name] as string,
        command,
        startedAt,
        load,
        totalMs,
        measures: part.measures,
        details: [
          ...(dataset && name !== 'campaign-mail' && name !== 'import' ? [`Dataset: ${datasetLines(dataset).join(' ')}`] : []),
          ...part.details,
        ],
      },
      Object.keys(separateParts),
    );
  }
  log(
    parts.size > 0
      ? `Partial run (--only): wrote the block${parts.size > 1 ? 's' : ''} of ${[...parts.keys()].join(', ')} in ${resultsFile}; the rest left as it was.`
      : 'Partial run (--only): bench/RESULTS.md left as it was.',
  );
} else {
  writeResults(resultsFile, {
    command,
    startedAt,
    load: { start: loadAtStart, end: loadavg()[0] as number },
    totalMs,
    dataset: dataset ? datasetLines(dataset) : [],
    measures,
    details,
    method: [
      'Every figure is measured in the same run as its baseline, on the same database file, alternating with it in short rounds so that other work on the machine weighs on both alike.',
      'Targets (issue 3): decide() ≥ 50,000/s; GET /v1/decisions ≥ 50% of a bare Fastify route; append through the service ≥ 50% of a raw batched insert with the same hashing.',
      'Targets (issue 4): dispatch through the pooled SMTP transport ≥ 70% of bare nodemailer sending the same messages to the same local sink; POST /f/{key} sustained with no errors (requests/s and p99 beside GET /v1/decisions on the same server).',
      'Targets (issue 5): launching a campaign (audience frozen, step 1 queued) within 3× the time of a raw INSERT … SELECT of the same members; campaign deliveries ≥ 70% of bare nodemailer to the same local sink; segment counts reported beside a raw count(*) (no target).',
      'Build or reuse: the database lives in bench/.data/ (git-ignored) and is reused while complete (migrations added since run on it, as on an upgrade); `npm run bench -- --rebuild` starts over.',
      "Profiles: `BENCH_PROFILE=1 npm run bench -- --only=http` writes a CPU profile of each server's measured rounds to bench/.data/ (`--only=mail` and `--only=campaign-mail`: of our sends); with `--only=launch` or `--only=segment-count` it logs SQLite's query plans of our statements and of the raw ones (their time is spent inside SQLite, split per statement in the details).",
    ],
  });
  log(`Wrote ${resultsFile}`);
}

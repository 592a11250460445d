// POST /f/{key} (a person submits a form: the contact is created and one consent event recorded
// per ticked box, with the form's source and evidence) under autocannon, beside GET /v1/decisions
// on the same server in the same run. The real app runs in a child process (http-server.ts form), as
// in the HTTP bench: on two cores, the server gets one and the load tool the other. No ratio
// target here: the form must be sustained with no errors and no non-2xx; both figures are shown
// with their p99.
//
//   node bin/run-ts.js bench/form-post.ts
//   BENCH_FORM_SECONDS=10 BENCH_FORM_CONNECTIONS=10 node bin/run-ts.js bench/form-post.ts
import { mkdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon, { type Result } from 'autocannon';
import SqliteDatabase from 'better-sqlite3';
import { closeContext, createContext } from '../src/boot.ts';
import { loadConfig } from '../src/config.ts';
import { createKey } from '../src/modules/auth/index.ts';
import { fmtInt, fmtRate, log, rng, shuffle } from './common.ts';
import { DATA_DIR } from './dataset.ts';
import { FORM_BENCH_PUBLIC_URL, formBenchEnv } from './form-env.ts';
import { type HttpRun, serverCpuMs, startServer, stopServer, summarise } from './http.ts';
import { type Measure, printTable } from './report.ts';

export type FormRun = HttpRun;

export interface FormPostResult {
  form: FormRun;
  decisions: FormRun;
  connections: number;
  seconds: number;
  rounds: number;
  /**
   * What the form posts left in the database (warm-up included): contacts, form events, and
   * contacts whose form events are not one or two (must be 0).
   */
  written: { contacts: number; formEvents: number; odd: number };
  /** Form posts answered 201 (warm-up included), each a new email. */
  posted: number;
  /** Form posts sent (autocannon leaves the last ones of a timed run in flight, uncounted). */
  sent: number;
  decisionPaths: number;
  load: { start: number; end: number };
}

export interface FormPostOptions {
  connections?: number;
  /** Seconds of load for each of the two endpoints, warm-up excluded. */
  seconds?: number;
}

const ROUND_SECONDS = 2;
const FORM_KEY = 'newsletter-signup';
const PURPOSES = [
  {
    key: 'offers',
    title: { fr: 'Nos offres', en: 'Our offers' },
    description: { fr: 'Les promotions du mois.', en: 'This month’s deals.' },
    infoUrl: 'https://shop.example/offers',
    channels: ['email'],
  },
  { key: 'partners', title: { fr: 'Offres de nos partenaires', en: 'Offers from our partners' }, channels: ['email'] },
  {
    key: 'events',
    title: { fr: 'Nos événements en boutique', en: 'Events in our shops' },
    description: { fr: 'Une invitation par saison.', en: 'One invitation a season.' },
    channels: ['email'],
  },
];
/** The boxes a person ticks, in turn: one or two of the three. */
const TICKS = [
  ['offers:email'],
  ['offers:email', 'partners:email'],
  ['events:email'],
  ['partners:email', 'events:email'],
  ['offers:email', 'events:email'],
];
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';

async function api(port: number, key: string, method: string, path: string, body: unknown): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** Form posts: JSON, as a site posts it, each a new person ticking one or two boxes. */
function postForms(port: number, emails: { next: () => string }, connections: number, run: { seconds: number } | { amount: number }) {
  let n = 0;
  return autocannon({
    url: `http://127.0.0.1:${port}`,
    connections,
    ...('amount' in run ? { amount: run.amount } : { duration: run.seconds }),
    pipelining: 1,
    requests: [
      {
        method: 'POST',
        path: `/f/${FORM_KEY}`,
        headers: { 'content-type': 'application/json', 'user-agent': USER_AGENT, 'accept-language': 'fr-FR,fr;q=0.9,en;q=0.8' },
        setupRequest: (request) => {
          const i = n++;
          request.body = JSON.stringify({
            email: emails.next(),
            firstName: i % 3 === 0 ? null : `Camille${i % 1000}`,
            consents: TICKS[i % TICKS.length],
            pageUrl: 'https://shop.example/newsletter',
          });
          return request;
        },
      },
    ],
  });
}

function getDecisions(port: number, paths: string[], key: string, connections: number, run: { seconds: number } | { amount: number }) {
  let next = 0;
  return autocannon({
    url: `http://127.0.0.1:${port}`,
    connections,
    ...('amount' in run ? { amount: run.amount } : { duration: run.seconds }),
    pipelining: 1,
    headers: { authorization: `Bearer ${key}` },
    requests: [
      {
        method: 'GET',
        setupRequest: (request) => {
          request.path = paths[next++ % paths.length] as string;
          return request;
        },
      },
    ],
  });
}

export async function benchFormPost(
  options: FormPostOptions = {},
): Promise<{ measures: Measure[]; details: string[]; result: FormPostResult }> {
  const connections = options.connections ?? 10;
  const seconds = options.seconds ?? 10;
  const loadStart = loadavg()[0] as number;
  mkdirSync(DATA_DIR, { recursive: true });
  const file = join(DATA_DIR, 'form.db');
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });

  // A fresh database (migrations, built-ins) and two API keys; everything else through the API.
  const ctx = await createContext(loadConfig(formBenchEnv(file)));
  let adminKey: string;
  let readKey: string;
  try {
    adminKey = (await createKey(ctx, { name: 'bench-admin', scope: 'admin' })).key;
    readKey = (await createKey(ctx, { name: 'bench-read', scope: 'read' })).key;
  } finally {
    await closeContext(ctx);
  }

  const server = await startServer(['form', file]);
  const stamp = Date.now().toString(36);
  let counter = 0;
  const emails = { next: () => `person.${stamp}.${counter++}@mail.example` };
  const runs: Record<'form' | 'decisions', Result[]> = { form: [], decisions: [] };
  const cpu = { form: 0, decisions: 0 };
  const rounds = Math.max(1, Math.round(seconds / ROUND_SECONDS));
  const perRound = seconds / rounds;
  let posted = 0;
  let paths: string[] = [];
  try {
    for (const purpose of PURPOSES) await api(server.port, adminKey, 'POST', '/v1/purposes', purpose);
    await api(server.port, adminKey, 'POST', '/v1/forms', {
      key: FORM_KEY,
      title: 'La lettre de la boutique',
      locale: 'fr',
      fields: ['email', 'firstName'],
      purposes: PURPOSES.map((p) => ({ purpose: p.key, channels: ['email'] })),
      termsUrl: null,
      redirectUrl: null,
      allowedOrigins: ['https://shop.example'],
    });

    // Warm-up: form posts (they also make the contacts the decisions ask about), then the
    // decisions over every path once and 2 s more.
    const warm = await postForms(server.port, emails, connections, { amount: 2_000 });
    const warm2 = await postForms(server.port, emails, connections, { seconds: 2 });
    for (const w of [warm, warm2]) {
      if (w.non2xx > 0 || w.errors > 0) throw new Error(`form warm-up: ${w.non2xx} non-2xx, ${w.errors} errors`);
      posted += w['2xx'];
    }
    const known = Array.from({ length: Math.min(counter, 20_000) }, (_, i) => `person.${stamp}.${i}@mail.example`);
    paths = shuffle(
      known.map((email, i) => {
        const purpose = PURPOSES[i % PURPOSES.length]?.key as string;
        return `/v1/decisions?email=${encodeURIComponent(email)}&purpose=${purpose}&channel=email`;
      }),
      rng(11),
    );
    await getDecisions(server.port, paths, readKey, connections, { amount: paths.length });
    await getDecisions(server.port, paths, readKey, connections, { seconds: 2 });
    server.child.send({ profile: 'start' });

    for (let r = 0; r < rounds; r += 1) {
      for (const name of r % 2 === 0 ? (['form', 'decisions'] as const) : (['decisions', 'form'] as const)) {
        const before = await serverCpuMs(server.child);
        const result =
          name === 'form'
            ? await postForms(server.port, emails, connections, { seconds: perRound })
            : await getDecisions(server.port, paths, readKey, connections, { seconds: perRound });
        cpu[name] += (await serverCpuMs(server.child)) - before;
        runs[name].push(result);
        if (name === 'form') posted += result['2xx'];
      }
    }
  } finally {
    await stopServer(server.child);
  }

  // What the posts left behind: one contact per 2xx, one event per ticked box, with the form as source.
  const db = new SqliteDatabase(file, { readonly: true });
  const count = (sql: string) => Number((db.prepare(sql).get() as { n: number }).n);
  const written = {
    contacts: count('select count(*) as n from contacts'),
    formEvents: count(`select count(*) as n from consent_events where source_type = 'form' and source_ref = '${FORM_KEY}@1'`),
    odd: count(
      `select count(*) as n from contacts c where (select count(*) from consent_events e where e.contact_id = c.id and e.source_type = 'form' and e.status = 'granted') not in (1, 2)`,
    ),
  };
  db.close();

  const form = summarise(runs.form, cpu.form);
  const decisions = summarise(runs.decisions, cpu.decisions);
  for (const [name, run] of [
    ['POST /f/{key}     ', form],
    ['GET /v1/decisions ', decisions],
  ] as const) {
    log(
      `  ${name}: ${fmtRate(run.rate)} (${fmtInt(run.requests)} requests; rounds ${run.rounds.map((x) => fmtInt(x)).join(', ')}; p50 ${run.p50} ms, p99 ${run.p99} ms, non-2xx ${run.non2xx}, errors ${run.errors}; server busy ${run.serverCpu.toFixed(2)} of a core)`,
    );
  }
  const result: FormPostResult = {
    form,
    decisions,
    connections,
    seconds,
    rounds,
    written,
    posted,
    sent: counter,
    decisionPaths: paths.length,
    load: { start: loadStart, end: loadavg()[0] as number },
  };
  return { measures: formPostMeasures(result), details: formPostDetails(result), result };
}

export function formPostMeasures(r: FormPostResult): Measure[] {
  return [
    {
      name: `POST /f/{key} over HTTP, new contact + 1–2 events (p99 ${r.form.p99} ms)`,
      ours: r.form.rate,
      unit: 'req/s',
      baselineName: `GET /v1/decisions, same server (p99 ${r.decisions.p99} ms)`,
      baseline: r.decisions.rate,
      target: 'sustained, 0 errors, 0 non-2xx',
      pass:
        r.form.errors === 0 &&
        r.form.non2xx === 0 &&
        r.form.requests > 0 &&
        r.written.contacts >= r.posted &&
        r.written.contacts <= r.sent &&
        r.written.odd === 0,
    },
  ];
}

export function formPostDetails(r: FormPostResult): string[] {
  const rounds = (run: FormRun) => run.rounds.map((x) => fmtInt(x)).join(', ');
  return [
    `Forms: the real app (RATE_LIMIT_PER_MINUTE 100,000, outbox transport) in a child process on a fresh SQLite database, with 3 purposes and one form "${FORM_KEY}" (email, first name, one box per purpose) created through the API; autocannon in the bench process, ${r.connections} connections, pipelining 1, ${r.seconds} s per endpoint in ${r.rounds} alternating rounds (form, decisions; decisions, form; …) after a warm-up (2,000 posts + 2 s; decisions: every path once + 2 s).`,
    `POST /f/${FORM_KEY}: JSON as a site posts it, each request a new email ticking one or two of the three boxes (5 patterns in turn; 1.6 events a post on average): ${fmtInt(r.form.requests)} requests, rounds ${rounds(r.form)} req/s, latency p50 ${r.form.p50} ms, p99 ${r.form.p99} ms (worst round), non-2xx ${r.form.non2xx}, errors ${r.form.errors}; the server process was busy ${r.form.serverCpu.toFixed(2)} of a core. Afterwards the database held ${fmtInt(r.written.contacts)} contacts for ${fmtInt(r.posted)} posts answered 201 and ${fmtInt(r.sent)} sent (the last ones of each timed run are in flight when autocannon stops counting), each with one or two granted events (${fmtInt(r.written.odd)} otherwise): ${fmtInt(r.written.formEvents)} consent events with source form ${FORM_KEY}@1.`,
    `GET /v1/decisions on the same server in the same run (read-scope API key; by email over ${fmtInt(r.decisionPaths)} contacts the form created, the three purposes in turn; a database of that size, not the 1,000,000-contact one of the decision rows): ${fmtInt(r.decisions.requests)} requests, rounds ${rounds(r.decisions)} req/s, p50 ${r.decisions.p50} ms, p99 ${r.decisions.p99} ms, non-2xx ${r.decisions.non2xx}, errors ${r.decisions.errors}; server busy ${r.decisions.serverCpu.toFixed(2)} of a core.`,
  ];
}

function envInt(name: string, fallback: number): number {
  const n = Number((process.env[name] ?? '').replaceAll('_', ''));
  return process.env[name] && Number.isInteger(n) && n > 0 ? n : fallback;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const connections = envInt('BENCH_FORM_CONNECTIONS', 10);
  const seconds = envInt('BENCH_FORM_SECONDS', 10);
  log(
    `Form bench: POST /f/{key} and GET /v1/decisions, ${connections} connections × ${seconds} s each; load average ${(loadavg()[0] as number).toFixed(2)}`,
  );
  const { measures, details, result } = await benchFormPost({ connections, seconds });
  log(`\n${printTable(measures)}\n`);
  for (const d of details) log(`- ${d}`);
  log(`Load average ${result.load.start.toFixed(2)} at the start, ${result.load.end.toFixed(2)} at the end.`);
  log(`(${FORM_BENCH_PUBLIC_URL} is the PUBLIC_URL; the form's JSON posts carry no Origin header, as a server-side integration.)`);
}

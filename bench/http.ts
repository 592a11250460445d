// GET /v1/decisions over HTTP against a bare Fastify route. Each server runs in a child process
// and autocannon in this one: on two cores, the server gets one and the load tool the other,
// for both servers alike. Same connections, duration and pipelining for both.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import autocannon, { type Result } from 'autocannon';
import { fmtInt, fmtRate, log, rng, shuffle } from './common.ts';
import { pairAt, type SampleContact } from './sample.ts';

export interface HttpRun {
  rate: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** Worst round's median and 99th percentile latency, ms. */
  p50: number;
  p99: number;
  /** Requests per second of each round. */
  rounds: number[];
  /** CPU time the server process used per second of load (1 = a whole core). */
  serverCpu: number;
}

export interface HttpResult {
  ours: HttpRun;
  bare: HttpRun;
  connections: number;
  seconds: number;
  rounds: number;
  paths: number;
}

const ROUND_SECONDS = 2;
const runTs = fileURLToPath(new URL('../bin/run-ts.js', import.meta.url));
const serverTs = fileURLToPath(new URL('./http-server.ts', import.meta.url));

export interface Server {
  port: number;
  child: ChildProcess;
}

/** Starts `http-server.ts ARGS…` in a child process (bare, assent FILE, form FILE) and waits for its port. */
export async function startServer(args: string[]): Promise<Server> {
  // BENCH_PROFILE=1: each server writes a CPU profile of its measured rounds to bench/.data/.
  const profile = process.env.BENCH_PROFILE ? fileURLToPath(new URL(`./.data/http-${args[0]}.cpuprofile`, import.meta.url)) : '';
  const child = spawn(process.execPath, [runTs, serverTs, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, LOG_LEVEL: 'warn', BENCH_PROFILE: profile },
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`bench server ${args[0]} exited (${code}) before listening`)));
  });
  return { port, child };
}

export async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function load(
  port: number,
  paths: string[],
  key: string,
  connections: number,
  run: { seconds: number } | { amount: number },
): Promise<Result> {
  let next = 0;
  return await autocannon({
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

/** The server's own CPU time so far, in ms. */
export function serverCpuMs(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    const onMessage = (m: { cpu?: { user: number; system: number } }) => {
      if (!m.cpu) return;
      child.off('message', onMessage);
      resolve((m.cpu.user + m.cpu.system) / 1000);
    };
    child.on('message', onMessage);
    child.send({ cpu: true });
  });
}

/** Sums autocannon rounds into one figure (worst round's latency); shared by the HTTP benches. */
export function summarise(runs: Result[], cpuMs: number): HttpRun {
  const requests = runs.reduce((a, r) => a + r.requests.total, 0);
  const seconds = runs.reduce((a, r) => a + r.duration, 0);
  return {
    rate: requests / seconds,
    requests,
    non2xx: runs.reduce((a, r) => a + r.non2xx, 0),
    errors: runs.reduce((a, r) => a + r.errors + r.timeouts, 0),
    p50: Math.max(...runs.map((r) => r.latency.p50)),
    p99: Math.max(...runs.map((r) => r.latency.p99)),
    rounds: runs.map((r) => r.requests.total / r.duration),
    serverCpu: cpuMs / (seconds * 1000),
  };
}

export async function benchHttp(
  file: string,
  sample: SampleContact[],
  key: string,
  options: { connections: number; seconds: number },
): Promise<HttpResult> {
  // Many contacts, both ways of naming them, every (purpose, channel) pair.
  const paths = shuffle(
    sample.slice(0, 20_000).map((c, i) => {
      const pair = pairAt(i);
      const who = i % 2 === 0 ? `contactId=${c.id}` : `email=${encodeURIComponent(c.email)}`;
      return `/v1/decisions?${who}&purpose=${pair.purpose}&channel=${pair.channel}`;
    }),
    rng(7),
  );

  // Both servers up at once (the idle one costs nothing); after warm-up, short rounds in turn
  // (bare, ours, bare, ours, …) so that a change in the machine's load hits both alike.
  const servers: Record<'bare' | 'ours', Server> = { bare: await startServer(['bare']), ours: await startServer(['assent', file]) };
  const rounds = Math.max(1, Math.round(options.seconds / ROUND_SECONDS));
  const perRound = options.seconds / rounds;
  const runs: Record<'bare' | 'ours', Result[]> = { bare: [], ours: [] };
  const cpu: Record<'bare' | 'ours', number> = { bare: 0, ours: 0 };
  try {
    for (const server of Object.values(servers)) {
      // Warm-up: every path once (the reader's page cache and memory map reach the steady
      // state of a long-running server), then 2 s more for the JIT.
      await load(server.port, paths, key, options.connections, { amount: paths.length });
      await load(server.port, paths, key, options.connections, { seconds: 2 });
      server.child.send({ profile: 'start' });
    }
    for (let r = 0; r < rounds; r += 1) {
      for (const name of ['bare', 'ours'] as const) {
        const before = await serverCpuMs(servers[name].child);
        runs[name].push(await load(servers[name].port, paths, key, options.connections, { seconds: perRound }));
        cpu[name] += (await serverCpuMs(servers[name].child)) - before;
      }
    }
  } finally {
    await Promise.all(Object.values(servers).map((s) => stopServer(s.child)));
  }

  const bare = summarise(runs.bare, cpu.bare);
  const ours = summarise(runs.ours, cpu.ours);
  for (const [name, run] of [
    ['bare Fastify route', bare],
    ['GET /v1/decisions ', ours],
  ] as const) {
    log(
      `  ${name}: ${fmtRate(run.rate)} (${fmtInt(run.requests)} requests; rounds ${run.rounds.map((x) => fmtInt(x)).join(', ')}; p50 ${run.p50} ms, p99 ${run.p99} ms, non-2xx ${run.non2xx}, errors ${run.errors}; server busy ${run.serverCpu.toFixed(2)} of a core)`,
    );
  }
  if (ours.non2xx > 0 || ours.errors > 0) {
    throw new Error(`GET /v1/decisions answered ${ours.non2xx} non-2xx responses and ${ours.errors} errors: the figure would be wrong`);
  }
  return { ours, bare, connections: options.connections, seconds: options.seconds, rounds, paths: paths.length };
}

// Small helpers shared by the bench parts: formatting, timed loops, deterministic randomness.
import { Worker } from 'node:worker_threads';

export const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
export const fmtRate = (n: number): string => `${fmtInt(n)}/s`;
export const fmtRatio = (n: number): string => `${n.toFixed(2)}×`;
export const fmtPct = (n: number): string => `${(n * 100).toFixed(0)}%`;
export const fmtSeconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

/** A line that rewrites itself on a terminal and prints sparsely otherwise. */
export function progress(label: string): { update(done: number, total: number): void; end(text?: string): void } {
  const tty = process.stdout.isTTY;
  const started = performance.now();
  let lastPrinted = -1;
  return {
    update(done, total) {
      const pct = Math.floor((done / total) * 100);
      const text = `  ${label}: ${fmtInt(done)} / ${fmtInt(total)} (${pct}%) ${fmtSeconds(performance.now() - started)}`;
      if (tty) process.stdout.write(`\r${text}\u001b[K`);
      else if (pct >= lastPrinted + 10 || done === total) {
        lastPrinted = pct;
        process.stdout.write(`${text}\n`);
      }
    },
    end(text) {
      if (tty) process.stdout.write('\r\u001b[K');
      if (text) log(text);
    },
  };
}

/** Mulberry32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/**
 * Runs `fn` back to back (each call awaited) for `warmupMs`, then counts calls for `ms`.
 * A plain loop: no per-call timer, so the harness costs next to nothing.
 */
export async function timedLoop(
  fn: (i: number) => unknown,
  ms: number,
  warmupMs: number,
): Promise<{ ops: number; ms: number; rate: number }> {
  let i = 0;
  const warmEnd = performance.now() + warmupMs;
  while (performance.now() < warmEnd) {
    for (let k = 0; k < 256; k += 1) await fn(i++);
  }
  const start = performance.now();
  const end = start + ms;
  let ops = 0;
  let now = start;
  while (now < end) {
    for (let k = 0; k < 256; k += 1) await fn(i++);
    ops += 256;
    now = performance.now();
  }
  const elapsed = now - start;
  return { ops, ms: elapsed, rate: (ops * 1000) / elapsed };
}

export interface Contender {
  name: string;
  /** One operation; awaited. */
  op: (i: number) => unknown;
}

export interface Throughput {
  ops: number;
  ms: number;
  /** Operations per wall-clock second. */
  rate: number;
  /** CPU time this process got per wall-clock second while measuring (1 = a whole core). */
  cpuShare: number;
}

/**
 * Measures several contenders in alternating slices (a, b, c, a, b, c, …) so that a change in
 * the machine's load during the run hits them alike; each gets about `ms` in total after
 * `warmupMs` of warm-up. Every operation is awaited, back to back, with no per-call timer.
 */
export async function interleaved(contenders: Contender[], ms: number, warmupMs: number, sliceMs = 250): Promise<Map<string, Throughput>> {
  const totals = new Map(contenders.map((c) => [c.name, { ops: 0, ms: 0, cpu: 0 }]));
  let i = 0;
  const slice = async (c: Contender, length: number, record: boolean) => {
    const cpu = process.cpuUsage();
    const start = performance.now();
    const end = start + length;
    let ops = 0;
    let now = start;
    while (now < end) {
      for (let k = 0; k < 64; k += 1) await c.op(i++);
      ops += 64;
      now = performance.now();
    }
    if (record) {
      const used = process.cpuUsage(cpu);
      const t = totals.get(c.name) as { ops: number; ms: number; cpu: number };
      t.ops += ops;
      t.ms += now - start;
      t.cpu += (used.user + used.system) / 1000;
    }
  };
  for (const c of contenders) await slice(c, warmupMs, false);
  const rounds = Math.max(1, Math.round(ms / sliceMs));
  for (let r = 0; r < rounds; r += 1) for (const c of contenders) await slice(c, sliceMs, true);
  return new Map([...totals].map(([name, t]) => [name, { ops: t.ops, ms: t.ms, rate: (t.ops * 1000) / t.ms, cpuShare: t.cpu / t.ms }]));
}

/** Starts a worker thread on a TypeScript module (worker threads do not inherit tsx's hooks). */
export function tsWorker(file: URL, workerData: unknown): Worker {
  const tsx = import.meta.resolve('tsx/esm/api');
  const source = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(file.href)}); });`;
  return new Worker(source, { eval: true, workerData });
}

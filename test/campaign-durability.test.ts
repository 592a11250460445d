// Campaign sending survives a crash and shares the queue: real `assent worker` processes send a
// real step to a real SMTP server. One worker is killed with SIGKILL in the middle of a
// 20,000-message step and a new one finishes it; on PostgreSQL two workers drain one step at once.
// Each worker gets its own MAIL_FROM address (same domain, so Message-IDs do not change), which
// tells from the envelope which process sent each message.
import { type ChildProcess, spawn } from 'node:child_process';
import { SMTPServer } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import { closeContext, createContext } from '../src/boot.ts';
import { loadConfig } from '../src/config.ts';
import type { Dialect } from '../src/database.ts';
import { launchCampaign } from '../src/modules/campaigns/index.ts';
import { insertContactRows, newContactRow } from '../src/modules/contacts/index.ts';
import { iso } from '../src/platform/clock.ts';
import type { AppContext } from '../src/platform/context.ts';
import { TEST_SECRET } from './helpers/build-app.ts';
import { createNoEmailConsentCampaign } from './helpers/campaigns.ts';
import { ASSENT_BIN } from './helpers/cli.ts';
import { createTestDatabase, dialects, type TestDatabase } from './helpers/dialects.ts';
import { type ReceivedMail, type SmtpSink, startSmtpSink } from './helpers/smtp-sink.ts';

// A worker killed with SIGKILL resets its SMTP connections (smtp-server emits 'error'; the sink
// ignores resets): counted here for the report line.
const connectionResets: string[] = [];
const listen = SMTPServer.prototype.listen;
SMTPServer.prototype.listen = function (this: SMTPServer, ...args: Parameters<typeof listen>) {
  this.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') throw error;
    connectionResets.push(error.code);
  });
  return listen.apply(this, args);
} as typeof listen;

const DOMAIN = 'durability.example';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const elapsed = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

interface Store {
  database: TestDatabase;
  ctx: AppContext;
  emails: string[];
  timings: Record<string, string>;
  close(): Promise<void>;
}

/** A new store with `n` contacts without any email consent, a segment of them, and a launched campaign whose step 1 is queued. */
async function storeWithQueuedStep(dialect: Dialect, n: number, key: string): Promise<Store> {
  const timings: Record<string, string> = {};
  let lap = Date.now();
  const done = (phase: string) => {
    timings[phase] = elapsed(lap);
    lap = Date.now();
  };
  const database = await createTestDatabase(dialect);
  const ctx = await createContext(
    loadConfig({ DATABASE_URL: database.url, ASSENT_SECRET: TEST_SECRET, LOG_LEVEL: 'warn', SCHEDULER_INTERVAL_SECONDS: '0' }),
  );
  const close = async () => {
    await closeContext(ctx);
    await database.drop();
  };
  try {
    done('database');
    const now = iso(ctx.clock.now());
    const emails = Array.from({ length: n }, (_, i) => `p${i}@example.com`);
    for (let from = 0; from < n; from += 1000) {
      const rows = emails
        .slice(from, from + 1000)
        .map((email, j) => newContactRow(ctx, ctx.newId(), { email, firstName: `P${from + j}`, locale: 'fr' }, { email }, now));
      await ctx.db.kysely.transaction().execute((trx) => insertContactRows(trx, rows));
    }
    done('contacts');
    await createNoEmailConsentCampaign(ctx, key, 'Durability');
    const launched = await launchCampaign(ctx, key);
    done('launch');
    expect(launched.status).toBe('running');
    expect(launched.launchReport?.audience).toBe(n);
    expect(await deliveryCounts(ctx, key)).toEqual({ queued: n });
    return { database, ctx, emails, timings, close };
  } catch (error) {
    await close();
    throw error;
  }
}

async function deliveryCounts(ctx: AppContext, key: string): Promise<Record<string, number>> {
  const rows = await ctx.db.kysely
    .selectFrom('deliveries')
    .select(['status', (eb) => eb.fn.countAll<number | string>().as('n')])
    .where('campaign_key', '=', key)
    .where('step', '=', 1)
    .groupBy('status')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

interface Worker {
  child: ChildProcess;
  name: string;
  output: () => string;
  exited: Promise<number | null>;
}

/** A real `assent worker` process sending through the sink as `name@DOMAIN`. */
function startWorker(name: string, database: TestDatabase, sink: SmtpSink, env: Record<string, string> = {}): Worker {
  const child = spawn(process.execPath, [ASSENT_BIN, 'worker'], {
    env: {
      ...process.env,
      DATABASE_URL: database.url,
      ASSENT_SECRET: TEST_SECRET,
      SMTP_URL: sink.url,
      MAIL_FROM: `Durability <${name}@${DOMAIN}>`,
      SCHEDULER_INTERVAL_SECONDS: '1',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, name, output: () => output, exited };
}

async function stopWorker(worker: Worker | undefined): Promise<void> {
  if (!worker || worker.child.exitCode !== null || worker.child.signalCode !== null) return;
  worker.child.kill('SIGTERM');
  const stopped = await Promise.race([worker.exited.then(() => true), sleep(15_000).then(() => false)]);
  if (!stopped) {
    worker.child.kill('SIGKILL');
    await worker.exited;
  }
}

/** Waits until every delivery of step 1 is sent and the sink has stopped receiving. */
async function waitUntilAllSent(ctx: AppContext, key: string, sink: SmtpSink, n: number, workers: Worker[], timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  let counts: Record<string, number> = {};
  let lastSeen = -1;
  let stableSince = 0;
  let nextReport = Date.now() + 10_000;
  while (Date.now() < until) {
    for (const w of workers) {
      if (w.child.exitCode !== null) throw new Error(`worker ${w.name} exited with ${w.child.exitCode}:\n${w.output()}`);
    }
    counts = await deliveryCounts(ctx, key);
    const received = sink.messages.length;
    if (received !== lastSeen) {
      lastSeen = received;
      stableSince = Date.now();
    }
    if ((counts.sent ?? 0) === n && received >= n && Date.now() - stableSince >= 2_000) return counts;
    if (Date.now() >= nextReport) {
      console.log(`… deliveries ${JSON.stringify(counts)}, sink ${received}`);
      nextReport = Date.now() + 10_000;
    }
    await sleep(250);
  }
  throw new Error(
    `not all sent within ${timeoutMs} ms: deliveries ${JSON.stringify(counts)}, sink ${sink.messages.length}\n` +
      workers.map((w) => `--- ${w.name}:\n${w.output()}`).join('\n'),
  );
}

const recipient = (m: ReceivedMail) => (m.to[0] ?? '').toLowerCase();
const sender = (m: ReceivedMail) => (m.from ?? '').split('@')[0] ?? '';

/** Recipients (and Message-IDs) that got more than one message, with who sent each copy. */
function duplicates(messages: ReceivedMail[]) {
  const group = (by: (m: ReceivedMail) => string) => {
    const map = new Map<string, ReceivedMail[]>();
    for (const m of messages) {
      const k = by(m);
      map.set(k, [...(map.get(k) ?? []), m]);
    }
    return [...map.entries()].filter(([, ms]) => ms.length > 1);
  };
  return {
    byRecipient: group(recipient).map(([to, ms]) => ({
      to,
      copies: ms.length,
      messageIds: ms.map((m) => m.parsed.messageId ?? null),
      sameMessageId: new Set(ms.map((m) => m.parsed.messageId)).size === 1,
      sentBy: ms.map(sender),
    })),
    byMessageId: group((m) => m.parsed.messageId ?? '(none)').map(([messageId, ms]) => ({
      messageId,
      copies: ms.length,
      sentBy: ms.map(sender),
    })),
  };
}

const share = (messages: ReceivedMail[]) => {
  const out: Record<string, number> = {};
  for (const m of messages) out[sender(m)] = (out[sender(m)] ?? 0) + 1;
  return out;
};

describe.each(dialects)('campaign durability on %s', (dialect) => {
  it('kill -9 during a 20,000-message step: a new worker finishes it, each contact gets exactly one message (one Message-ID)', async () => {
    const N = 20_000;
    // Past 3,000 but not a multiple of DELIVERY_BATCH (200): a dispatcher that sends batch after
    // batch would be caught at a batch boundary with a single message in flight, and the kill is
    // meant to land while every lane (SMTP_POOL_SIZE × 2) is sending.
    const KILL_AT = 3_100;
    const key = 'crash-step';
    const t0 = Date.now();
    const resetsBefore = connectionResets.length;
    const store = await storeWithQueuedStep(dialect, N, key);
    const sink = await startSmtpSink();
    const timings: Record<string, string> = { setup: `${elapsed(t0)} ${JSON.stringify(store.timings)}` };
    let first: Worker | undefined;
    let second: Worker | undefined;
    try {
      const env = { DELIVERY_LEASE_SECONDS: '3' };
      const t1 = Date.now();
      first = startWorker('first', store.database, sink, env);
      let killed = false;
      const reached = sink.waitFor(KILL_AT, 120_000);
      reached.catch(() => {});
      const died = first.exited.then((code) => {
        if (!killed) throw new Error(`the first worker exited with ${code} before the kill:\n${first?.output()}`);
      });
      died.catch(() => {});
      await Promise.race([reached, died]);
      killed = true;
      process.kill(first.child.pid as number, 'SIGKILL');
      await first.exited;
      const atKill = sink.messages.length;
      const countsAtKill = await deliveryCounts(store.ctx, key);
      const inFlightAtKill = new Set(
        (
          await store.ctx.db.kysely
            .selectFrom('deliveries')
            .select('id')
            .where('campaign_key', '=', key)
            .where('status', '=', 'sending')
            .execute()
        ).map((r) => `<d${r.id}.${key}@${DOMAIN}>`),
      );
      timings['first worker, until the kill'] = elapsed(t1);

      const t2 = Date.now();
      second = startWorker('second', store.database, sink, env);
      const counts = await waitUntilAllSent(store.ctx, key, sink, N, [second], 240_000);
      timings['second worker, the rest'] = elapsed(t2);
      timings.total = elapsed(t0);

      const dups = duplicates(sink.messages);
      console.log(
        `[${dialect}] kill -9 at ${atKill} received messages (deliveries then: ${JSON.stringify(countsAtKill)}); ` +
          `received in all ${sink.messages.length}, by worker ${JSON.stringify(share(sink.messages))}; ` +
          `duplicates: ${dups.byRecipient.length} recipient(s), ${dups.byMessageId.length} Message-ID(s), ` +
          `${dups.byMessageId.filter((d) => inFlightAtKill.has(d.messageId)).length} of them claimed ('sending') by the killed worker; ` +
          `connection resets seen by the sink: ${connectionResets.length - resetsBefore}; timings ${JSON.stringify(timings)}`,
      );
      if (dups.byRecipient.length > 0) console.log(`[${dialect}] duplicated: ${JSON.stringify(dups.byRecipient, null, 1)}`);

      // The store: every delivery of the step sent, none left queued or being sent.
      expect(counts).toEqual({ sent: N });
      // Every contact got the step's message, and each message is the one recorded for its delivery.
      expect(new Set(sink.messages.map(recipient))).toEqual(new Set(store.emails));
      const refs = await store.ctx.db.kysely
        .selectFrom('deliveries')
        .innerJoin('contacts', 'contacts.id', 'deliveries.contact_id')
        .select(['contacts.email', 'deliveries.provider_ref'])
        .where('deliveries.campaign_key', '=', key)
        .execute();
      const recorded = new Map(refs.map((r) => [r.email as string, r.provider_ref]));
      expect(sink.messages.filter((m) => recorded.get(recipient(m)) !== m.parsed.messageId)).toEqual([]);
      // What the README promises for a crash: only deliveries in flight at that instant (claimed by
      // the killed worker, at most SMTP_POOL_SIZE × 2 = 10 sending at once) may go twice, once from
      // each worker, with the same Message-ID.
      expect(dups.byMessageId.filter((d) => !inFlightAtKill.has(d.messageId))).toEqual([]);
      expect(dups.byMessageId.length).toBeLessThanOrEqual(10);
      expect(dups.byRecipient.filter((d) => !d.sameMessageId || d.sentBy.join() !== 'first,second')).toEqual([]);
      // Every contact received exactly one message for the step as a mailbox sees it: one
      // Message-ID each (a repeat from the crash instant carries the same one).
      const idsByRecipient = new Map<string, Set<string>>();
      for (const m of sink.messages) {
        const ids = idsByRecipient.get(recipient(m)) ?? new Set<string>();
        ids.add(String(m.parsed.messageId));
        idsByRecipient.set(recipient(m), ids);
      }
      expect(idsByRecipient.size).toBe(N);
      expect([...idsByRecipient.values()].filter((ids) => ids.size !== 1)).toEqual([]);
      expect(sink.messages.length - N).toBe(dups.byMessageId.length);
    } finally {
      await stopWorker(second);
      await stopWorker(first);
      await sink.close();
      await store.close();
    }
  }, 420_000);
});

describe.skipIf(!dialects.includes('postgres'))('campaign delivery with two workers on postgres', () => {
  it('two workers started at once drain one 5,000-delivery step without sending anything twice', async () => {
    const N = 5_000;
    const key = 'shared-step';
    const t0 = Date.now();
    const store = await storeWithQueuedStep('postgres', N, key);
    const setup = elapsed(t0);
    const sink = await startSmtpSink();
    const workers: Worker[] = [];
    try {
      const t1 = Date.now();
      // DELIVERY_LEASE_SECONDS is left at its default (300 s): this is about SKIP LOCKED, not leases.
      workers.push(startWorker('one', store.database, sink), startWorker('two', store.database, sink));
      const counts = await waitUntilAllSent(store.ctx, key, sink, N, workers, 150_000);
      const dups = duplicates(sink.messages);
      const shares = share(sink.messages);
      console.log(
        `[postgres, two workers] received ${sink.messages.length}, by worker ${JSON.stringify(shares)}; ` +
          `duplicates: ${dups.byRecipient.length} recipient(s); setup ${setup} ${JSON.stringify(store.timings)}, sending ${elapsed(t1)}`,
      );
      if (dups.byRecipient.length > 0) console.log(`duplicated: ${JSON.stringify(dups.byRecipient, null, 1)}`);

      expect(counts).toEqual({ sent: N });
      expect(dups.byRecipient).toEqual([]);
      expect(dups.byMessageId).toEqual([]);
      expect(new Set(sink.messages.map(recipient)).size).toBe(N);
      expect(sink.messages.length).toBe(N);
      // Both processes took part.
      expect(shares.one ?? 0).toBeGreaterThan(0);
      expect(shares.two ?? 0).toBeGreaterThan(0);
    } finally {
      for (const w of workers) await stopWorker(w);
      await sink.close();
      await store.close();
    }
  }, 240_000);
});

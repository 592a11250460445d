// Campaign deliveries through the pooled SMTP transport against bare nodemailer, both sending to
// the same local sink (smtp-server in a child process, as in bench/mail.ts) in the same run.
//
// Ours: Assent's real path on a fresh, small SQLite database — contacts without email consent,
// a segment and a re-permission campaign per round, launched with startAt = now (step 1 queued
// for every member: the queued deliveries), then dispatchDeliveries(ctx) timed until all are
// sent: claim a batch, check the audience rule again per delivery, read the contact, render the
// built-in repermission-first template (LiquidJS, layout, signed confirm / unsubscribe /
// preference links), compose it (MailComposer, written out at once: src/platform/mime.ts), hand
// the bytes to the pool, record the delivery as sent. One thread, as the baseline.
// Baseline: nodemailer.createTransport({ pool: true, maxConnections, maxMessages: Infinity })
// sending the very messages ours handed to its transport in the previous measured run (same
// Message-ID, from, to, subject, html, text, headers — captured on their way to the pool), with
// as many sends in flight as the dispatcher has lanes (twice the pool).
//
//   node bin/run-ts.js bench/campaign-mail.ts
//   BENCH_CAMPAIGN_MAILS=5000 BENCH_PROFILE=1 node bin/run-ts.js bench/campaign-mail.ts
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { closeContext, createContext } from '../src/boot.ts';
import { loadConfig } from '../src/config.ts';
import { createCampaign, dispatchDeliveries, launchCampaign } from '../src/modules/campaigns/index.ts';
import { createContact } from '../src/modules/contacts/contacts.service.ts';
import { createSegment } from '../src/modules/segments/segments.service.ts';
import { systemRequest } from '../src/platform/context.ts';
import type { OutgoingEmail } from '../src/platform/mailer.ts';
import { fmtInt, fmtPct, fmtRate, fmtSeconds, log } from './common.ts';
import { DATA_DIR } from './dataset.ts';
import { sendBare, sinkCount, sinkCpuMs, startSink, stopChild } from './mail.ts';
import { type Measure, printTable } from './report.ts';

export interface CampaignMailOptions {
  /** Deliveries sent each way (ours and the baseline), warm-up excluded. */
  deliveries: number;
  /** Alternating rounds the deliveries are split into. */
  rounds?: number;
  /** SMTP connections, both sides (Assent's SMTP_POOL_SIZE; default 5). */
  poolSize?: number;
}

export interface CampaignMailSide {
  messages: number;
  ms: number;
  rate: number;
  rounds: number[];
  cpuShare: number;
  sinkCpu: number;
}

export interface CampaignMailResult {
  ours: CampaignMailSide;
  bare: CampaignMailSide;
  setupMs: number;
  launchMs: number;
  rounds: number;
  concurrency: number;
  poolSize: number;
  batch: number;
  warmup: number;
  messageBytes: number;
  statuses: Record<string, number>;
  topFunctions: string[];
}

const DAY_MS = 86_400_000;
const label = (round: number) => (round < 0 ? 'warmup' : `r${round}`);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Self time by function of a CPU profile, the heaviest first. */
function topFunctions(profile: Profile, count: number): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    if (!node) return;
    const f = node.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules|src)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const name = `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    self.set(name, (self.get(name) ?? 0) + dt);
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, us]) => `${((us / total) * 100).toFixed(1)}% ${name}`);
}

export async function benchCampaignMail(
  options: CampaignMailOptions,
): Promise<{ measures: Measure[]; details: string[]; result: CampaignMailResult }> {
  const poolSize = options.poolSize ?? 5;
  const concurrency = poolSize * 2;
  const rounds = Math.max(1, options.rounds ?? 8);
  const perRound = Math.max(1, Math.floor(options.deliveries / rounds));
  const warmup = Math.min(1_000, Math.max(100, Math.floor(options.deliveries / 4)));
  const setupStarted = performance.now();

  mkdirSync(DATA_DIR, { recursive: true });
  const file = join(DATA_DIR, 'campaign-mail.db');
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });

  const sink = await startSink();
  const ctx = await createContext(
    loadConfig({
      DATABASE_URL: `sqlite:${file}`,
      ASSENT_SECRET: 'bench-campaign-mail-secret-0123456789abcdefghijklmnopqrstuvwxyz',
      SMTP_URL: `smtp://127.0.0.1:${sink.port}`,
      SMTP_POOL_SIZE: String(poolSize),
      LOG_LEVEL: 'warn',
      SCHEDULER_INTERVAL_SECONDS: '0',
      PUBLIC_URL: 'https://consent.shop.example',
      MAIL_FROM: 'Maison Bench <news@shop.example>',
      COMPANY_NAME: 'Maison Bench',
      COMPANY_ADDRESS: '1 rue de la Paix, 75002 Paris',
    }),
  );
  // What ours hands to its transport, kept for the baseline to send (a push per message).
  const inner = ctx.mailer;
  let captured: OutgoingEmail[] = [];
  ctx.mailer = {
    kind: inner.kind,
    send: (mail) => {
      captured.push(mail);
      return inner.send(mail);
    },
    close: () => inner.close(),
  };
  const bare = nodemailer.createTransport({
    host: '127.0.0.1',
    port: sink.port,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: poolSize,
    maxMessages: Number.POSITIVE_INFINITY,
  });
  const sides = {
    ours: { ms: 0, messages: 0, cpu: 0, sinkCpu: 0, rounds: [] as number[] },
    bare: { ms: 0, messages: 0, cpu: 0, sinkCpu: 0, rounds: [] as number[] },
  };
  let launchMs = 0;
  let lastSent: OutgoingEmail[] = [];
  let topList: string[] = [];
  try {
    // Contacts without any consent: round r's are tagged source "bench-r<r>" (the segment's field).
    const req = systemRequest('bench');
    const sizes = [warmup, ...Array.from({ length: rounds }, () => perRound)];
    log(`  ${fmtInt(sizes.reduce((a, b) => a + b, 0))} contacts without email consent (createContact)…`);
    let n = 0;
    for (const [r, size] of sizes.entries()) {
      for (let k = 0; k < size; k += 1, n += 1) {
        await createContact(ctx, req, {
          email: `reader${n}@bench.example`,
          firstName: `Reader${n}`,
          lastName: 'Bench',
          locale: n % 2 === 0 ? 'fr' : 'en',
          source: `bench-${label(r - 1)}`,
        });
      }
    }
    const setupMs = performance.now() - setupStarted;

    /** Round r's campaign: its segment, the campaign, the launch that queues step 1 for all. */
    const queueRound = async (r: number, size: number) => {
      const started = performance.now();
      const segment = `bench-${label(r)}`;
      await createSegment(ctx, {
        key: segment,
        name: `Bench ${label(r)}`,
        filter: {
          all: [
            { field: 'source', op: 'eq', value: `bench-${label(r)}` },
            { consent: { purpose: 'commercial-email', channel: 'email', status: ['none', 'withdrawn'] } },
          ],
        },
      });
      const now = Date.now();
      const key = `bench-mail-${label(r)}`;
      await createCampaign(ctx, {
        key,
        name: `Bench campaign ${label(r)}`,
        segment,
        purposes: ['commercial-email'],
        channel: 'email',
        startAt: new Date(now).toISOString(),
        deadline: new Date(now + 30 * DAY_MS).toISOString(),
      });
      await launchCampaign(ctx, key);
      const queued = await ctx.db.kysely
        .selectFrom('deliveries')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('campaign_key', '=', key)
        .where('status', '=', 'queued')
        .executeTakeFirstOrThrow();
      if (Number(queued.n) !== size) throw new Error(`bench campaign-mail: round ${r} queued ${queued.n} deliveries, expected ${size}`);
      return performance.now() - started;
    };

    const profiles: Profile[] = [];
    // BENCH_PROFILE=1: a CPU profile of our measured sends (bench/.data/campaign-mail-ours.cpuprofile).
    const profiler = process.env.BENCH_PROFILE ? new Session() : undefined;
    if (profiler) {
      profiler.connect();
      await profiler.post('Profiler.enable');
    }

    const measure = async (side: 'ours' | 'bare', count: number, record: boolean) => {
      const before = (await sinkCount(sink)).count;
      const sinkBefore = await sinkCpuMs(sink);
      const cpu = process.cpuUsage();
      const started = performance.now();
      if (side === 'ours') {
        captured = [];
        if (profiler && record) await profiler.post('Profiler.start');
        const r = await dispatchDeliveries(ctx);
        if (profiler && record) profiles.push((await profiler.post('Profiler.stop')).profile as unknown as Profile);
        if (r.sent !== count) throw new Error(`dispatchDeliveries sent ${r.sent} of ${count} (${JSON.stringify(r)})`);
      } else {
        const mails = Array.from({ length: count }, (_, i) => lastSent[i % lastSent.length] as OutgoingEmail);
        await sendBare(bare, mails, concurrency);
      }
      const ms = performance.now() - started;
      const used = process.cpuUsage(cpu);
      const sinkUsed = (await sinkCpuMs(sink)) - sinkBefore;
      const after = await sinkCount(sink);
      if (after.count - before !== count)
        throw new Error(`the sink received ${after.count - before} messages, expected ${count} (${side})`);
      if (side === 'ours') lastSent = captured;
      if (record) {
        const s = sides[side];
        s.ms += ms;
        s.messages += count;
        s.cpu += (used.user + used.system) / 1000;
        s.sinkCpu += sinkUsed;
        s.rounds.push((count * 1000) / ms);
      }
    };

    // Warm-up (round -1: ours first, so that the baseline has messages), then alternating rounds.
    for (let r = -1; r < rounds; r += 1) {
      const size = r < 0 ? warmup : perRound;
      const ms = await queueRound(r, size);
      if (r >= 0) launchMs += ms;
      const order: Array<'ours' | 'bare'> = r < 0 || r % 2 === 1 ? ['ours', 'bare'] : ['bare', 'ours'];
      for (const side of order) await measure(side, size, r >= 0);
      if (r >= 0)
        log(`  round ${r + 1}/${rounds}: bare ${fmtRate(sides.bare.rounds.at(-1) ?? 0)}, ours ${fmtRate(sides.ours.rounds.at(-1) ?? 0)}`);
    }
    if (profiler) {
      const longest = profiles.sort((a, b) => b.endTime - b.startTime - (a.endTime - a.startTime))[0] as Profile;
      const out = join(DATA_DIR, 'campaign-mail-ours.cpuprofile');
      writeFileSync(out, JSON.stringify(longest));
      topList = topFunctions(longest, 25);
      log(`  wrote ${out}; self time, heaviest first:\n${topList.map((l) => `    ${l}`).join('\n')}`);
      profiler.disconnect();
    }
    const received = await sinkCount(sink);
    const statuses = Object.fromEntries(
      (
        await ctx.db.kysely
          .selectFrom('deliveries')
          .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
          .groupBy('status')
          .execute()
      ).map((r) => [r.status, Number(r.n)]),
    );
    if (Object.keys(statuses).some((s) => s !== 'sent')) throw new Error(`every delivery should be sent: ${JSON.stringify(statuses)}`);
    const side = (s: (typeof sides)['ours']): CampaignMailSide => ({
      messages: s.messages,
      ms: s.ms,
      rate: (s.messages * 1000) / s.ms,
      rounds: s.rounds,
      cpuShare: s.cpu / s.ms,
      sinkCpu: s.sinkCpu / s.ms,
    });
    const result: CampaignMailResult = {
      ours: side(sides.ours),
      bare: side(sides.bare),
      setupMs,
      launchMs,
      rounds,
      concurrency,
      poolSize,
      batch: ctx.config.deliveries.batch,
      warmup,
      messageBytes: received.bytes / received.count,
      statuses,
      topFunctions: topList,
    };
    return { measures: campaignMailMeasures(result), details: campaignMailDetails(result), result };
  } finally {
    bare.close();
    await closeContext(ctx);
    await stopChild(sink.child);
  }
}

export function campaignMailMeasures(r: CampaignMailResult): Measure[] {
  return [
    {
      name: 'campaign deliveries via the pooled SMTP transport: dispatchDeliveries (claim, audience rule, render, send, status)',
      ours: r.ours.rate,
      unit: 'msg/s',
      baselineName: 'bare nodemailer pool',
      baseline: r.bare.rate,
      target: '≥ 70% of bare nodemailer',
      pass: r.ours.rate >= 0.7 * r.bare.rate,
    },
  ];
}

export function campaignMailDetails(r: CampaignMailResult): string[] {
  const rounds = (s: CampaignMailSide) => s.rounds.map((x) => fmtInt(x)).join(', ');
  return [
    `Campaign mail: ${fmtInt(r.ours.messages)} re-permission messages each way (built-in repermission-first template, about ${fmtInt(r.messageBytes)} bytes each as received: HTML and text, List-Unsubscribe and List-Unsubscribe-Post, Message-ID), to a local smtp-server sink in a child process that reads each message to the end and discards it; ${r.poolSize} SMTP connections each side; ${r.rounds} alternating rounds (bare, ours; ours, bare; …) after a warm-up of ${fmtInt(r.warmup)} messages each way; every message counted by the sink.`,
    `Ours: a fresh SQLite database with contacts created through createContact (no consent recorded); per round a segment (the round's contacts by their source field, and commercial-email × email none or withdrawn) and a campaign launched with startAt = now, which queues step 1 for every member (${fmtInt(r.launchMs / r.rounds)} ms per round, outside the measure); then dispatchDeliveries(ctx) timed until all were sent: claim in batches of ${r.batch} (DELIVERY_BATCH), ${r.concurrency} lanes, per delivery the audience rule re-checked in SQL, the contact read, the template rendered with signed confirm, unsubscribe and preference links, the message composed by nodemailer's MailComposer and written out at once (src/platform/mime.ts: the bytes nodemailer's MIME streams give, without the streams), handed to the same pooled nodemailer transport as raw bytes with its envelope, and the delivery recorded as sent; all of it on this process's one thread (no worker threads: both sides use one core at most); ${fmtRate(r.ours.rate)} (rounds ${rounds(r.ours)}), this process busy ${r.ours.cpuShare.toFixed(2)} of a core, the sink ${r.ours.sinkCpu.toFixed(2)}.`,
    `Bare nodemailer: createTransport({ pool: true, maxConnections: ${r.poolSize}, maxMessages: Infinity }) sending the messages ours handed to its transport in its previous run (captured on the way: same Message-ID, from, to, subject, HTML, text, headers) with sendMail(), which composes and streams each one, ${r.concurrency} sends in flight; ${fmtRate(r.bare.rate)} (rounds ${rounds(r.bare)}), this process busy ${r.bare.cpuShare.toFixed(2)} of a core, the sink ${r.bare.sinkCpu.toFixed(2)}. Ratio ${fmtPct(r.ours.rate / r.bare.rate)}. Final delivery statuses: ${Object.entries(
      r.statuses,
    )
      .map(([s, n]) => `${s} ${fmtInt(n)}`)
      .join(', ')}.`,
  ];
}

function envInt(name: string, fallback: number): number {
  const n = Number((process.env[name] ?? '').replaceAll('_', ''));
  return process.env[name] && Number.isInteger(n) && n > 0 ? n : fallback;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const deliveries = envInt('BENCH_CAMPAIGN_MAILS', 5_000);
  log(`Campaign mail bench: ${fmtInt(deliveries)} deliveries each way; load average ${(loadavg()[0] as number).toFixed(2)}`);
  const { measures, details, result } = await benchCampaignMail({ deliveries, rounds: envInt('BENCH_MAIL_ROUNDS', 8) });
  log(`\n${printTable(measures)}\n`);
  for (const d of details) log(`- ${d}`);
  log(`Setup ${fmtSeconds(result.setupMs)}.`);
}

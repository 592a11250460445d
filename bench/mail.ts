// Mail through the pooled SMTP transport against bare nodemailer, both sending the same rendered
// messages to the same local sink (smtp-server in a child process, so that its CPU time is not
// in this process) in the same run.
//
// Ours: Assent's real path on a fresh SQLite database — marketing mail queued with enqueueEmail
// (rendered, with its one-click unsubscribe headers), then dispatchDue(ctx) timed until every
// message is sent: claim in batches, decide() again per message just before sending (an
// unsubscribe takes effect before the next send), hand it to the pool, record the status.
// Baseline: nodemailer.createTransport({ host, port, pool: true, maxConnections, maxMessages:
// Infinity }) sending the very rows ours sends (same Message-ID, from, to, subject, html, text,
// headers), as fast as it can with a bounded number of sends in flight.
// Enqueueing (render + insert) is timed on its own and is not part of the ratio.
//
//   node bin/run-ts.js bench/mail.ts
//   BENCH_MAILS=4000 BENCH_MAIL_ROUNDS=8 BENCH_MAIL_CONCURRENCY=10 node bin/run-ts.js bench/mail.ts
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { closeContext, createContext } from '../src/boot.ts';
import { loadConfig } from '../src/config.ts';
import { preferencesLink, unsubscribeLink } from '../src/modules/collection/index.ts';
import { recordConsents } from '../src/modules/consents/index.ts';
import { dispatchDue, enqueueEmail } from '../src/modules/messaging/index.ts';
import type { MessagesTable } from '../src/modules/messaging/messaging.table.ts';
import { saveTemplate } from '../src/modules/messaging/templates.service.ts';
import type { AppContext } from '../src/platform/context.ts';
import { systemRequest } from '../src/platform/context.ts';
import { fmtInt, fmtPct, fmtRate, fmtSeconds, log } from './common.ts';
import { DATA_DIR } from './dataset.ts';
import { type Measure, printTable } from './report.ts';

export interface MailOptions {
  /** Messages sent each way (ours and the baseline), warm-up excluded. */
  messages: number;
  /** Alternating rounds the messages are split into (baseline, ours, ours, baseline, …). */
  rounds?: number;
  /** Sends the baseline keeps in flight (default: twice the pool, as the dispatcher does). */
  concurrency?: number;
  /** SMTP connections, both sides (Assent's SMTP_POOL_SIZE; default 5). */
  poolSize?: number;
}

export interface MailSide {
  messages: number;
  ms: number;
  rate: number;
  /** Rate of each round. */
  rounds: number[];
  /** CPU time this process used per wall-clock second while sending (1 = a whole core). */
  cpuShare: number;
  /** CPU time the sink used per wall-clock second while this side sent. */
  sinkCpu: number;
}

export interface MailResult {
  ours: MailSide;
  bare: MailSide;
  enqueue: { messages: number; ms: number; rate: number };
  setupMs: number;
  rounds: number;
  concurrency: number;
  poolSize: number;
  warmup: number;
  /** Average size of one rendered message as the sink received it, bytes. */
  messageBytes: number;
  statuses: Record<string, number>;
  load: { start: number; end: number };
}

const PURPOSE = 'commercial-email';
const TEMPLATE = 'bench-weekly';
const runTs = fileURLToPath(new URL('../bin/run-ts.js', import.meta.url));
const sinkTs = fileURLToPath(new URL('./smtp-sink.ts', import.meta.url));

export interface Sink {
  port: number;
  child: ChildProcess;
}

export async function startSink(): Promise<Sink> {
  const child = spawn(process.execPath, [runTs, sinkTs], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`SMTP sink exited (${code}) before listening`)));
  });
  return { port, child };
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

function ask<T>(child: ChildProcess, question: Record<string, true>, key: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (m: Record<string, unknown>) => {
      if (!(key in m)) return;
      child.off('message', onMessage);
      resolve(m as T);
    };
    child.on('message', onMessage);
    child.send(question);
  });
}

export const sinkCount = (sink: Sink) => ask<{ count: number; bytes: number }>(sink.child, { count: true }, 'count');
export const sinkCpuMs = async (sink: Sink) => {
  const { cpu } = await ask<{ cpu: { user: number; system: number } }>(sink.child, { cpu: true }, 'cpu');
  return (cpu.user + cpu.system) / 1000;
};

/** A weekly marketing mail of an ordinary size: a few paragraphs, a list, the opt-out links. */
const paragraph = (lang: 'fr' | 'en', n: number) =>
  lang === 'fr'
    ? `<p>Offre ${n} : découvrez cette semaine notre sélection de saison, préparée par l’équipe de {{ company.name }}, avec la livraison offerte dès 49 € d’achat et les retours gratuits pendant trente jours.</p>`
    : `<p>Offer ${n}: discover this week’s seasonal selection, prepared by the {{ company.name }} team, with free delivery from €49 and free returns for thirty days.</p>`;
const templateVariants = Object.fromEntries(
  (['fr', 'en'] as const).map((lang) => [
    lang,
    {
      subject:
        lang === 'fr'
          ? 'Cette semaine chez {{ company.name }}, {{ contact.firstName }}'
          : 'This week at {{ company.name }}, {{ contact.firstName }}',
      html: `<p>${lang === 'fr' ? 'Bonjour' : 'Hello'} {{ contact.firstName }},</p>${[1, 2, 3, 4].map((n) => paragraph(lang, n)).join('')}<ul>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ul><p><a class="button" href="{{ links.preferences }}">${lang === 'fr' ? 'Voir la boutique' : 'Visit the shop'}</a></p><p><a href="{{ links.unsubscribe }}">${lang === 'fr' ? 'Se désinscrire' : 'Unsubscribe'}</a></p>`,
      text: `${lang === 'fr' ? 'Bonjour' : 'Hello'} {{ contact.firstName }},\n\n${[1, 2, 3, 4]
        .map((n) => paragraph(lang, n).replace(/<\/?p>/g, ''))
        .join(
          '\n\n',
        )}\n\n{% for item in items %}- {{ item }}\n{% endfor %}\n${lang === 'fr' ? 'Se désinscrire' : 'Unsubscribe'} : {{ links.unsubscribe }}`,
    },
  ]),
);
const items = ['Pull en laine mérinos', 'Écharpe en cachemire', 'Bonnet côtelé', 'Gants en cuir', 'Chaussettes (lot de 3)'];

/** Contacts who granted commercial email, created through the service (events, states, chains). */
async function createRecipients(
  ctx: AppContext,
  count: number,
  offset: number,
): Promise<Array<{ id: string; email: string; locale: 'fr' | 'en' }>> {
  const out: Array<{ id: string; email: string; locale: 'fr' | 'en' }> = [];
  const BATCH = 500;
  for (let start = 0; start < count; start += BATCH) {
    const n = Math.min(BATCH, count - start);
    const inputs = Array.from({ length: n }, (_, k) => ({
      email: `reader${offset + start + k}@bench.example`,
      purpose: PURPOSE,
      channel: 'email',
      action: 'grant' as const,
      source: { type: 'api', ref: 'bench-mail' },
      evidence: { ip: '198.51.100.7', method: 'bench' },
    }));
    const results = await recordConsents(ctx, systemRequest('bench'), inputs);
    for (const [k, r] of results.entries()) {
      out.push({ id: r.event.contactId, email: inputs[k]?.email as string, locale: (offset + start + k) % 2 === 0 ? 'fr' : 'en' });
    }
  }
  return out;
}

/** Queues one marketing mail per recipient, as sendEmail does (links, vars, unsubscribe headers). */
async function enqueueAll(ctx: AppContext, recipients: Array<{ id: string; email: string; locale: 'fr' | 'en' }>): Promise<string[]> {
  const ids: string[] = [];
  for (const [i, r] of recipients.entries()) {
    const unsubscribeUrl = unsubscribeLink(ctx, r.id, PURPOSE, 'email');
    ids.push(
      await enqueueEmail(ctx, ctx.db.kysely, {
        contactId: r.id,
        to: r.email,
        kind: 'marketing',
        templateKey: TEMPLATE,
        locale: r.locale,
        vars: {
          items,
          contact: { firstName: `Reader${i}`, lastName: 'Bench', email: r.email },
          links: { unsubscribe: unsubscribeUrl, preferences: preferencesLink(ctx, r.id) },
        },
        unsubscribeUrl,
        purpose: PURPOSE,
      }),
    );
  }
  return ids;
}

export type Outgoing = Parameters<ReturnType<typeof nodemailer.createTransport>['sendMail']>[0];

/** Bare nodemailer: every message handed to the pool, at most `concurrency` in flight. */
export async function sendBare(
  transport: ReturnType<typeof nodemailer.createTransport>,
  mails: Outgoing[],
  concurrency: number,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < mails.length) {
      const mail = mails[next++] as Outgoing;
      await transport.sendMail(mail);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, mails.length) }, lane));
}

async function loadRows(ctx: AppContext, ids: string[]): Promise<MessagesTable[]> {
  const rows: MessagesTable[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    rows.push(
      ...(await ctx.db.kysely
        .selectFrom('messages')
        .selectAll()
        .where('id', 'in', ids.slice(i, i + 500))
        .orderBy('id')
        .execute()),
    );
  }
  return rows;
}

const asOutgoing = (ctx: AppContext, row: MessagesTable): Outgoing => ({
  messageId: row.message_id,
  from: ctx.config.mail.from,
  to: row.to_address ?? '',
  subject: row.subject ?? '',
  html: row.html ?? '',
  text: row.body,
  headers: JSON.parse(row.headers),
});

export async function benchMail(options: MailOptions): Promise<{ measures: Measure[]; details: string[]; result: MailResult }> {
  const poolSize = options.poolSize ?? 5;
  const concurrency = options.concurrency ?? poolSize * 2;
  const rounds = Math.max(1, options.rounds ?? 8);
  const perRound = Math.max(1, Math.floor(options.messages / rounds));
  const warmup = Math.min(1_000, Math.max(100, Math.floor(options.messages / 4)));
  const loadStart = loadavg()[0] as number;
  const setupStarted = performance.now();

  mkdirSync(DATA_DIR, { recursive: true });
  const file = join(DATA_DIR, 'mail.db');
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });

  const sink = await startSink();
  const smtpUrl = `smtp://127.0.0.1:${sink.port}`;
  const ctx = await createContext(
    loadConfig({
      DATABASE_URL: `sqlite:${file}`,
      ASSENT_SECRET: 'bench-mail-secret-0123456789abcdefghijklmnopqrstuvwxyz',
      SMTP_URL: smtpUrl,
      SMTP_POOL_SIZE: String(poolSize),
      LOG_LEVEL: 'warn',
      SCHEDULER_INTERVAL_SECONDS: '0',
      PUBLIC_URL: 'https://consent.shop.example',
      MAIL_FROM: 'Maison Bench <news@shop.example>',
      COMPANY_NAME: 'Maison Bench',
      COMPANY_ADDRESS: '1 rue de la Paix, 75002 Paris',
    }),
  );
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
  const enqueue = { messages: 0, ms: 0, rate: 0 };
  let messageBytes = 0;
  let statuses: Record<string, number> = {};
  try {
    await saveTemplate(ctx, { key: TEMPLATE, channel: 'email', category: 'marketing', variants: templateVariants }, { create: true });
    const total = warmup + perRound * rounds;
    log(`  ${fmtInt(total)} contacts granting ${PURPOSE} (recordConsents, batches of 500)…`);
    const recipients = await createRecipients(ctx, total, 0);
    const setupMs = performance.now() - setupStarted;

    const profiles: Array<{ startTime: number; endTime: number }> = [];
    // BENCH_PROFILE=1: a CPU profile of our measured sends only (bench/.data/mail-ours.cpuprofile).
    const profiler = process.env.BENCH_PROFILE ? new Session() : undefined;
    if (profiler) {
      profiler.connect();
      await profiler.post('Profiler.enable');
    }

    /** One side sends a set of messages; returns the wall time, and counts CPU. */
    const measure = async (side: 'ours' | 'bare', mails: MessagesTable[], record: boolean) => {
      const before = (await sinkCount(sink)).count;
      const sinkBefore = await sinkCpuMs(sink);
      const cpu = process.cpuUsage();
      const started = performance.now();
      if (side === 'ours') {
        if (profiler && record) await profiler.post('Profiler.start');
        const r = await dispatchDue(ctx);
        if (profiler && record) {
          const { profile } = await profiler.post('Profiler.stop');
          profiles.push(profile);
        }
        if (r.sent !== mails.length) throw new Error(`dispatchDue sent ${r.sent} of ${mails.length} (${JSON.stringify(r)})`);
      } else {
        await sendBare(
          bare,
          mails.map((row) => asOutgoing(ctx, row)),
          concurrency,
        );
      }
      const ms = performance.now() - started;
      const used = process.cpuUsage(cpu);
      const sinkUsed = (await sinkCpuMs(sink)) - sinkBefore;
      const after = await sinkCount(sink);
      if (after.count - before !== mails.length)
        throw new Error(`the sink received ${after.count - before} messages, expected ${mails.length} (${side})`);
      if (record) {
        const s = sides[side];
        s.ms += ms;
        s.messages += mails.length;
        s.cpu += (used.user + used.system) / 1000;
        s.sinkCpu += sinkUsed;
        s.rounds.push((mails.length * 1000) / ms);
      }
    };

    // Warm-up: connections open, JIT warm, caches filled; then the alternating rounds.
    let offset = 0;
    for (let r = -1; r < rounds; r += 1) {
      const chunk = recipients.slice(offset, offset + (r < 0 ? warmup : perRound));
      offset += chunk.length;
      const started = performance.now();
      const ids = await enqueueAll(ctx, chunk);
      const ms = performance.now() - started;
      if (r >= 0) {
        enqueue.messages += ids.length;
        enqueue.ms += ms;
      }
      const rows = await loadRows(ctx, ids);
      const order: Array<'ours' | 'bare'> = r % 2 === 0 ? ['bare', 'ours'] : ['ours', 'bare'];
      for (const side of order) await measure(side, rows, r >= 0);
      if (r >= 0)
        log(`  round ${r + 1}/${rounds}: bare ${fmtRate(sides.bare.rounds.at(-1) ?? 0)}, ours ${fmtRate(sides.ours.rounds.at(-1) ?? 0)}`);
    }
    enqueue.rate = (enqueue.messages * 1000) / enqueue.ms;
    if (profiler) {
      // The longest round's profile (the others look alike).
      const longest = profiles.sort((a, b) => b.endTime - b.startTime - (a.endTime - a.startTime))[0];
      const out = join(DATA_DIR, 'mail-ours.cpuprofile');
      writeFileSync(out, JSON.stringify(longest));
      log(`  wrote ${out}`);
      profiler.disconnect();
    }
    const received = await sinkCount(sink);
    messageBytes = received.bytes / received.count;
    statuses = Object.fromEntries(
      (
        await ctx.db.kysely
          .selectFrom('messages')
          .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
          .groupBy('status')
          .execute()
      ).map((r) => [r.status, Number(r.n)]),
    );
    if (Object.keys(statuses).some((s) => s !== 'sent')) throw new Error(`every message should be sent: ${JSON.stringify(statuses)}`);

    const side = (s: (typeof sides)['ours']): MailSide => ({
      messages: s.messages,
      ms: s.ms,
      rate: (s.messages * 1000) / s.ms,
      rounds: s.rounds,
      cpuShare: s.cpu / s.ms,
      sinkCpu: s.sinkCpu / s.ms,
    });
    const result: MailResult = {
      ours: side(sides.ours),
      bare: side(sides.bare),
      enqueue,
      setupMs,
      rounds,
      concurrency,
      poolSize,
      warmup,
      messageBytes,
      statuses,
      load: { start: loadStart, end: loadavg()[0] as number },
    };
    return { measures: mailMeasures(result), details: mailDetails(result), result };
  } finally {
    bare.close();
    await closeContext(ctx);
    await stopChild(sink.child);
  }
}

export function mailMeasures(r: MailResult): Measure[] {
  return [
    {
      name: 'mail via the pooled SMTP transport: dispatchDue (claim, decide, send, status)',
      ours: r.ours.rate,
      unit: 'msg/s',
      baselineName: 'bare nodemailer pool',
      baseline: r.bare.rate,
      target: '≥ 70% of bare nodemailer',
      pass: r.ours.rate >= 0.7 * r.bare.rate,
    },
  ];
}

export function mailDetails(r: MailResult): string[] {
  const rounds = (s: MailSide) => s.rounds.map((x) => fmtInt(x)).join(', ');
  return [
    `Mail: ${fmtInt(r.ours.messages)} marketing messages each way (about ${fmtInt(r.messageBytes)} bytes each as received: HTML and text, List-Unsubscribe and List-Unsubscribe-Post, Message-ID), to a local smtp-server sink in a child process that reads each message to the end and discards it; ${r.poolSize} SMTP connections each side; ${r.rounds} alternating rounds (bare, ours; ours, bare; …) after a warm-up of ${fmtInt(r.warmup)} messages each way; every message counted by the sink.`,
    `Ours: Assent's real path on a fresh SQLite database — the messages queued with enqueueEmail for contacts who granted commercial-email (created through recordConsents), then dispatchDue(ctx) timed until all were sent: claim in batches, decide() again per message just before sending, send through the pooled transport, record the status; ${fmtRate(r.ours.rate)} (rounds ${rounds(r.ours)}), this process busy ${r.ours.cpuShare.toFixed(2)} of a core, the sink ${r.ours.sinkCpu.toFixed(2)}.`,
    `Bare nodemailer: createTransport({ pool: true, maxConnections: ${r.poolSize}, maxMessages: Infinity }) sending the very rows ours sent (same Message-ID, from, to, subject, HTML, text, headers), ${r.concurrency} sends in flight; ${fmtRate(r.bare.rate)} (rounds ${rounds(r.bare)}), this process busy ${r.bare.cpuShare.toFixed(2)} of a core, the sink ${r.bare.sinkCpu.toFixed(2)}. Ratio ${fmtPct(r.ours.rate / r.bare.rate)}.`,
    `Enqueue (not part of the ratio): render the template (LiquidJS, layout, footer), sign the unsubscribe and preference links, insert the row — ${fmtRate(r.enqueue.rate)} over ${fmtInt(r.enqueue.messages)} messages, one awaited enqueueEmail after another (${fmtSeconds(r.enqueue.ms)}). Final statuses: ${Object.entries(
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
  const messages = envInt('BENCH_MAILS', 4_000);
  log(`Mail bench: ${fmtInt(messages)} messages each way; load average ${(loadavg()[0] as number).toFixed(2)}`);
  const { measures, details, result } = await benchMail({
    messages,
    rounds: envInt('BENCH_MAIL_ROUNDS', 8),
    ...(process.env.BENCH_MAIL_CONCURRENCY ? { concurrency: envInt('BENCH_MAIL_CONCURRENCY', 10) } : {}),
  });
  log(`\n${printTable(measures)}\n`);
  for (const d of details) log(`- ${d}`);
  log(
    `Setup ${fmtSeconds(result.setupMs)}; load average ${result.load.start.toFixed(2)} at the start, ${result.load.end.toFixed(2)} at the end.`,
  );
}

// A claim is a lease held by a live process: it runs on real time, whatever clock the scheduler
// runs on. A real `assent worker` claims a step and hangs on an SMTP server that never answers;
// `assent scheduler run --at` three days ahead must leave its claims alone (they are due by the
// scheduler's clock, but their lease is not over), while it still takes back a claim whose lease
// is really over and sends what is due by its own clock.
import { type ChildProcess, spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import { closeContext, createContext } from '../src/boot.ts';
import { loadConfig } from '../src/config.ts';
import { launchCampaign } from '../src/modules/campaigns/index.ts';
import { insertContactRows, newContactRow } from '../src/modules/contacts/index.ts';
import { iso } from '../src/platform/clock.ts';
import type { AppContext } from '../src/platform/context.ts';
import { TEST_SECRET } from './helpers/build-app.ts';
import { createNoEmailConsentCampaign } from './helpers/campaigns.ts';
import { ASSENT_BIN, runCli } from './helpers/cli.ts';
import { createTestDatabase, dialects } from './helpers/dialects.ts';
import { startSmtpSink } from './helpers/smtp-sink.ts';

const DAY = 86_400_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An SMTP server that takes every message and never answers it: a dispatcher sending to it stays busy. */
async function startStallingServer() {
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    closeTimeout: 200,
    onData(stream) {
      stream.resume();
    },
  });
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `smtp://127.0.0.1:${(server.server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function byStatus(ctx: AppContext, key: string) {
  return ctx.db.kysely
    .selectFrom('deliveries')
    .select(['id', 'status', 'claimed_by', 'claimed_until'])
    .where('campaign_key', '=', key)
    .orderBy('id')
    .execute();
}

describe.each(dialects)('claim leases on %s', (dialect) => {
  it('`scheduler run --at` far ahead leaves a live dispatcher’s claims alone, takes back a dead one’s, sends what its clock makes due', async () => {
    const N = 40;
    const key = 'lease-step';
    const database = await createTestDatabase(dialect);
    const env = { DATABASE_URL: database.url, ASSENT_SECRET: TEST_SECRET, LOG_LEVEL: 'warn', SCHEDULER_INTERVAL_SECONDS: '0' };
    const ctx = await createContext(loadConfig(env));
    const stalling = await startStallingServer();
    const sink = await startSmtpSink();
    let live: ChildProcess | undefined;
    try {
      const now = iso(ctx.clock.now());
      const rows = Array.from({ length: N + 2 }, (_, i) =>
        newContactRow(ctx, ctx.newId(), { email: `l${i}@example.com`, locale: 'fr' }, { email: `l${i}@example.com` }, now),
      );
      await ctx.db.kysely.transaction().execute((trx) => insertContactRows(trx, rows));
      const start = await createNoEmailConsentCampaign(ctx, key, 'Leases');
      await launchCampaign(ctx, key);
      const all = await byStatus(ctx, key);
      expect(all).toHaveLength(N + 2);
      // Two deliveries the live worker must not take: due tomorrow (by real time, not yet).
      const [dead, tomorrow] = all.slice(-2).map((d) => Number(d.id)) as [number, number];
      await ctx.db.kysely
        .updateTable('deliveries')
        .set({ send_after: iso(new Date(start.getTime() + DAY)) })
        .where('id', 'in', [dead, tomorrow])
        .execute();

      // The live dispatcher: claims the N due deliveries (lease of 300 s by default) and hangs on the server.
      live = spawn(process.execPath, [ASSENT_BIN, 'worker'], {
        env: { ...process.env, ...env, SMTP_URL: stalling.url, SCHEDULER_INTERVAL_SECONDS: '1' },
        stdio: 'ignore',
      });
      let claimed: Awaited<ReturnType<typeof byStatus>> = [];
      for (let waited = 0; waited < 60_000; waited += 200) {
        claimed = (await byStatus(ctx, key)).filter((d) => d.status === 'sending');
        if (claimed.length === N) break;
        if (live.exitCode !== null) throw new Error(`the worker exited with ${live.exitCode}`);
        await sleep(200);
      }
      expect(claimed.map((d) => Number(d.id))).toEqual(all.slice(0, N).map((d) => Number(d.id)));
      const holder = claimed[0]?.claimed_by;
      expect(holder).toBeTruthy();
      expect(claimed.every((d) => d.claimed_by === holder && Date.parse(String(d.claimed_until)) > Date.now())).toBe(true);
      // A dispatcher that died: its lease ended a minute ago, in real time.
      await ctx.db.kysely
        .updateTable('deliveries')
        .set({ status: 'sending', claimed_by: 'dead-dispatcher', claimed_until: iso(new Date(Date.now() - 60_000)) })
        .where('id', '=', dead)
        .execute();

      // Three days ahead: past every lease by the manual clock, before step 2 and the deadline.
      const at = iso(new Date(start.getTime() + 3 * DAY));
      const run = await runCli(['scheduler', 'run', '--at', at, '--json'], { ...env, SMTP_URL: sink.url });
      expect(run.code, run.stderr).toBe(0);
      const jobs = (JSON.parse(run.stdout) as { jobs: Array<{ job: string; result?: { sent?: number } }> }).jobs;
      expect(jobs.find((j) => j.job === 'dispatch-deliveries')?.result?.sent).toBe(2);

      // Sent by the run: the dead dispatcher's delivery and the one due by its clock, nothing else.
      const addresses = (ids: number[]) => ids.map((id) => `l${all.findIndex((d) => Number(d.id) === id)}@example.com`).sort();
      expect(sink.messages.flatMap((m) => m.to).sort()).toEqual(addresses([dead, tomorrow]));
      // The live worker's claims are untouched: still its own, still sending.
      const after = await byStatus(ctx, key);
      const stillClaimed = after.filter((d) => d.status === 'sending');
      expect(stillClaimed.map((d) => Number(d.id))).toEqual(claimed.map((d) => Number(d.id)));
      expect(stillClaimed.every((d) => d.claimed_by === holder)).toBe(true);
      expect(after.filter((d) => d.status === 'sent').map((d) => Number(d.id))).toEqual([dead, tomorrow]);
    } finally {
      if (live && live.exitCode === null) {
        const exited = new Promise((resolve) => live?.once('exit', resolve));
        live.kill('SIGKILL');
        await exited;
      }
      await stalling.close();
      await sink.close();
      await closeContext(ctx);
      await database.drop();
    }
  }, 120_000);
});

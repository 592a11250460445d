// Due jobs, run "as if it were" a given time. On PostgreSQL an advisory lock makes one process
// run a tick while the others skip it.
import { sql } from 'kysely';
import { iso } from '../../platform/clock.ts';
import type { AppContext } from '../../platform/context.ts';
import { dispatchDeliveries, runCampaignSteps } from '../campaigns/index.ts';
import { expireConsents, expirePending, takeCheckpoint } from '../consents/index.ts';
import { dispatchDue } from '../messaging/index.ts';
import { dispatchWebhooks } from '../webhooks/index.ts';

export interface JobResult {
  job: string;
  ran: boolean;
  result?: unknown;
}

interface Job {
  name: string;
  /** Minimum time between runs, in seconds (0: every tick). */
  everySeconds: number;
  run(ctx: AppContext, at: Date): Promise<unknown>;
}

const jobs: Job[] = [
  { name: 'expire-consents', everySeconds: 0, run: async (ctx, at) => ({ expired: await expireConsents(ctx, at) }) },
  {
    name: 'expire-double-opt-in',
    everySeconds: 0,
    run: async (ctx, at) => ({ expired: await expirePending(ctx, at, ctx.config.doubleOptInExpiryDays) }),
  },
  {
    name: 'ledger-checkpoint',
    everySeconds: 3600,
    run: async (ctx) => {
      const checkpoint = await takeCheckpoint(ctx);
      return checkpoint ? { digest: checkpoint.digest, heads: checkpoint.heads } : { digest: null, heads: 0 };
    },
  },
  { name: 'campaign-steps', everySeconds: 0, run: async (ctx, at) => runCampaignSteps(ctx, at) },
];

/** Then send what the jobs above (and the day's work) queued: every node does, sharing the queues. */
const dispatchJobs: Job[] = [
  { name: 'dispatch-messages', everySeconds: 0, run: async (ctx) => dispatchDue(ctx) },
  { name: 'dispatch-deliveries', everySeconds: 0, run: async (ctx) => dispatchDeliveries(ctx) },
  // Last: it announces what the jobs above did (a campaign step completed) in the same tick.
  { name: 'dispatch-webhooks', everySeconds: 0, run: async (ctx) => dispatchWebhooks(ctx) },
];

const SCHEDULER_LOCK = 7_341_001;

export async function runDueJobs(ctx: AppContext, at: Date, options: { force?: boolean } = {}): Promise<JobResult[]> {
  return [...(await runScheduledJobs(ctx, at, options)), ...(await runJobs(ctx, at, dispatchJobs, options))];
}

/** The scheduled jobs alone; on PostgreSQL only the node holding the advisory lock runs them. */
async function runScheduledJobs(ctx: AppContext, at: Date, options: { force?: boolean }): Promise<JobResult[]> {
  if (ctx.db.dialect === 'postgres') {
    // A session-level lock held on one pooled connection for the whole tick.
    return ctx.db.kysely.connection().execute(async (conn) => {
      const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${SCHEDULER_LOCK}) as locked`.execute(conn);
      if (!rows[0]?.locked) return jobs.map((j) => ({ job: j.name, ran: false }));
      try {
        return await runJobs(ctx, at, jobs, options);
      } finally {
        await sql`select pg_advisory_unlock(${SCHEDULER_LOCK})`.execute(conn);
      }
    });
  }
  return runJobs(ctx, at, jobs, options);
}

async function runJobs(ctx: AppContext, at: Date, list: Job[], options: { force?: boolean }): Promise<JobResult[]> {
  const db = ctx.db.kysely;
  const runs = new Map((await db.selectFrom('job_runs').selectAll().execute()).map((r) => [r.job, r]));
  const results: JobResult[] = [];
  for (const job of list) {
    const last = runs.get(job.name);
    const due =
      options.force || !last || job.everySeconds === 0 || at.getTime() - new Date(last.last_run_at).getTime() >= job.everySeconds * 1000;
    if (!due) {
      results.push({ job: job.name, ran: false });
      continue;
    }
    const result = await job.run(ctx, at);
    const row = { job: job.name, last_run_at: iso(at), last_result: JSON.stringify(result) };
    await db
      .insertInto('job_runs')
      .values(row)
      .onConflict((oc) => oc.column('job').doUpdateSet({ last_run_at: row.last_run_at, last_result: row.last_result }))
      .execute();
    results.push({ job: job.name, ran: true, result });
  }
  return results;
}

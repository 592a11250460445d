// A background worker: runs the scheduled jobs (one node at a time on PostgreSQL) and drains the
// message and delivery queues, again at once while there is work, else every few seconds.
import { closeContext } from './boot.ts';
import { runDueJobs } from './modules/scheduler/index.ts';
import type { AppContext } from './platform/context.ts';

const didWork = (result: unknown) => {
  const r = result as Record<string, number> | undefined;
  return !!r && ['sent', 'stored', 'cancelled', 'failed', 'retried'].some((k) => (r[k] ?? 0) > 0);
};

export function startWorker(ctx: AppContext): () => Promise<void> {
  const intervalMs = Math.max(1, ctx.config.schedulerIntervalSeconds) * 1000;
  let stopping = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (!stopping) {
      let busy = false;
      try {
        const results = await runDueJobs(ctx, ctx.clock.now());
        busy = results.some((r) => r.job.startsWith('dispatch-') && didWork(r.result));
      } catch (error) {
        ctx.logger.error({ err: error }, 'worker tick failed');
      }
      if (!busy && !stopping) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, intervalMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  })();
  return async () => {
    stopping = true;
    wake?.();
    await loop;
    await closeContext(ctx);
  };
}

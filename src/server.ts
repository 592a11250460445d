// Starts the HTTP server and the in-process scheduler tick; stops both cleanly on a signal.
import { buildApp } from './app.ts';
import { closeContext } from './boot.ts';
import { runDueJobs } from './modules/scheduler/index.ts';
import type { AppContext } from './platform/context.ts';

export async function startServer(ctx: AppContext, options: { port: number; host: string }): Promise<() => Promise<void>> {
  const app = await buildApp(ctx);
  await app.listen({ port: options.port, host: options.host });

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let stopping = false;
  const tick = () => {
    running = runDueJobs(ctx, ctx.clock.now())
      .catch((error: unknown) => ctx.logger.error({ err: error }, 'scheduler tick failed'))
      .finally(() => {
        if (!stopping) timer = setTimeout(tick, ctx.config.schedulerIntervalSeconds * 1000);
      });
  };
  if (ctx.config.schedulerIntervalSeconds > 0) timer = setTimeout(tick, ctx.config.schedulerIntervalSeconds * 1000);

  return async () => {
    stopping = true;
    if (timer) clearTimeout(timer);
    await app.close();
    await running;
    await closeContext(ctx);
  };
}

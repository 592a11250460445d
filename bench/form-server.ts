// The real app for the form bench, in its own process (the load tool does not share its event
// loop): `form-server.ts FILE` serves Assent on that SQLite file with the settings of
// form-env.ts (a high public-POST rate limit, the outbox transport). Reports its port over IPC,
// answers { cpu } queries, profiles on { profile: 'start' } when BENCH_PROFILE names a file, and
// stops on SIGTERM.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { buildApp } from '../src/app.ts';
import { closeContext, createContext } from '../src/boot.ts';
import { loadConfig } from '../src/config.ts';
import { formBenchEnv } from './form-env.ts';

async function main(file: string): Promise<void> {
  const ctx = await createContext(loadConfig(formBenchEnv(file)));
  const app = await buildApp(ctx);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();

  let profiling: Session | undefined;
  process.on('message', async (message: { profile?: 'start'; cpu?: true }) => {
    if (message.cpu) process.send?.({ cpu: process.cpuUsage() });
    if (message.profile === 'start' && process.env.BENCH_PROFILE) {
      profiling = new Session();
      profiling.connect();
      await profiling.post('Profiler.enable');
      await profiling.post('Profiler.start');
    }
  });
  process.once('SIGTERM', async () => {
    if (profiling && process.env.BENCH_PROFILE) {
      const { profile } = await profiling.post('Profiler.stop');
      writeFileSync(process.env.BENCH_PROFILE, JSON.stringify(profile));
    }
    app
      .close()
      .then(() => closeContext(ctx))
      .finally(() => process.exit(0));
  });
  process.send?.({ port: typeof address === 'object' && address ? address.port : 0 });
}

const file = process.argv[2];
if (process.send && file) await main(file);

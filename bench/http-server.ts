// A server for the HTTP benches, run in its own process so that the load tool does not share its
// event loop: `assent FILE` (the real app on the bench database), `form FILE` (the real app with
// the form bench's settings: form-env.ts) or `bare` (one Fastify route returning a constant).
// Reports its port to the parent over IPC, answers { cpu } queries, profiles on
// { profile: 'start' } when BENCH_PROFILE names a file, and stops on SIGTERM.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import Fastify from 'fastify';
import { buildApp } from '../src/app.ts';
import { closeContext, createContext } from '../src/boot.ts';
import { loadConfig } from '../src/config.ts';
import { formBenchEnv } from './form-env.ts';

const [mode, file] = process.argv.slice(2);

async function start(): Promise<{ port: number; close: () => Promise<void> }> {
  if (mode === 'bare') {
    const app = Fastify({ logger: false });
    const answer = { allowed: true, basis: 'consent', reason: 'consent', evidenceEventId: '01JGFJK3W8F2CR961DJS96NHR6', expiresAt: null };
    app.get('/v1/decisions', async () => answer);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    return { port: typeof address === 'object' && address ? address.port : 0, close: () => app.close() };
  }
  if ((mode === 'assent' || mode === 'form') && file) {
    const config = loadConfig(
      mode === 'form' ? formBenchEnv(file) : { DATABASE_URL: `sqlite:${file}`, LOG_LEVEL: 'warn', SCHEDULER_INTERVAL_SECONDS: '0' },
    );
    const ctx = await createContext(config);
    const app = await buildApp(ctx);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    return {
      port: typeof address === 'object' && address ? address.port : 0,
      close: async () => {
        await app.close();
        await closeContext(ctx);
      },
    };
  }
  throw new Error('usage: http-server.ts bare | assent FILE | form FILE');
}

const server = await start();

// BENCH_PROFILE=FILE: the parent asks for a CPU profile of the measured run only (after warm-up).
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
  server.close().finally(() => process.exit(0));
});
process.send?.({ port: server.port });

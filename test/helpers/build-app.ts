// The real app on a real store, for tests: app.inject() against it, with a manual clock.
import { Writable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { closeContext, createContext } from '../../src/boot.ts';
import { loadConfig } from '../../src/config.ts';
import type { Dialect } from '../../src/database.ts';
import { createKey } from '../../src/modules/auth/index.ts';
import { ManualClock } from '../../src/platform/clock.ts';
import type { AppContext } from '../../src/platform/context.ts';
import type { App } from '../../src/platform/http.ts';
import { createLogger } from '../../src/platform/logger.ts';
import { createTestDatabase, type TestDatabase } from './dialects.ts';

export const TEST_SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz';

export interface TestApp {
  app: App;
  ctx: AppContext;
  clock: ManualClock;
  database: TestDatabase;
  keys: { admin: string; write: string; read: string };
  /** Every log line written so far (JSON text). */
  logs: string[];
  call(
    method: string,
    url: string,
    options?: { body?: unknown; key?: string | null; headers?: Record<string, string> },
  ): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export async function buildTestApp(dialect: Dialect, options: { now?: string; env?: Record<string, string> } = {}): Promise<TestApp> {
  const database = await createTestDatabase(dialect);
  const clock = new ManualClock(options.now ?? '2026-11-22T10:00:00.000Z');
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const config = loadConfig({
    DATABASE_URL: database.url,
    ASSENT_SECRET: TEST_SECRET,
    LOG_LEVEL: 'info',
    SCHEDULER_INTERVAL_SECONDS: '0',
    ...options.env,
  });
  const ctx = await createContext(config, { clock, logger: createLogger('info', sink) });
  const app = await buildApp(ctx);
  const keys = {
    admin: (await createKey(ctx, { name: 'test-admin', scope: 'admin' })).key,
    write: (await createKey(ctx, { name: 'test-write', scope: 'write' })).key,
    read: (await createKey(ctx, { name: 'test-read', scope: 'read' })).key,
  };
  return {
    app,
    ctx,
    clock,
    database,
    keys,
    logs,
    call(method, url, { body, key, headers } = {}) {
      const auth = key === null ? {} : { authorization: `Bearer ${key ?? keys.admin}` };
      return app.inject({
        method: method as 'GET',
        url,
        headers: { ...auth, ...(body !== undefined && typeof body !== 'string' ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
    },
    async close() {
      await app.close();
      await closeContext(ctx);
      await database.drop();
    },
  };
}

// Assembles the application context: store, migrations, secret, built-in configuration.
import type { Config } from './config.ts';
import { createDb } from './database.ts';
import { migrateToLatest } from './migrations/index.ts';
import { ensureBuiltinChannels } from './modules/channels/index.ts';
import { registerCollection } from './modules/collection/index.ts';
import { builtinTemplates, ensureBuiltinTemplates } from './modules/messaging/index.ts';
import { ensureBuiltinPurposes } from './modules/purposes/index.ts';
import { registerWebhooks } from './modules/webhooks/index.ts';
import { type Clock, systemClock } from './platform/clock.ts';
import type { AppContext } from './platform/context.ts';
import { createIdGenerator } from './platform/ids.ts';
import { createLogger, type Logger } from './platform/logger.ts';
import { createMailer } from './platform/mailer.ts';
import { resolveSecret } from './platform/secret.ts';
import { createSmsProvider } from './platform/sms.ts';

export interface BootOptions {
  clock?: Clock;
  logger?: Logger;
  /** Run migrations and seed built-ins (default true). */
  migrate?: boolean;
}

export async function createContext(config: Config, options: BootOptions = {}): Promise<AppContext> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const db = createDb(config.database, {
    pgPoolSize: config.pgPoolSize,
    onIdleError: (error) => logger.warn({ err: error }, 'an idle database connection failed and was dropped'),
  });
  try {
    if (options.migrate !== false) await migrateToLatest(db.kysely);
    const ctx: AppContext = {
      config,
      db,
      clock: options.clock ?? systemClock,
      newId: createIdGenerator(),
      logger,
      secret: '',
      cache: new Map(),
      mailer: createMailer(config.mail),
      sms: createSmsProvider(config.sms),
      consentHooks: [],
      background: new Set(),
    };
    ctx.secret = await resolveSecret(db.kysely, config.secret);
    if (options.migrate !== false) {
      await ensureBuiltinChannels(ctx);
      await ensureBuiltinPurposes(ctx);
      await ensureBuiltinTemplates(ctx, builtinTemplates);
    }
    registerCollection(ctx);
    registerWebhooks(ctx);
    return ctx;
  } catch (error) {
    await db.close();
    throw error;
  }
}

/** Waits for background work (mail being sent), then closes the mailer and the store. */
export async function closeContext(ctx: AppContext): Promise<void> {
  await Promise.allSettled([...ctx.background]);
  await ctx.mailer.close();
  await ctx.db.close();
}

// The application context (long-lived parts) and the request context (who acts, from where).
import type { Config } from '../config.ts';
import type { Db, Executor } from '../database.ts';
import type { Clock } from './clock.ts';
import type { IdGenerator } from './ids.ts';
import type { Logger } from './logger.ts';
import type { Mailer } from './mailer.ts';
import type { SmsProvider } from './sms.ts';

/** Called inside the transaction that recorded consent events (e.g. to queue a double opt-in mail). */
export type ConsentEventsHook = (
  trx: Executor,
  events: Array<{ id: string; contactId: string; purpose: string; channel: string; action: string; status: string; sourceType: string }>,
) => Promise<(() => void) | undefined>;

export interface AppContext {
  config: Config;
  db: Db;
  clock: Clock;
  newId: IdGenerator;
  logger: Logger;
  /** Server secret: keys the address hashes (suppressions) and evidence digests. */
  secret: string;
  /** Small in-process caches of configuration, invalidated on local writes and by age. */
  cache: Map<string, { at: number; value: unknown }>;
  mailer: Mailer;
  sms: SmsProvider;
  consentHooks: ConsentEventsHook[];
  /** Work started in the background (mail dispatch): awaited before closing. */
  background: Set<Promise<unknown>>;
}

export type ActorType = 'api_key' | 'cli' | 'system' | 'person';

export interface Actor {
  type: ActorType;
  id?: string;
  name?: string;
}

export interface RequestContext {
  actor: Actor;
  ip?: string;
  userAgent?: string;
}

export const systemRequest = (name = 'scheduler'): RequestContext => ({ actor: { type: 'system', name } });
export const cliRequest = (): RequestContext => ({ actor: { type: 'cli', name: 'cli' } });

const CACHE_TTL_MS = 2_000;

/** Reads through a short-lived cache: other processes' changes show within two seconds. */
export async function cached<T>(ctx: AppContext, key: string, load: () => Promise<T>): Promise<T> {
  const hit = ctx.cache.get(key);
  const now = Date.now();
  if (hit && now - hit.at < CACHE_TTL_MS) return hit.value as T;
  const value = await load();
  ctx.cache.set(key, { at: now, value });
  return value;
}

/** The value cached() would answer at once, if it is there and fresh; undefined otherwise. No promise. */
export function peekCached<T>(ctx: AppContext, key: string): T | undefined {
  const hit = ctx.cache.get(key);
  return hit && Date.now() - hit.at < CACHE_TTL_MS ? (hit.value as T) : undefined;
}

export function invalidate(ctx: AppContext, prefix: string): void {
  for (const key of ctx.cache.keys()) if (key.startsWith(prefix)) ctx.cache.delete(key);
}

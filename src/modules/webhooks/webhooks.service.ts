// Webhooks: who is told of what, and the outbox rows that announce each change, written in the
// transaction of the change itself.
import type { Executor } from '../../database.ts';
import { iso } from '../../platform/clock.ts';
import { type AppContext, type ConsentEventsHook, cached, invalidate } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import {
  cancelPendingOfDeleted,
  findWebhookRow,
  insertDeliveryRows,
  insertWebhookRow,
  listDeliveryRows,
  listLiveWebhookRows,
  softDeleteWebhookRow,
  type WebhookDeliveryRow,
  type WebhookRow,
} from './webhooks.repository.ts';
import { generateWebhookSecret, sealSecret } from './webhooks.secret.ts';

export const webhookEventTypes = [
  'consent.changed',
  'contact.created',
  'contact.updated',
  'contact.erased',
  'campaign.step.completed',
  'import.completed',
] as const;

export type WebhookEventType = (typeof webhookEventTypes)[number];

/** What each event's `data` holds: ids, keys and counts, never an address or a name. */
export interface WebhookEventData {
  'consent.changed': {
    /** The ledger event. */
    eventId: string;
    contactId: string;
    purpose: string;
    channel: string;
    action: string;
    /** The state after the event. */
    status: string;
    source: { type: string };
  };
  'contact.created': { contactId: string };
  /** `fields`: the names of what changed (`firstName`, `attributes.<key>`…), not their values. */
  'contact.updated': { contactId: string; fields: string[] };
  'contact.erased': { contactId: string };
  'campaign.step.completed': { campaign: string; step: number; counts: Record<string, number> };
  'import.completed': { importId: string; status?: string; counts: Record<string, number> };
}

export interface WebhookEvent<T extends WebhookEventType = WebhookEventType> {
  type: T;
  data: WebhookEventData[T];
}

export interface Webhook {
  id: string;
  url: string;
  events: WebhookEventType[];
  createdAt: string;
}

export interface WebhookAttempt {
  at: string;
  status: number | null;
  error: string | null;
  ms: number;
}

export interface WebhookDelivery {
  id: string;
  eventId: string;
  eventType: string;
  status: 'pending' | 'delivered' | 'failed' | 'cancelled';
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  /** When the next attempt is due; null once the delivery is over. */
  nextAttemptAt: string | null;
  createdAt: string;
  deliveredAt: string | null;
  history: WebhookAttempt[];
}

const toWebhook = (row: WebhookRow): Webhook => ({
  id: row.id,
  url: row.url,
  events: JSON.parse(row.events) as WebhookEventType[],
  createdAt: row.created_at,
});

const toDelivery = (row: WebhookDeliveryRow): WebhookDelivery => ({
  id: row.id,
  eventId: row.event_id,
  eventType: row.event_type,
  status: row.status as WebhookDelivery['status'],
  attempts: Number(row.attempts),
  lastStatus: row.last_status === null ? null : Number(row.last_status),
  lastError: row.last_error,
  nextAttemptAt: row.status === 'pending' ? row.next_attempt_at : null,
  createdAt: row.created_at,
  deliveredAt: row.delivered_at,
  history: JSON.parse(row.history) as WebhookAttempt[],
});

const CACHE_KEY = 'webhooks:live';

/**
 * The live webhooks, read through the short cache. On a miss they are read with the caller's
 * executor: inside a transaction on SQLite, the store's one writer connection is that transaction's.
 */
const liveWebhooks = (ctx: AppContext, db: Executor): Promise<Webhook[]> =>
  cached(ctx, CACHE_KEY, async () => (await listLiveWebhookRows(db)).map(toWebhook));

const LOOPBACK_HOSTS = new Set(['localhost', '[::1]', '0.0.0.0', '[::]', '[::ffff:127.0.0.1]']);

/** Refuses what is not an absolute http(s) URL, and URLs that lead back to this server. */
export function checkWebhookUrl(ctx: AppContext, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DomainError('webhook_url_invalid', 'The url is not an absolute URL', [
      { path: '/url', message: 'must be an absolute http(s) URL' },
    ]);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    throw new DomainError('webhook_url_invalid', `A webhook URL is http:// or https:// (got ${url.protocol})`, [
      { path: '/url', message: 'must be an http(s) URL' },
    ]);
  }
  const own = new URL(ctx.config.publicUrl);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const host = url.hostname.toLowerCase();
  const loopback = LOOPBACK_HOSTS.has(host) || host.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (url.origin === own.origin || ((loopback || host === ctx.config.host) && port === ctx.config.port)) {
    throw new DomainError(
      'webhook_url_not_allowed',
      'A webhook may not point at this server (PUBLIC_URL, or its own port on this machine)',
      [{ path: '/url', message: 'points at this server' }],
    );
  }
  return url.toString();
}

function checkEvents(events: string[]): WebhookEventType[] {
  const known = new Set<string>(webhookEventTypes);
  const errors = events.flatMap((e, i) =>
    known.has(e) ? [] : [{ path: `/events/${i}`, message: `is not an event type (${webhookEventTypes.join(', ')})` }],
  );
  if (errors.length > 0) throw new DomainError('unknown_webhook_event', errors.map((e) => `${e.path} ${e.message}`).join('; '), errors);
  return webhookEventTypes.filter((t) => events.includes(t));
}

export async function listWebhooks(ctx: AppContext): Promise<Webhook[]> {
  return (await listLiveWebhookRows(ctx.db.kysely)).map(toWebhook);
}

/** Creates a webhook; the signing secret (given, or generated) is in the answer and nowhere else in clear. */
export async function createWebhook(
  ctx: AppContext,
  input: { url: string; events: string[]; secret?: string },
): Promise<Webhook & { secret: string }> {
  const url = checkWebhookUrl(ctx, input.url);
  const events = checkEvents(input.events);
  const secret = input.secret ?? generateWebhookSecret();
  const id = ctx.newId();
  const row: WebhookRow = {
    id,
    url,
    events: JSON.stringify(events),
    secret: sealSecret(ctx.secret, id, secret),
    created_at: iso(ctx.clock.now()),
    deleted_at: null,
  };
  await insertWebhookRow(ctx.db.kysely, row);
  invalidate(ctx, CACHE_KEY);
  ctx.logger.info({ webhook: id, events }, 'webhook created');
  return { ...toWebhook(row), secret };
}

/** Soft delete: the webhook stops receiving events and its pending deliveries are not sent. */
export async function deleteWebhook(ctx: AppContext, id: string): Promise<void> {
  const at = iso(ctx.clock.now());
  await ctx.db.kysely.transaction().execute(async (trx) => {
    if ((await softDeleteWebhookRow(trx, id, at)) === 0) throw new DomainError('webhook_not_found', `There is no webhook "${id}"`);
    await cancelPendingOfDeleted(trx, at, id);
  });
  invalidate(ctx, CACHE_KEY);
  ctx.logger.info({ webhook: id }, 'webhook deleted');
}

/** A webhook's deliveries, newest first (those of a deleted webhook stay readable). */
export async function listWebhookDeliveries(
  ctx: AppContext,
  id: string,
  cursor?: string | null,
  limit = 50,
): Promise<{ items: WebhookDelivery[]; nextCursor: string | null }> {
  if (!(await findWebhookRow(ctx.db.kysely, id))) throw new DomainError('webhook_not_found', `There is no webhook "${id}"`);
  const size = Math.max(1, Math.min(500, Math.floor(limit)));
  const before = cursor ? Buffer.from(cursor, 'base64url').toString() : undefined;
  const rows = await listDeliveryRows(ctx.db.kysely, id, before, size + 1);
  const page = rows.slice(0, size);
  const last = page.at(-1);
  return {
    items: page.map(toDelivery),
    nextCursor: rows.length > size && last ? Buffer.from(last.id).toString('base64url') : null,
  };
}

/**
 * Announces events: one outbox row per live webhook subscribed to each, written with `db` — the
 * transaction of the change, so an event is announced if and only if the change commits. Returns
 * how many deliveries were queued.
 */
export async function emitWebhookEvents(ctx: AppContext, db: Executor, events: WebhookEvent[]): Promise<number> {
  if (events.length === 0) return 0;
  const hooks = await liveWebhooks(ctx, db);
  if (hooks.length === 0) return 0;
  const createdAt = iso(ctx.clock.now());
  const rows: WebhookDeliveryRow[] = [];
  for (const event of events) {
    const subscribed = hooks.filter((h) => h.events.includes(event.type));
    if (subscribed.length === 0) continue;
    const id = ctx.newId();
    const payload = JSON.stringify({ id, type: event.type, createdAt, data: event.data });
    for (const hook of subscribed) {
      rows.push({
        id: ctx.newId(),
        webhook_id: hook.id,
        event_id: id,
        event_type: event.type,
        payload,
        status: 'pending',
        attempts: 0,
        next_attempt_at: createdAt,
        last_status: null,
        last_error: null,
        history: '[]',
        created_at: createdAt,
        delivered_at: null,
      });
    }
  }
  await insertDeliveryRows(db, rows);
  return rows.length;
}

/** One event: see `emitWebhookEvents`. */
export function emitWebhookEvent<T extends WebhookEventType>(
  ctx: AppContext,
  db: Executor,
  type: T,
  data: WebhookEventData[T],
): Promise<number> {
  return emitWebhookEvents(ctx, db, [{ type, data } as WebhookEvent]);
}

/** `consent.changed` for every consent event, from inside the transaction that recorded them. */
const consentChangedHook =
  (ctx: AppContext): ConsentEventsHook =>
  async (trx, events) => {
    await emitWebhookEvents(
      ctx,
      trx,
      events.map((e) => ({
        type: 'consent.changed' as const,
        data: {
          eventId: e.id,
          contactId: e.contactId,
          purpose: e.purpose,
          channel: e.channel,
          action: e.action,
          status: e.status,
          source: { type: e.sourceType },
        },
      })),
    );
    return undefined;
  };

export function registerWebhooks(ctx: AppContext): void {
  ctx.consentHooks.push(consentChangedHook(ctx));
}

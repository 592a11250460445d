// Sends due webhook deliveries: claim a batch (a lease: other dispatchers skip it), POST each
// signed body, record each attempt at once. A 2xx is delivered; anything else is tried again with
// a growing delay until 24 hours after the event, then the delivery is failed.
import { performance } from 'node:perf_hooks';
import { iso } from '../../platform/clock.ts';
import type { AppContext } from '../../platform/context.ts';
import {
  cancelPendingOfDeleted,
  claimDueDeliveryRows,
  findWebhookRows,
  recordAttemptRow,
  type WebhookDeliveryRow,
} from './webhooks.repository.ts';
import { openSecret, signatureHeader } from './webhooks.secret.ts';
import type { WebhookAttempt } from './webhooks.service.ts';

export interface WebhookDispatchResult {
  sent: number;
  retried: number;
  failed: number;
}

/** Retries go on this long after the event; the last one is made at that instant. */
export const WEBHOOK_RETRY_WINDOW_MS = 24 * 3_600_000;
const FIRST_RETRY_MS = 30_000;
const MAX_RETRY_MS = 3_600_000;
const TIMEOUT_MS = 10_000;
/** Longer than a send can take: a claimed delivery is due again only if its dispatcher died. */
const LEASE_MS = 60_000;
const BATCH = 100;
const PARALLEL = 8;
const HISTORY_KEPT = 100;

/** The delay after the n-th failed attempt: 30 s, 1 min, 2 min … at most 1 h. No jitter: tests drive it. */
export const retryDelayMs = (attempts: number): number => Math.min(FIRST_RETRY_MS * 2 ** Math.max(0, attempts - 1), MAX_RETRY_MS);

interface Target {
  url: string;
  secret: string | Error;
}

export async function dispatchWebhooks(
  ctx: AppContext,
  options: { max?: number; timeoutMs?: number } = {},
): Promise<WebhookDispatchResult> {
  const result: WebhookDispatchResult = { sent: 0, retried: 0, failed: 0 };
  const db = ctx.db.kysely;
  await cancelPendingOfDeleted(db, iso(ctx.clock.now()));
  const max = options.max ?? Number.POSITIVE_INFINITY;
  let handled = 0;
  while (handled < max) {
    const now = ctx.clock.now();
    const batch = await claimDueDeliveryRows(
      db,
      ctx.db.dialect,
      iso(now),
      iso(new Date(now.getTime() + LEASE_MS)),
      Math.min(BATCH, max - handled),
    );
    if (batch.length === 0) break;
    handled += batch.length;
    const targets = new Map<string, Target>();
    for (const row of await findWebhookRows(db, [...new Set(batch.map((d) => d.webhook_id))])) {
      let secret: string | Error;
      try {
        secret = openSecret(ctx.secret, row.id, row.secret);
      } catch (error) {
        secret = error as Error;
      }
      targets.set(row.id, { url: row.url, secret });
    }
    // Webhooks in parallel; each one's deliveries one after the other, oldest first.
    const byWebhook = new Map<string, WebhookDeliveryRow[]>();
    for (const d of batch) byWebhook.set(d.webhook_id, [...(byWebhook.get(d.webhook_id) ?? []), d]);
    const queues = [...byWebhook.values()];
    let next = 0;
    const lane = async () => {
      while (next < queues.length) {
        for (const delivery of queues[next++] as WebhookDeliveryRow[]) {
          const outcome = await attempt(ctx, delivery, targets.get(delivery.webhook_id), options.timeoutMs ?? TIMEOUT_MS);
          result[outcome] += 1;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, queues.length) }, lane));
  }
  return result;
}

/** Why a send failed, in a few words (never the URL: it may carry a token). */
function failureOf(error: unknown): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timeout';
  const cause = e.cause?.code ?? e.cause?.message;
  return String(cause ? `${e.message ?? 'failed'}: ${cause}` : (e.message ?? error)).slice(0, 300);
}

async function attempt(
  ctx: AppContext,
  d: WebhookDeliveryRow,
  target: Target | undefined,
  timeoutMs: number,
): Promise<keyof WebhookDispatchResult> {
  const started = performance.now();
  let status: number | null = null;
  let error: string | null = null;
  if (!target) error = 'webhook not found';
  else if (target.secret instanceof Error) error = 'the signing secret cannot be opened (was ASSENT_SECRET changed?)';
  else {
    try {
      const response = await fetch(target.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Assent-Webhooks/1',
          'assent-signature': signatureHeader(target.secret, d.payload, ctx.clock.now()),
          'assent-event-id': d.event_id,
          'assent-event-type': d.event_type,
        },
        body: d.payload,
        // A redirect is not followed (it could lead anywhere): it counts as a failed attempt.
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = response.status;
      await response.body?.cancel().catch(() => {});
      if (status < 200 || status >= 300) error = `HTTP ${status}`;
    } catch (e) {
      error = failureOf(e);
    }
  }
  const now = ctx.clock.now();
  const at = iso(now);
  const entry: WebhookAttempt = { at, status, error, ms: Math.round(performance.now() - started) };
  const history = [...(JSON.parse(d.history) as WebhookAttempt[]), entry].slice(-HISTORY_KEPT);
  const common = { attempts: d.attempts, last_status: status, last_error: error, history: JSON.stringify(history) };
  let outcome: keyof WebhookDispatchResult;
  let set: Parameters<typeof recordAttemptRow>[3];
  if (error === null) {
    outcome = 'sent';
    set = { ...common, status: 'delivered', delivered_at: at, next_attempt_at: at };
  } else {
    const deadline = Date.parse(d.created_at) + WEBHOOK_RETRY_WINDOW_MS;
    if (now.getTime() >= deadline) {
      outcome = 'failed';
      set = { ...common, status: 'failed', next_attempt_at: at };
    } else {
      outcome = 'retried';
      set = { ...common, next_attempt_at: iso(new Date(Math.min(now.getTime() + retryDelayMs(d.attempts), deadline))) };
    }
    ctx.logger.warn(
      { webhook: d.webhook_id, delivery: d.id, event: d.event_type, attempt: d.attempts, status, error, final: outcome === 'failed' },
      'a webhook delivery failed',
    );
  }
  if (!(await recordAttemptRow(ctx.db.kysely, d.id, d.attempts, set))) {
    ctx.logger.warn({ webhook: d.webhook_id, delivery: d.id }, 'a webhook delivery was taken over by another dispatcher');
  }
  return outcome;
}

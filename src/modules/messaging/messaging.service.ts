// Every message Assent sends: rendered and queued in the caller's transaction (nothing is sent
// that was not recorded), then dispatched in batches through the configured mailer.
import type { Executor } from '../../database.ts';
import { iso } from '../../platform/clock.ts';
import type { AppContext } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { decide } from '../consents/index.ts';
import type { MessagesTable } from './messaging.table.ts';
import { getTemplate, renderEmail } from './templates.service.ts';

export interface EmailRequest {
  contactId: string | null;
  to: string;
  /** Why it is sent: double_opt_in, preference_link, withdrawal_receipt, campaign… */
  kind: string;
  templateKey: string;
  locale: string | null | undefined;
  vars: Record<string, unknown>;
  /** Marketing mail: the one-click unsubscribe target (RFC 8058). */
  unsubscribeUrl?: string;
  /** Marketing mail: the purpose it serves; the decision is asked again just before sending. */
  purpose?: string;
  sendAfter?: string;
}

export interface OutboxMessage {
  id: string;
  contactId: string | null;
  kind: string;
  channel: string;
  to: string | null;
  templateKey: string;
  purpose: string | null;
  locale: string;
  subject: string | null;
  status: string;
  attempts: number;
  lastError: string | null;
  messageId: string;
  createdAt: string;
  sentAt: string | null;
}

export interface OutboxMessageDetail extends OutboxMessage {
  html: string | null;
  text: string;
  headers: Record<string, string>;
}

const toMessage = (r: MessagesTable): OutboxMessage => ({
  id: r.id,
  contactId: r.contact_id,
  kind: r.kind,
  channel: r.channel_key,
  to: r.to_address,
  templateKey: r.template_key,
  purpose: r.purpose_key,
  locale: r.locale,
  subject: r.subject,
  status: r.status,
  attempts: r.attempts,
  lastError: r.last_error,
  messageId: r.message_id,
  createdAt: r.created_at,
  sentAt: r.sent_at,
});

const mailDomain = (ctx: AppContext) => {
  const from = /<([^>]+)>\s*$/.exec(ctx.config.mail.from)?.[1] ?? ctx.config.mail.from;
  return from.split('@')[1] ?? 'localhost';
};

/** Renders and queues an email in the given transaction. Returns the message id. */
export async function enqueueEmail(ctx: AppContext, db: Executor, request: EmailRequest): Promise<string> {
  const template = await getTemplate(ctx, request.templateKey);
  const rendered = await renderEmail(ctx, template, request.locale, request.vars);
  const id = ctx.newId();
  const headers: Record<string, string> = {};
  if (request.unsubscribeUrl) {
    headers['List-Unsubscribe'] = `<${request.unsubscribeUrl}>, <mailto:${ctx.config.mail.unsubscribeMailto}?subject=unsubscribe>`;
    headers['List-Unsubscribe-Post'] = 'List-Unsubscribe=One-Click';
  }
  const now = iso(ctx.clock.now());
  await db
    .insertInto('messages')
    .values({
      id,
      contact_id: request.contactId,
      kind: request.kind,
      channel_key: 'email',
      to_address: request.to,
      template_key: template.key,
      purpose_key: request.purpose ?? null,
      locale: rendered.locale,
      subject: rendered.subject,
      html: rendered.html,
      body: rendered.text,
      headers: JSON.stringify(headers),
      status: 'queued',
      attempts: 0,
      last_error: null,
      message_id: `<${id.toLowerCase()}@${mailDomain(ctx)}>`,
      created_at: now,
      send_after: request.sendAfter ?? now,
      sent_at: null,
    })
    .execute();
  return id;
}

/** When the last message of this kind went to this contact: for rate limits on resends. */
export async function lastMessageAt(db: Executor, contactId: string, kind: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('messages')
    .select('created_at')
    .where('contact_id', '=', contactId)
    .where('kind', '=', kind)
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.created_at;
}

const MAX_ATTEMPTS = 5;
const STUCK_AFTER_MS = 10 * 60_000;

/** Claims a batch of due messages: on PostgreSQL other dispatchers skip the rows this one holds. */
async function claim(ctx: AppContext, limit: number): Promise<MessagesTable[]> {
  const now = ctx.clock.now();
  const db = ctx.db.kysely;
  return db.transaction().execute(async (trx) => {
    // A dispatcher that died mid-send left rows "sending": give them back after a while.
    await trx
      .updateTable('messages')
      .set({ status: 'queued' })
      .where('status', '=', 'sending')
      .where('send_after', '<', iso(new Date(now.getTime() - STUCK_AFTER_MS)))
      .execute();
    let due = trx
      .selectFrom('messages')
      .select('id')
      .where('status', '=', 'queued')
      .where('send_after', '<=', iso(now))
      .orderBy('send_after')
      .orderBy('id')
      .limit(limit);
    if (ctx.db.dialect === 'postgres') due = due.forUpdate().skipLocked();
    const ids = (await due.execute()).map((r) => r.id);
    if (ids.length === 0) return [];
    await trx
      .updateTable('messages')
      .set((eb) => ({ status: 'sending', attempts: eb('attempts', '+', 1), send_after: iso(now) }))
      .where('id', 'in', ids)
      .execute();
    return trx.selectFrom('messages').selectAll().where('id', 'in', ids).orderBy('id').execute();
  });
}

const scrubError = (message: string) => message.replace(/[^\s@<>"']+@[^\s@<>"']+/g, '[address]').slice(0, 500);

export interface DispatchResult {
  sent: number;
  stored: number;
  retried: number;
  failed: number;
  /** Not sent: the person may no longer be contacted (unsubscribed, withdrew…) since it was queued. */
  cancelled: number;
}

/** Handed-over messages are recorded together, this many at a time at most (and at each batch's end). */
const RECORD_EVERY = 50;

/** Sends every due message, batch after batch, until none is left (or `max` were handled). */
export async function dispatchDue(ctx: AppContext, options: { batch?: number; max?: number } = {}): Promise<DispatchResult> {
  const result: DispatchResult = { sent: 0, stored: 0, retried: 0, failed: 0, cancelled: 0 };
  const batch = options.batch ?? 200;
  let handled = 0;
  const parallel = Math.max(1, ctx.config.mail.smtpPoolSize * 2);
  const status = ctx.mailer.kind === 'outbox' ? 'stored' : 'sent';
  // Messages the mailer took whose status is not written yet: one UPDATE for several of them
  // (one statement per message took about a fifth of the dispatcher's throughput, bench/mail.ts).
  const handedOver: string[] = [];
  const record = async () => {
    if (handedOver.length === 0) return;
    const ids = handedOver.splice(0);
    await ctx.db.kysely
      .updateTable('messages')
      .set({ status, sent_at: iso(ctx.clock.now()), last_error: null })
      .where('id', 'in', ids)
      .execute();
  };
  while (handled < (options.max ?? Number.POSITIVE_INFINITY)) {
    const rows = await claim(ctx, batch);
    if (rows.length === 0) break;
    handled += rows.length;
    // A sliding window: `parallel` sends in flight at all times (the pool's connections each
    // have the next message waiting), rather than waves that wait for their slowest send.
    let next = 0;
    const lane = async () => {
      while (next < rows.length) {
        const row = rows[next++] as MessagesTable;
        if (await sendOne(ctx, row, result)) {
          handedOver.push(row.id);
          result[status] += 1;
          if (handedOver.length >= RECORD_EVERY) await record();
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(parallel, rows.length) }, lane));
    } finally {
      // Whatever happened to the batch, what was handed over is recorded as such.
      await record();
    }
  }
  return result;
}

/** Sends one claimed message; true when the mailer took it (its status is written by the caller). */
async function sendOne(ctx: AppContext, row: MessagesTable, result: DispatchResult): Promise<boolean> {
  const db = ctx.db.kysely;
  try {
    if (row.purpose_key && row.contact_id) {
      // Honour what changed since it was queued: an unsubscribe takes effect before the next send.
      const decision = await decide(ctx, { contactId: row.contact_id, purpose: row.purpose_key, channel: row.channel_key });
      if (!decision.allowed) {
        await db
          .updateTable('messages')
          .set({ status: 'cancelled', last_error: `not sent: ${decision.reason}` })
          .where('id', '=', row.id)
          .execute();
        result.cancelled += 1;
        return false;
      }
    }
    if (!row.to_address) throw new Error('no address (the contact was erased)');
    await ctx.mailer.send({
      messageId: row.message_id,
      from: ctx.config.mail.from,
      to: row.to_address,
      subject: row.subject ?? '',
      html: row.html ?? '',
      text: row.body,
      headers: JSON.parse(row.headers),
    });
    return true;
  } catch (error) {
    const last = row.attempts >= MAX_ATTEMPTS || !row.to_address;
    const retryAt = new Date(ctx.clock.now().getTime() + 60_000 * 2 ** row.attempts);
    await db
      .updateTable('messages')
      .set({ status: last ? 'failed' : 'queued', send_after: iso(retryAt), last_error: scrubError((error as Error).message) })
      .where('id', '=', row.id)
      .execute();
    result[last ? 'failed' : 'retried'] += 1;
    ctx.logger.warn({ message: row.id, attempt: row.attempts, final: last }, 'a message could not be sent');
    return false;
  }
}

/** Starts dispatching in the background (one run at a time); the request that queued mail does not wait. */
export function kickDispatch(ctx: AppContext): void {
  if (ctx.cache.has('dispatch-running')) {
    ctx.cache.set('dispatch-again', { at: Date.now(), value: true });
    return;
  }
  ctx.cache.set('dispatch-running', { at: Date.now(), value: true });
  const run = (async () => {
    try {
      do {
        ctx.cache.delete('dispatch-again');
        await dispatchDue(ctx);
      } while (ctx.cache.has('dispatch-again'));
    } catch (error) {
      ctx.logger.error({ err: error }, 'mail dispatch failed');
    } finally {
      ctx.cache.delete('dispatch-running');
    }
  })();
  ctx.background.add(run);
  void run.then(() => ctx.background.delete(run));
}

export async function listOutbox(
  ctx: AppContext,
  query: { contactId?: string; status?: string; cursor?: string; limit?: number },
): Promise<{ items: OutboxMessage[]; nextCursor: string | null }> {
  const limit = query.limit ?? 50;
  let q = ctx.db.kysely
    .selectFrom('messages')
    .selectAll()
    .orderBy('id', 'desc')
    .limit(limit + 1);
  if (query.contactId) q = q.where('contact_id', '=', query.contactId);
  if (query.status) q = q.where('status', '=', query.status);
  if (query.cursor) q = q.where('id', '<', Buffer.from(query.cursor, 'base64url').toString());
  const rows = await q.execute();
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map(toMessage),
    nextCursor: rows.length > limit && last ? Buffer.from(last.id).toString('base64url') : null,
  };
}

export async function getOutboxMessage(ctx: AppContext, id: string): Promise<OutboxMessageDetail> {
  const row = await ctx.db.kysely.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new DomainError('message_not_found', `There is no message "${id}"`);
  return { ...toMessage(row), html: row.html, text: row.body, headers: JSON.parse(row.headers) };
}

/** Erasure: the messages to this person lose their address and content; the send log remains. */
export async function eraseMessagesOf(db: Executor, contactId: string): Promise<void> {
  await db
    .updateTable('messages')
    .set({ to_address: null, subject: null, html: null, body: '', headers: '{}' })
    .where('contact_id', '=', contactId)
    .execute();
}

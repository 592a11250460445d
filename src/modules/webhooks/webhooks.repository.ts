import type { Selectable, Updateable } from 'kysely';
import type { Dialect, Executor } from '../../database.ts';
import type { WebhookDeliveriesTable, WebhooksTable } from './webhooks.table.ts';

export type WebhookRow = Selectable<WebhooksTable>;
export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>;

export const listLiveWebhookRows = (db: Executor) =>
  db.selectFrom('webhooks').selectAll().where('deleted_at', 'is', null).orderBy('created_at').orderBy('id').execute();

export const findWebhookRow = (db: Executor, id: string) => db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();

export const findWebhookRows = (db: Executor, ids: string[]) =>
  ids.length === 0 ? Promise.resolve([]) : db.selectFrom('webhooks').selectAll().where('id', 'in', ids).execute();

export const insertWebhookRow = (db: Executor, row: WebhookRow) => db.insertInto('webhooks').values(row).execute();

/** 0 when there is no live webhook with this id. */
export async function softDeleteWebhookRow(db: Executor, id: string, at: string): Promise<number> {
  const result = await db
    .updateTable('webhooks')
    .set({ deleted_at: at })
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Pending deliveries of deleted webhooks (all of them, or those of one) will not be sent. */
export async function cancelPendingOfDeleted(db: Executor, at: string, webhookId?: string): Promise<number> {
  let q = db
    .updateTable('webhook_deliveries')
    .set({ status: 'cancelled', last_error: 'webhook deleted', next_attempt_at: at })
    .where('status', '=', 'pending')
    .where('webhook_id', 'in', db.selectFrom('webhooks').select('id').where('deleted_at', 'is not', null));
  if (webhookId) q = q.where('webhook_id', '=', webhookId);
  else q = q.where('next_attempt_at', '<=', at);
  const result = await q.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** 13 columns a row: 500 rows stay far below either store's bound-parameter limit. */
const CHUNK = 500;

export async function insertDeliveryRows(db: Executor, rows: WebhookDeliveryRow[]): Promise<void> {
  for (let i = 0; i < rows.length; i += CHUNK)
    await db
      .insertInto('webhook_deliveries')
      .values(rows.slice(i, i + CHUNK))
      .execute();
}

/** A webhook's deliveries, newest first, after the cursor id. */
export const listDeliveryRows = (db: Executor, webhookId: string, before: string | undefined, limit: number) => {
  let q = db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', webhookId);
  if (before) q = q.where('id', '<', before);
  return q.orderBy('id', 'desc').limit(limit).execute();
};

/**
 * Claims due deliveries of live webhooks: each claimed row's next attempt moves to the end of the
 * lease and its attempt count goes up, so no other dispatcher takes it meanwhile; a dispatcher
 * that dies leaves it due again when the lease ends. PostgreSQL dispatchers skip rows another
 * one is claiming.
 */
export async function claimDueDeliveryRows(
  db: Executor,
  dialect: Dialect,
  now: string,
  leaseUntil: string,
  limit: number,
): Promise<WebhookDeliveryRow[]> {
  let due = db
    .selectFrom('webhook_deliveries')
    .select('id')
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .where('webhook_id', 'in', db.selectFrom('webhooks').select('id').where('deleted_at', 'is', null))
    .orderBy('next_attempt_at')
    .orderBy('id')
    .limit(limit);
  if (dialect === 'postgres') due = due.forUpdate().skipLocked();
  const rows = await db
    .updateTable('webhook_deliveries')
    .set((eb) => ({ next_attempt_at: leaseUntil, attempts: eb('attempts', '+', 1) }))
    .where('id', 'in', due)
    .where('status', '=', 'pending')
    .returningAll()
    .execute();
  return rows.map((r) => ({ ...r, attempts: Number(r.attempts), last_status: r.last_status === null ? null : Number(r.last_status) }));
}

/** Records an attempt, unless the claim was lost (the lease ran out and another dispatcher took it). */
export async function recordAttemptRow(
  db: Executor,
  id: string,
  attempts: number,
  set: Updateable<WebhookDeliveriesTable>,
): Promise<boolean> {
  const result = await db
    .updateTable('webhook_deliveries')
    .set(set)
    .where('id', '=', id)
    .where('attempts', '=', attempts)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

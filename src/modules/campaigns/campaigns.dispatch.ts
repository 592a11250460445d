// Sends queued campaign deliveries: claim a batch (other dispatchers skip it on PostgreSQL),
// check the audience rule again just before each send, render, hand over, record each at once.
// A delivery recorded as sent is never sent again; one claimed by a dispatcher that died is given
// back when its lease runs out.
import { createHmac } from 'node:crypto';
import { CompiledQuery, type Selectable, sql, type Updateable } from 'kysely';
import type { Executor } from '../../database.ts';
import { iso } from '../../platform/clock.ts';
import type { AppContext } from '../../platform/context.ts';
import { safeEqual } from '../../platform/crypto.ts';
import { nextSendTime } from '../../platform/quiet-hours.ts';
import { linkFor, preferencesLink, unsubscribeLink } from '../collection/collection.service.ts';
import { getTemplate, renderEmail, renderSms } from '../messaging/index.ts';
import { emitWebhookEvent } from '../webhooks/index.ts';
import { type Campaign, toCampaign } from './campaigns.service.ts';
import type { DeliveriesTable } from './campaigns.table.ts';

type Delivery = Selectable<DeliveriesTable>;

export interface DeliveryDispatchResult {
  sent: number;
  stored: number;
  cancelled: number;
  deferred: number;
  retried: number;
  failed: number;
}

const MAX_ATTEMPTS = 5;

/** Ref carried by every link of a delivery: "key/step/deliveryId". */
export const deliveryRef = (d: Pick<Delivery, 'campaign_key' | 'step' | 'id'>) => `${d.campaign_key}/${d.step}/${d.id}`;

/** A short signed token for SMS confirm links: "<delivery id>.<16 signature chars>". */
export function shortDeliveryToken(secret: string, deliveryId: number): string {
  return `${deliveryId}.${createHmac('sha256', secret).update(`sms-confirm:${deliveryId}`).digest('base64url').slice(0, 16)}`;
}

export function readShortDeliveryToken(secret: string, token: string): number | undefined {
  const m = /^(\d{1,15})\.[A-Za-z0-9_-]{16}$/.exec(token);
  if (!m) return undefined;
  const id = Number(m[1]);
  return safeEqual(shortDeliveryToken(secret, id), token) ? id : undefined;
}

const worker = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

/**
 * Gives back deliveries whose dispatcher died (lease over; never this process's own, still in
 * its queue), then claims a batch of due ones.
 *
 * Two clocks: a delivery is due by the scheduler's clock (`scheduler run --at` runs as if it were
 * that time), but a lease is about a live process and runs on real time. Taken from the manual
 * clock, a `scheduler run --at` in the future would have seen every live dispatcher's leases as
 * over and sent their messages a second time.
 */
async function claim(ctx: AppContext, limit: number): Promise<Delivery[]> {
  const now = ctx.clock.now();
  const wall = Date.now();
  const db = ctx.db.kysely;
  await db
    .updateTable('deliveries')
    .set({ status: 'queued', claimed_by: null, claimed_until: null })
    .where('status', '=', 'sending')
    .where('claimed_until', '<', iso(new Date(wall)))
    .where((eb) => eb.or([eb('claimed_by', 'is', null), eb('claimed_by', '!=', worker)]))
    .execute();
  const running = db.selectFrom('campaigns').select('key').where('status', '=', 'running');
  let due = db
    .selectFrom('deliveries')
    .select('id')
    .where('status', '=', 'queued')
    .where('send_after', '<=', iso(now))
    .where('campaign_key', 'in', running)
    .orderBy('send_after')
    .limit(limit);
  if (ctx.db.dialect === 'postgres') due = due.forUpdate().skipLocked();
  const rows = await db
    .updateTable('deliveries')
    .set({
      status: 'sending',
      claimed_by: worker,
      claimed_until: iso(new Date(wall + ctx.config.deliveries.leaseSeconds * 1000)),
      attempts: sql`attempts + 1`,
    })
    .where('id', 'in', due)
    .returningAll()
    .execute();
  return rows.map((r) => ({ ...r, id: Number(r.id), attempts: Number(r.attempts) }));
}

/**
 * Sends every due delivery until none is left (or `max` were handled). The lanes never wait at
 * a batch boundary: the next batch is claimed while the current one is still being sent, so
 * the SMTP pool always has the next message ready.
 */
export async function dispatchDeliveries(ctx: AppContext, options: { max?: number } = {}): Promise<DeliveryDispatchResult> {
  const result: DeliveryDispatchResult = { sent: 0, stored: 0, cancelled: 0, deferred: 0, retried: 0, failed: 0 };
  const campaigns = new Map<string, Campaign>();
  const rate = ctx.config.deliveries.ratePerSecond;
  const max = options.max ?? Number.POSITIVE_INFINITY;
  const parallel = Math.max(1, ctx.config.mail.smtpPoolSize * 2);
  const queue: Delivery[] = [];
  let claimed = 0;
  let nextSlot = Date.now();
  let exhausted = false;
  let failure: unknown;
  let claiming: Promise<void> | undefined;

  const refill = (): Promise<void> => {
    if (claiming) return claiming;
    if (exhausted) return Promise.resolve();
    claiming = (async () => {
      // Paced sending claims no more than a quarter of a lease's worth at a time: a claimed
      // delivery must be sent long before another dispatcher may take it back.
      const paced = rate > 0 ? Math.max(1, Math.floor((rate * ctx.config.deliveries.leaseSeconds) / 4)) : Number.POSITIVE_INFINITY;
      const want = Math.min(ctx.config.deliveries.batch, paced, max - claimed);
      const batch = want > 0 ? await claim(ctx, want) : [];
      if (batch.length === 0) exhausted = true;
      claimed += batch.length;
      for (const key of new Set(batch.map((d) => d.campaign_key))) {
        if (!campaigns.has(key)) {
          const row = await ctx.db.kysely.selectFrom('campaigns').selectAll().where('key', '=', key).executeTakeFirstOrThrow();
          campaigns.set(key, toCampaign(row));
        }
      }
      queue.push(...batch);
    })()
      .catch((error: unknown) => {
        failure = error;
        exhausted = true;
      })
      .finally(() => {
        claiming = undefined;
      });
    return claiming;
  };

  const lane = async () => {
    for (;;) {
      if (queue.length < parallel * 2) void refill();
      let delivery = queue.shift();
      while (!delivery && !(exhausted && !claiming)) {
        await refill();
        delivery = queue.shift();
      }
      if (!delivery) return;
      if (rate > 0) {
        // Paced: each send takes the next free slot, 1/rate apart, before it waits (lanes waiting
        // at once each get their own). A slot is never in the past: after a stall the sends go on
        // at the rate instead of catching up in a burst.
        const now = Date.now();
        const slot = Math.max(nextSlot, now);
        nextSlot = slot + 1000 / rate;
        if (slot > now) await new Promise((r) => setTimeout(r, slot - now));
      }
      await sendDelivery(ctx, campaigns.get(delivery.campaign_key) as Campaign, delivery, result);
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  if (failure) throw failure;
  await completeSteps(ctx);
  return result;
}

/** A delivery still on its way: a step with none left is complete. */
const inFlight = ['queued', 'sending'];

/**
 * Marks complete the steps with nothing left to send (all sent, stored, failed or cancelled) and
 * announces each (`campaign.step.completed`) in the transaction that marks it: once, even when
 * several dispatchers finish together.
 */
async function completeSteps(ctx: AppContext): Promise<number> {
  const db = ctx.db.kysely;
  const noneInFlight = sql<boolean>`not exists (select 1 from deliveries d where d.campaign_key = campaign_steps.campaign_key
    and d.step = campaign_steps.step and d.status in (${sql.join(inFlight.map((s) => sql`${s}`))}))`;
  const open = await db
    .selectFrom('campaign_steps')
    .select(['campaign_key', 'step', 'queued'])
    .where('completed_at', 'is', null)
    .where(noneInFlight)
    .execute();
  let completed = 0;
  for (const s of open) {
    await db.transaction().execute(async (trx) => {
      const marked = await trx
        .updateTable('campaign_steps')
        .set({ completed_at: iso(ctx.clock.now()) })
        .where('campaign_key', '=', s.campaign_key)
        .where('step', '=', s.step)
        .where('completed_at', 'is', null)
        .where(noneInFlight)
        .executeTakeFirst();
      if (Number(marked.numUpdatedRows) === 0) return;
      const byStatus = await trx
        .selectFrom('deliveries')
        .select(['status', (eb) => eb.fn.countAll<number | string>().as('n')])
        .where('campaign_key', '=', s.campaign_key)
        .where('step', '=', s.step)
        .groupBy('status')
        .execute();
      const counts: Record<string, number> = { enqueued: Number(s.queued), sent: 0, stored: 0, failed: 0, cancelled: 0 };
      for (const row of byStatus) counts[row.status] = Number(row.n);
      await emitWebhookEvent(ctx, trx, 'campaign.step.completed', { campaign: s.campaign_key, step: Number(s.step), counts });
      completed += 1;
    });
  }
  return completed;
}

/**
 * The contact, and why this delivery must not go now (RULES 17) or null — asked just before the
 * send, in the same query that reads the contact.
 */
async function contactAndRule(ctx: AppContext, campaign: Campaign, d: Delivery) {
  const [row] = await ctx.db.read(ruleQuery(ctx, campaign).bind(d.contact_id, d.id));
  return { contact: row, why: row ? ruleVerdict(campaign, row) : 'erased', ours: row?.owner === worker };
}

/**
 * The audience rule (in the order of exclusionCase, then "confirmed since") from three figures:
 * the strongest suppression of the address, and the purposes' states packed in one sum
 * (objected ×1,000,000, withdrawn here ×1,000, granted here ×1; at most 20 purposes).
 */
function ruleVerdict(
  campaign: Campaign,
  row: { erased_at: string | null; email: string | null; phone: string | null; suppressed: number | null; states: number | null },
): string | null {
  if (row.erased_at) return 'erased';
  if ((campaign.channel === 'sms' ? row.phone : row.email) === null) return 'no_address';
  const suppressed = row.suppressed === null ? 0 : Number(row.suppressed);
  if (suppressed > 0) return (['bounced', 'complained', 'suppressed'] as const)[suppressed - 1] as string;
  const states = Number(row.states ?? 0);
  if (states >= 1_000_000) return 'objected';
  if (states % 1_000_000 >= 1000) return 'withdrawn';
  return states % 1000 >= campaign.purposes.length ? 'confirmed' : null;
}

const CONTACT_SLOT = '\u0000contact';
const DELIVERY_SLOT = -1_000_000_007;
const ruleQueries = new WeakMap<AppContext, Map<string, ReturnType<typeof compileRule>>>();

/** The rule query compiled once per campaign (the send path runs it for every message). */
function ruleQuery(ctx: AppContext, campaign: Campaign) {
  let byCampaign = ruleQueries.get(ctx);
  if (!byCampaign) {
    byCampaign = new Map();
    ruleQueries.set(ctx, byCampaign);
  }
  let entry = byCampaign.get(campaign.key);
  if (!entry) {
    entry = compileRule(ctx, campaign);
    byCampaign.set(campaign.key, entry);
  }
  return entry;
}

function compileRule(ctx: AppContext, campaign: Campaign) {
  const compiled = ctx.db.kysely
    .selectFrom('contacts as c')
    .select(['c.id', 'c.email', 'c.phone', 'c.first_name', 'c.last_name', 'c.locale', 'c.erased_at'])
    .select([
      sql<number | null>`(select min(case s.reason when 'bounced' then 1 when 'complained' then 2 else 3 end) from suppressions s
        where s.channel_key = ${campaign.channel} and s.address_hash = ${sql.ref(campaign.channel === 'sms' ? 'c.phone_hash' : 'c.email_hash')})`.as(
        'suppressed',
      ),
      sql<number | null>`(select sum(case when cs.status = 'objected' then 1000000
          when cs.channel_key = ${campaign.channel} and cs.status = 'withdrawn' then 1000
          when cs.channel_key = ${campaign.channel} and cs.status = 'granted' and cs.since >= ${campaign.launchedAt ?? ''} then 1 else 0 end)
        from consent_states cs where cs.contact_id = c.id and cs.purpose_key in (${sql.join(campaign.purposes.map((p) => sql`${p}`))}))`.as(
        'states',
      ),
      // Still ours? (Another dispatcher takes a delivery back only once its lease is over.)
      sql<string | null>`(select d.claimed_by from deliveries d where d.id = ${DELIVERY_SLOT} and d.status = 'sending')`.as('owner'),
    ])
    .where('c.id', '=', CONTACT_SLOT)
    .compile();
  const template = compiled.parameters;
  return {
    bind: (contactId: string, deliveryId: number) =>
      CompiledQuery.raw(
        compiled.sql,
        template.map((p) => (p === CONTACT_SLOT ? contactId : p === DELIVERY_SLOT ? deliveryId : p)),
      ) as CompiledQuery<
        Record<string, unknown> & {
          erased_at: string | null;
          suppressed: number | null;
          states: number | null;
          owner: string | null;
          id: string;
          email: string | null;
          phone: string | null;
          first_name: string | null;
          last_name: string | null;
          locale: string | null;
        }
      >,
  };
}

/** The campaign's status, read at most every quarter second per process (a pause stops sends within that). */
const statuses = new WeakMap<AppContext, Map<string, { at: number; status: Promise<string> }>>();
function campaignStatusNow(ctx: AppContext, key: string): Promise<string> {
  let byKey = statuses.get(ctx);
  if (!byKey) {
    byKey = new Map();
    statuses.set(ctx, byKey);
  }
  const hit = byKey.get(key);
  if (hit && Date.now() - hit.at < 250) return hit.status;
  const status = ctx.db
    .read(
      CompiledQuery.raw(
        ctx.db.dialect === 'postgres' ? 'select status from campaigns where key = $1' : 'select status from campaigns where key = ?',
        [key],
      ),
    )
    .then((rows) => String((rows[0] as { status?: string } | undefined)?.status ?? 'cancelled'));
  byKey.set(key, { at: Date.now(), status });
  return status;
}

async function sendDelivery(ctx: AppContext, campaign: Campaign, d: Delivery, result: DeliveryDispatchResult): Promise<void> {
  const db = ctx.db.kysely;
  /** Set once the provider took the message: from then on it must never be queued again. */
  let handedOver: string | undefined;
  try {
    const { contact, why, ours } = await contactAndRule(ctx, campaign, d);
    if (!ours && contact) return;
    // Paused since it was claimed: back in the queue; cancelled or past its deadline: not sent.
    const status = await campaignStatusNow(ctx, campaign.key);
    if (contact && status === 'paused') {
      await finish(db, d.id, { status: 'queued' });
      return;
    }
    if (contact && (status !== 'running' || Date.parse(campaign.deadline) <= ctx.clock.now().getTime())) {
      await finish(db, d.id, { status: 'cancelled', last_error: `not sent: campaign ${status}` });
      result.cancelled += 1;
      return;
    }
    if (why || !contact) {
      await finish(db, d.id, { status: 'cancelled', last_error: `not sent: ${why}` });
      result.cancelled += 1;
      return;
    }
    if (campaign.channel === 'sms') {
      const at = nextSendTime(ctx.clock.now(), ctx.config.sms.quietHours);
      if (at.getTime() > ctx.clock.now().getTime()) {
        await finish(db, d.id, { status: 'queued', send_after: iso(at), last_error: 'deferred: outside SMS sending hours' });
        result.deferred += 1;
        return;
      }
    }
    const template = await getTemplate(ctx, d.template === 'first' ? campaign.templates.first : campaign.templates.reminder);
    const ref = deliveryRef(d);
    const days = Math.max(1, Math.ceil((Date.parse(campaign.deadline) - ctx.clock.now().getTime()) / 86_400_000) + 1);
    const unsubscribe = unsubscribeLink(ctx, contact.id, undefined, campaign.channel, { all: true, ref: `campaign:${ref}` });
    const vars = {
      contact: { firstName: contact.first_name, lastName: contact.last_name, email: contact.email },
      company: { name: ctx.config.company.name, address: ctx.config.company.address },
      campaign: { name: campaign.name, deadline: campaign.deadline },
      sms: { stopNumber: ctx.config.sms.stopNumber },
      links: {
        confirm:
          campaign.channel === 'sms'
            ? `${ctx.config.publicUrl}/c/${shortDeliveryToken(ctx.secret, d.id)}`
            : linkFor(ctx, 'c', { kind: 'confirm', contactId: contact.id, channel: campaign.channel, ref: `campaign:${ref}`, days }),
        unsubscribe,
        preferences: preferencesLink(ctx, contact.id),
      },
    };
    const now = iso(ctx.clock.now());
    if (campaign.channel === 'sms') {
      const sms = await renderSms(template, contact.locale, vars);
      if (!contact.phone) throw new Error('no phone number');
      if (ctx.sms.kind === 'outbox') {
        // The outbox provider: the SMS is kept, readable with GET /v1/outbox, in the same
        // transaction that records the delivery as done.
        await db.transaction().execute(async (trx) => {
          const messageId = await storeInOutbox(ctx, trx, d, campaign, contact.phone as string, sms.locale, null, null, sms.body, {});
          await finish(trx, d.id, { status: 'stored', sent_at: now, provider_ref: messageId, last_error: null });
        });
        result.stored += 1;
        return;
      }
      const { providerRef } = await ctx.sms.send({ to: contact.phone, body: sms.body, reference: String(d.id) });
      handedOver = providerRef;
      await recordSent(ctx, d.id, providerRef);
      result.sent += 1;
      return;
    }
    if (!contact.email) throw new Error('no email address');
    const email = await renderEmail(ctx, template, contact.locale, vars);
    const headers = {
      'List-Unsubscribe': `<${unsubscribe}>, <mailto:${ctx.config.mail.unsubscribeMailto}?subject=unsubscribe>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    };
    const messageId = `<d${d.id}.${campaign.key}@${mailDomain(ctx)}>`;
    if (ctx.mailer.kind === 'outbox') {
      await db.transaction().execute(async (trx) => {
        await storeInOutbox(
          ctx,
          trx,
          d,
          campaign,
          contact.email as string,
          email.locale,
          email.subject,
          email.html,
          email.text,
          headers,
          messageId,
        );
        await finish(trx, d.id, { status: 'stored', sent_at: now, provider_ref: messageId, last_error: null });
      });
      result.stored += 1;
      return;
    }
    await ctx.mailer.send({
      messageId,
      from: ctx.config.mail.from,
      to: contact.email,
      subject: email.subject,
      html: email.html,
      text: email.text,
      headers,
    });
    handedOver = messageId;
    // Recorded at once (with whatever other lanes handed over in the same turn): a crash can only
    // repeat the messages in flight at that instant (at most two per SMTP connection), with the
    // same Message-ID.
    await recordSent(ctx, d.id, messageId);
    result.sent += 1;
  } catch (error) {
    if (handedOver) {
      // Sent, but the record failed: try once more; never queue it again.
      await finish(db, d.id, { status: 'sent', sent_at: iso(ctx.clock.now()), provider_ref: handedOver, last_error: null }).catch(() => {});
      ctx.logger.error({ delivery: d.id, campaign: d.campaign_key, err: error }, 'a sent campaign message could not be recorded at once');
      result.sent += 1;
      return;
    }
    const last = d.attempts >= MAX_ATTEMPTS;
    const retryAt = new Date(ctx.clock.now().getTime() + 60_000 * 2 ** d.attempts);
    await finish(db, d.id, {
      status: last ? 'failed' : 'queued',
      send_after: iso(retryAt),
      last_error: String((error as Error).message)
        .replace(/[^\s@<>"']+@[^\s@<>"']+/g, '[address]')
        .slice(0, 500),
    }).catch(() => {});
    result[last ? 'failed' : 'retried'] += 1;
    ctx.logger.warn({ delivery: d.id, campaign: d.campaign_key, attempt: d.attempts, final: last }, 'a campaign message could not be sent');
  }
}

/**
 * Records handed-over deliveries as sent: the lanes that finish in the same event-loop turn share
 * one UPDATE and one commit (a commit per message was a tenth of the send path); each lane waits
 * for its own record before it takes the next delivery.
 */
const pendingSent = new WeakMap<AppContext, { rows: Array<{ id: number; ref: string }>; done: Promise<void> }>();

function recordSent(ctx: AppContext, id: number, ref: string): Promise<void> {
  let batch = pendingSent.get(ctx);
  if (!batch) {
    const rows: Array<{ id: number; ref: string }> = [];
    const done = new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        pendingSent.delete(ctx);
        ctx.db.kysely.executeQuery(sentUpdate(ctx, rows)).then(() => resolve(), reject);
      });
    });
    batch = { rows, done };
    pendingSent.set(ctx, batch);
  }
  batch.rows.push({ id, ref });
  return batch.done;
}

/**
 * The UPDATE for a group of sent deliveries, written out (the send path runs it for every few
 * messages; building it through the query builder cost more than the statement itself).
 */
function sentUpdate(ctx: AppContext, rows: Array<{ id: number; ref: string }>): CompiledQuery {
  let n = 0;
  const slot = ctx.db.dialect === 'postgres' ? () => `$${++n}` : () => '?';
  const params: unknown[] = [iso(ctx.clock.now())];
  const at = slot();
  const cases = rows.map((r) => {
    params.push(r.id, r.ref);
    return `when ${slot()} then ${slot()}`;
  });
  const ids = rows.map((r) => {
    params.push(r.id);
    return slot();
  });
  return CompiledQuery.raw(
    `update deliveries set status = 'sent', sent_at = ${at}, provider_ref = case id ${cases.join(' ')} end, last_error = null, claimed_by = null, claimed_until = null where id in (${ids.join(', ')})`,
    params,
  );
}

async function finish(db: Executor, id: number, set: Updateable<DeliveriesTable>): Promise<void> {
  await db
    .updateTable('deliveries')
    .set({ ...set, claimed_by: null, claimed_until: null })
    .where('id', '=', id)
    .execute();
}

const mailDomain = (ctx: AppContext) => {
  const from = /<([^>]+)>\s*$/.exec(ctx.config.mail.from)?.[1] ?? ctx.config.mail.from;
  return from.split('@')[1] ?? 'localhost';
};

async function storeInOutbox(
  ctx: AppContext,
  trx: Executor,
  d: Delivery,
  campaign: Campaign,
  to: string,
  locale: string,
  subject: string | null,
  html: string | null,
  body: string,
  headers: Record<string, string>,
  messageId?: string,
): Promise<string> {
  const id = ctx.newId();
  const now = iso(ctx.clock.now());
  await trx
    .insertInto('messages')
    .values({
      id,
      contact_id: d.contact_id,
      kind: 'campaign',
      channel_key: campaign.channel,
      to_address: to,
      template_key: d.template === 'first' ? campaign.templates.first : campaign.templates.reminder,
      purpose_key: campaign.purposes[0] ?? null,
      locale,
      subject,
      html,
      body,
      headers: JSON.stringify(headers),
      status: 'stored',
      attempts: 1,
      last_error: null,
      message_id: messageId ?? `<${id.toLowerCase()}@${mailDomain(ctx)}>`,
      created_at: now,
      send_after: now,
      sent_at: now,
    })
    .execute();
  return messageId ?? id;
}

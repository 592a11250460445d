// What a campaign did: counts per step and in total, a daily series, the non-responders, and the
// purge of those left without any legal basis after the deadline.
import { sql } from 'kysely';
import type { Executor } from '../../database.ts';
import { iso } from '../../platform/clock.ts';
import type { AppContext, RequestContext } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { decide } from '../consents/index.ts';
import { eraseContact } from '../governance/index.ts';
import { listPurposes } from '../purposes/index.ts';
import { audienceCounts, getCampaign } from './campaigns.service.ts';

const n = (v: unknown) => Number(v ?? 0);

interface Counts {
  audience: number;
  queued: number;
  sent: number;
  failed: number;
  cancelled: number;
  clicked: number;
  confirmed: number;
  unsubscribed: number;
  bounced: number;
  pending: number;
}

/** Deliveries that answered: the person confirmed, unsubscribed, or the address bounced. */
const answered = (db: Executor, key: string) =>
  db
    .selectFrom('deliveries as r')
    .select('r.contact_id')
    .where('r.campaign_key', '=', key)
    .where((eb) =>
      eb.or([eb('r.confirmed_at', 'is not', null), eb('r.unsubscribed_at', 'is not', null), eb('r.bounced_at', 'is not', null)]),
    );

export async function campaignStats(ctx: AppContext, key: string) {
  const campaign = await getCampaign(ctx, key);
  const db = ctx.db.kysely;
  const { audience, excludedByReason } = await audienceCounts(db, key);
  const countsSelect = [
    sql<number>`count(*)`.as('audience'),
    sql<number>`sum(case when d.status in ('queued', 'sending') then 1 else 0 end)`.as('queued'),
    sql<number>`sum(case when d.status in ('sent', 'stored') then 1 else 0 end)`.as('sent'),
    sql<number>`sum(case when d.status = 'failed' then 1 else 0 end)`.as('failed'),
    sql<number>`sum(case when d.status = 'cancelled' then 1 else 0 end)`.as('cancelled'),
    sql<number>`sum(case when d.clicked_at is not null then 1 else 0 end)`.as('clicked'),
    sql<number>`sum(case when d.confirmed_at is not null then 1 else 0 end)`.as('confirmed'),
    sql<number>`sum(case when d.unsubscribed_at is not null then 1 else 0 end)`.as('unsubscribed'),
    sql<number>`sum(case when d.bounced_at is not null then 1 else 0 end)`.as('bounced'),
    sql<number>`sum(case when d.contact_id in (${answered(db, key)}) then 0 else 1 end)`.as('pending'),
  ] as const;
  const stepRows = await db
    .selectFrom('deliveries as d')
    .innerJoin('campaign_steps as s', (j) => j.onRef('s.campaign_key', '=', 'd.campaign_key').onRef('s.step', '=', 'd.step'))
    .select(['d.step', 's.due_at', ...countsSelect])
    .where('d.campaign_key', '=', key)
    .groupBy(['d.step', 's.due_at'])
    .orderBy('d.step')
    .execute();
  // Why deliveries were not sent, per step: the send-time rule ("not sent: withdrawn"), a later
  // step, the deadline, the campaign cancelled.
  const cancelledRows = await db
    .selectFrom('deliveries')
    .select(['step', 'last_error', (eb) => eb.fn.countAll<number | string>().as('n')])
    .where('campaign_key', '=', key)
    .where('status', '=', 'cancelled')
    .groupBy(['step', 'last_error'])
    .execute();
  const cancelledByStep = new Map<number, Record<string, number>>();
  const cancelledByReason: Record<string, number> = {};
  for (const r of cancelledRows) {
    const reason = cancelReason(r.last_error);
    const forStep = cancelledByStep.get(n(r.step)) ?? {};
    forStep[reason] = (forStep[reason] ?? 0) + n(r.n);
    cancelledByStep.set(n(r.step), forStep);
    cancelledByReason[reason] = (cancelledByReason[reason] ?? 0) + n(r.n);
  }
  const steps = stepRows.map((r) => ({
    step: n(r.step),
    dueAt: r.due_at,
    template: n(r.step) === 1 ? campaign.templates.first : campaign.templates.reminder,
    audience: n(r.audience),
    queued: n(r.queued),
    sent: n(r.sent),
    failed: n(r.failed),
    cancelled: n(r.cancelled),
    cancelledByReason: cancelledByStep.get(n(r.step)) ?? {},
    clicked: n(r.clicked),
    confirmed: n(r.confirmed),
    unsubscribed: n(r.unsubscribed),
    bounced: n(r.bounced),
    pending: n(r.pending),
  }));
  // Totals count people, not messages: a person who clicked twice counts once.
  const distinct = await db
    .selectFrom('deliveries as d')
    .select([
      sql<number>`count(distinct case when d.clicked_at is not null then d.contact_id end)`.as('clicked'),
      sql<number>`count(distinct case when d.confirmed_at is not null then d.contact_id end)`.as('confirmed'),
      sql<number>`count(distinct case when d.unsubscribed_at is not null then d.contact_id end)`.as('unsubscribed'),
      sql<number>`count(distinct case when d.bounced_at is not null then d.contact_id end)`.as('bounced'),
      sql<number>`count(distinct case when d.confirmed_at is not null or d.unsubscribed_at is not null or d.bounced_at is not null then d.contact_id end)`.as(
        'answered',
      ),
    ])
    .where('d.campaign_key', '=', key)
    .executeTakeFirst();
  const sum = (f: keyof Counts) => steps.reduce((a, s) => a + s[f], 0);
  const totals = {
    audience,
    excluded: Object.values(excludedByReason).reduce((a, b) => a + b, 0),
    excludedByReason,
    queued: sum('queued'),
    sent: sum('sent'),
    failed: sum('failed'),
    cancelled: sum('cancelled'),
    cancelledByReason,
    clicked: n(distinct?.clicked),
    confirmed: n(distinct?.confirmed),
    unsubscribed: n(distinct?.unsubscribed),
    bounced: n(distinct?.bounced),
    pending: audience - n(distinct?.answered),
  };
  return { campaign: key, status: campaign.status, totals, steps, daily: await dailySeries(db, key) };
}

const cancelReason = (error: string | null): string => {
  if (!error) return 'other';
  if (error.startsWith('not sent: campaign ')) return error.slice('not sent: campaign '.length);
  if (error.startsWith('not sent: ')) return error.slice('not sent: '.length);
  if (error.startsWith('superseded')) return 'superseded';
  if (error.startsWith('deadline')) return 'deadline';
  if (error.startsWith('campaign cancelled')) return 'cancelled';
  return 'other';
};

async function dailySeries(db: Executor, key: string) {
  const days = new Map<string, { date: string; sent: number; clicked: number; confirmed: number; unsubscribed: number; bounced: number }>();
  for (const column of ['sent_at', 'clicked_at', 'confirmed_at', 'unsubscribed_at', 'bounced_at'] as const) {
    const day = sql<string>`substr(${sql.ref(`d.${column}`)}, 1, 10)`;
    const rows = await db
      .selectFrom('deliveries as d')
      .select([day.as('date'), sql<number>`count(*)`.as('n')])
      .where('d.campaign_key', '=', key)
      .where(`d.${column}`, 'is not', null)
      .groupBy(day)
      .execute();
    for (const r of rows) {
      const entry = days.get(r.date) ?? { date: r.date, sent: 0, clicked: 0, confirmed: 0, unsubscribed: 0, bounced: 0 };
      entry[column.replace('_at', '') as 'sent'] += n(r.n);
      days.set(r.date, entry);
    }
  }
  return [...days.values()].sort((a, b) => a.date.localeCompare(b.date));
}

/** The included audience members who have not answered (confirmed, unsubscribed) and did not bounce. */
export async function nonResponders(ctx: AppContext, key: string, cursor: string | undefined, limit: number) {
  const campaign = await getCampaign(ctx, key);
  const db = ctx.db.kysely;
  let q = db
    .selectFrom('campaign_audience as a')
    .innerJoin('contacts as c', 'c.id', 'a.contact_id')
    .select([
      'a.contact_id',
      'c.erased_at',
      (eb) =>
        eb
          .selectFrom('deliveries as d')
          .select(sql<number>`count(*)`.as('n'))
          .whereRef('d.contact_id', '=', 'a.contact_id')
          .where('d.campaign_key', '=', key)
          .where('d.status', 'in', ['sent', 'stored'])
          .as('sends'),
    ])
    .where('a.campaign_key', '=', key)
    .where('a.excluded_reason', 'is', null)
    .where('a.contact_id', 'not in', answered(db, key))
    .orderBy('a.contact_id')
    .limit(limit + 1);
  if (cursor) q = q.where('a.contact_id', '>', cursor);
  const rows = await q.execute();
  const page = rows.slice(0, limit);
  const total = await db
    .selectFrom('campaign_audience as a')
    .select(sql<number>`count(*)`.as('n'))
    .where('a.campaign_key', '=', key)
    .where('a.excluded_reason', 'is', null)
    .where('a.contact_id', 'not in', answered(db, key))
    .executeTakeFirst();
  return {
    campaign: key,
    status: campaign.status,
    deadline: campaign.deadline,
    closedAt: campaign.closedAt,
    nonResponders: n(total?.n),
    items: page.map((r) => ({ contactId: r.contact_id, sends: n(r.sends), erased: r.erased_at !== null })),
    nextCursor: rows.length > limit ? (page.at(-1)?.contact_id ?? null) : null,
  };
}

export interface PurgeReport {
  id: string | null;
  campaign: string;
  dryRun: boolean;
  status: 'dry_run' | 'running' | 'completed';
  /** Non-responders considered, and what becomes of them. */
  counts: { nonResponders: number; erase: number; keptOtherBasis: number; keptByReason: Record<string, number>; alreadyErased: number };
  erased: number;
  startedAt: string;
  completedAt: string | null;
}

/**
 * After the deadline, with atDeadline "purge": erases every non-responder who has no valid basis
 * left for any purpose on any channel (decide() says so — a confirmed person, a customer under
 * soft opt-in, anyone with another consent is kept). Recorded, resumable, its report kept.
 */
export async function purgeCampaign(ctx: AppContext, req: RequestContext, key: string, dryRun: boolean): Promise<PurgeReport> {
  const campaign = await getCampaign(ctx, key);
  if (campaign.atDeadline !== 'purge')
    throw new DomainError('purge_not_allowed', `Campaign "${key}" ends with a report, not a purge (atDeadline is "report")`);
  if (campaign.status !== 'closed')
    throw new DomainError('purge_not_allowed', `Campaign "${key}" is ${campaign.status}: the purge comes after its deadline`);
  const db = ctx.db.kysely;
  const previous = await db
    .selectFrom('campaign_purges')
    .selectAll()
    .where('campaign_key', '=', key)
    .orderBy('started_at', 'desc')
    .executeTakeFirst();
  if (previous?.status === 'completed' && !dryRun) return toReport(previous);

  const candidates = await db
    .selectFrom('campaign_audience as a')
    .innerJoin('contacts as c', 'c.id', 'a.contact_id')
    .select(['a.contact_id', 'c.erased_at'])
    .where('a.campaign_key', '=', key)
    .where('a.excluded_reason', 'is', null)
    .where(
      'a.contact_id',
      'not in',
      db
        .selectFrom('deliveries as r')
        .select('r.contact_id')
        .where('r.campaign_key', '=', key)
        .where((eb) => eb.or([eb('r.confirmed_at', 'is not', null), eb('r.unsubscribed_at', 'is not', null)])),
    )
    .orderBy('a.contact_id')
    .execute();
  const pairs = (await listPurposes(ctx)).flatMap((p) => p.channels.map((channel) => ({ purpose: p.key, channel })));
  /** The basis that keeps the person (the decision's reason, e.g. consent, soft_opt_in), or null. */
  const basisOf = async (contactId: string): Promise<string | null> => {
    for (const pair of pairs) {
      const decision = await decide(ctx, { contactId, ...pair });
      if (decision.allowed) return decision.reason;
    }
    return null;
  };
  const toErase: string[] = [];
  let keptOtherBasis = 0;
  let alreadyErased = 0;
  const keptByReason: Record<string, number> = {};
  for (const c of candidates) {
    if (c.erased_at) {
      alreadyErased += 1;
      continue;
    }
    const basis = await basisOf(c.contact_id);
    if (basis === null) toErase.push(c.contact_id);
    else {
      keptOtherBasis += 1;
      keptByReason[basis] = (keptByReason[basis] ?? 0) + 1;
    }
  }
  const counts = { nonResponders: candidates.length, erase: toErase.length, keptOtherBasis, keptByReason, alreadyErased };
  const now = iso(ctx.clock.now());
  if (dryRun) return { id: null, campaign: key, dryRun: true, status: 'dry_run', counts, erased: 0, startedAt: now, completedAt: null };

  // A purge interrupted earlier goes on where it stopped (those it erased count as already erased).
  const id = previous?.status === 'running' ? previous.id : ctx.newId();
  if (previous?.status !== 'running') {
    await db
      .insertInto('campaign_purges')
      .values({ id, campaign_key: key, status: 'running', counts: JSON.stringify(counts), erased: 0, started_at: now, completed_at: null })
      .execute();
  }
  for (const contactId of toErase) {
    // Asked again just before: a consent or a purchase recorded during a long purge keeps the person.
    if ((await basisOf(contactId)) !== null) continue;
    const { erased } = await eraseContact(ctx, req, contactId);
    if (erased)
      await db
        .updateTable('campaign_purges')
        .set((eb) => ({ erased: eb('erased', '+', 1) }))
        .where('id', '=', id)
        .execute();
  }
  await db
    .updateTable('campaign_purges')
    .set({ status: 'completed', completed_at: iso(ctx.clock.now()) })
    .where('id', '=', id)
    .execute();
  ctx.logger.info({ campaign: key, erased: toErase.length }, 'campaign purge completed');
  return toReport(await db.selectFrom('campaign_purges').selectAll().where('id', '=', id).executeTakeFirstOrThrow());
}

export async function lastPurge(ctx: AppContext, key: string): Promise<PurgeReport> {
  await getCampaign(ctx, key);
  const row = await ctx.db.kysely
    .selectFrom('campaign_purges')
    .selectAll()
    .where('campaign_key', '=', key)
    .orderBy('started_at', 'desc')
    .executeTakeFirst();
  if (!row) throw new DomainError('not_found', `Campaign "${key}" has not been purged`);
  return toReport(row);
}

function toReport(row: {
  id: string;
  campaign_key: string;
  status: string;
  counts: string;
  erased: number;
  started_at: string;
  completed_at: string | null;
}): PurgeReport {
  return {
    id: row.id,
    campaign: row.campaign_key,
    dryRun: false,
    status: row.status as PurgeReport['status'],
    counts: JSON.parse(row.counts),
    erased: Number(row.erased),
    startedAt: row.started_at,
    completedAt: row.completed_at,
  };
}

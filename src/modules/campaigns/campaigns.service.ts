// Re-permission campaigns: definition, launch (the audience frozen with its exclusions), and the
// steps the scheduler runs — each step one set-based INSERT … SELECT into the delivery queue.
import { type RawBuilder, sql } from 'kysely';
import type { Executor } from '../../database.ts';
import { iso } from '../../platform/clock.ts';
import type { AppContext } from '../../platform/context.ts';
import { DomainError, type FieldError } from '../../platform/errors.ts';
import { listChannels } from '../channels/index.ts';
import { getTemplate, type Template } from '../messaging/index.ts';
import { listPurposes } from '../purposes/index.ts';
import { type Filter, getSegment, type SegmentScope, segmentScope, segmentWhere } from '../segments/index.ts';
import type { CampaignsTable } from './campaigns.table.ts';

export type CampaignStatus = 'draft' | 'running' | 'paused' | 'cancelled' | 'closed';

export interface LaunchReport {
  audience: number;
  excluded: number;
  excludedByReason: Record<string, number>;
  launchedAt: string;
}

export interface Campaign {
  key: string;
  name: string;
  segment: string;
  purposes: string[];
  channel: 'email' | 'sms';
  templates: { first: string; reminder: string };
  startAt: string;
  cadenceDays: number;
  deadline: string;
  maxSends: number | null;
  confirmation: 'button' | 'landing';
  atDeadline: 'report' | 'purge';
  addNewcomers: boolean;
  status: CampaignStatus;
  launchReport: LaunchReport | null;
  launchedAt: string | null;
  closedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface CampaignInput {
  key: string;
  name: string;
  segment: string;
  purposes: string[];
  channel: 'email' | 'sms';
  templates?: { first?: string; reminder?: string } | undefined;
  startAt: string;
  cadenceDays?: number | undefined;
  deadline: string;
  maxSends?: number | null | undefined;
  confirmation?: 'button' | 'landing' | undefined;
  atDeadline?: 'report' | 'purge' | undefined;
  addNewcomers?: boolean | undefined;
}

/** Why a segment member is not in the audience, in the order they are checked. */
export const exclusionReasons = ['no_address', 'bounced', 'complained', 'suppressed', 'objected', 'withdrawn'] as const;

const defaultTemplates = (channel: 'email' | 'sms') =>
  channel === 'sms'
    ? { first: 'repermission-sms', reminder: 'repermission-sms' }
    : { first: 'repermission-first', reminder: 'repermission-reminder' };

export function toCampaign(row: CampaignsTable): Campaign {
  return {
    key: row.key,
    name: row.name,
    segment: row.segment_key,
    purposes: JSON.parse(row.purposes),
    channel: row.channel_key as Campaign['channel'],
    templates: JSON.parse(row.templates),
    startAt: row.start_at,
    cadenceDays: row.cadence_days,
    deadline: row.deadline,
    maxSends: row.max_sends,
    confirmation: row.confirmation as Campaign['confirmation'],
    atDeadline: row.at_deadline as Campaign['atDeadline'],
    addNewcomers: row.add_newcomers === 1,
    status: row.status as CampaignStatus,
    launchReport: row.launch_report ? JSON.parse(row.launch_report) : null,
    launchedAt: row.launched_at,
    closedAt: row.closed_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function listCampaigns(ctx: AppContext): Promise<Campaign[]> {
  const rows = await ctx.db.kysely.selectFrom('campaigns').selectAll().orderBy('created_at').orderBy('key').execute();
  return rows.map(toCampaign);
}

export async function findCampaign(db: Executor, key: string): Promise<Campaign | undefined> {
  const row = await db.selectFrom('campaigns').selectAll().where('key', '=', key).executeTakeFirst();
  return row ? toCampaign(row) : undefined;
}

export async function getCampaign(ctx: AppContext, key: string, db: Executor = ctx.db.kysely): Promise<Campaign> {
  const campaign = await findCampaign(db, key);
  if (!campaign) throw new DomainError('campaign_not_found', `There is no campaign "${key}"`);
  return campaign;
}

/** Checks what refers to other things (segment, purposes, channel, templates) and the dates. */
async function checkDefinition(
  ctx: AppContext,
  c: Omit<Campaign, 'status' | 'launchReport' | 'launchedAt' | 'closedAt' | 'createdAt' | 'updatedAt'>,
) {
  const errors: FieldError[] = [];
  const segment = await ctx.db.kysely.selectFrom('segments').select('key').where('key', '=', c.segment).executeTakeFirst();
  if (!segment) errors.push({ path: '/segment', message: `there is no segment "${c.segment}"` });
  const channel = (await listChannels(ctx)).find((ch) => ch.key === c.channel);
  if (!channel || channel.kind !== c.channel) errors.push({ path: '/channel', message: `there is no ${c.channel} channel` });
  const purposes = new Map((await listPurposes(ctx)).map((p) => [p.key, p]));
  c.purposes.forEach((key, i) => {
    const purpose = purposes.get(key);
    if (!purpose) errors.push({ path: `/purposes/${i}`, message: `there is no purpose "${key}"` });
    else if (!purpose.channels.includes(c.channel))
      errors.push({ path: `/purposes/${i}`, message: `purpose "${key}" does not use the ${c.channel} channel` });
  });
  for (const which of ['first', 'reminder'] as const) {
    const template = await getTemplate(ctx, c.templates[which]).catch(() => undefined);
    if (!template) errors.push({ path: `/templates/${which}`, message: `there is no template "${c.templates[which]}"` });
    else if (template.channel !== c.channel)
      errors.push({ path: `/templates/${which}`, message: `template "${template.key}" is not an ${c.channel} template` });
  }
  if (Date.parse(c.deadline) <= Date.parse(c.startAt)) errors.push({ path: '/deadline', message: 'must be after startAt' });
  if (errors.length > 0) throw new DomainError('campaign_invalid', errors.map((e) => `${e.path} ${e.message}`).join('; '), errors);
}

export async function createCampaign(ctx: AppContext, input: CampaignInput): Promise<Campaign> {
  const now = iso(ctx.clock.now());
  const defaults = defaultTemplates(input.channel);
  const campaign: Campaign = {
    key: input.key,
    name: input.name,
    segment: input.segment,
    purposes: input.purposes,
    channel: input.channel,
    templates: { first: input.templates?.first ?? defaults.first, reminder: input.templates?.reminder ?? defaults.reminder },
    startAt: iso(new Date(input.startAt)),
    cadenceDays: input.cadenceDays ?? 7,
    deadline: iso(new Date(input.deadline)),
    maxSends: input.maxSends ?? null,
    confirmation: input.confirmation ?? 'button',
    atDeadline: input.atDeadline ?? 'report',
    addNewcomers: input.addNewcomers ?? false,
    status: 'draft',
    launchReport: null,
    launchedAt: null,
    closedAt: null,
    createdAt: now,
    updatedAt: now,
  };
  await checkDefinition(ctx, campaign);
  if (await findCampaign(ctx.db.kysely, input.key)) throw new DomainError('key_exists', `Campaign "${input.key}" exists`);
  await ctx.db.kysely.insertInto('campaigns').values(toRow(campaign)).execute();
  return campaign;
}

function toRow(c: Campaign): CampaignsTable {
  return {
    key: c.key,
    name: c.name,
    segment_key: c.segment,
    purposes: JSON.stringify(c.purposes),
    channel_key: c.channel,
    templates: JSON.stringify(c.templates),
    start_at: c.startAt,
    cadence_days: c.cadenceDays,
    deadline: c.deadline,
    max_sends: c.maxSends,
    confirmation: c.confirmation,
    at_deadline: c.atDeadline,
    add_newcomers: c.addNewcomers ? 1 : 0,
    status: c.status,
    launch_report: c.launchReport ? JSON.stringify(c.launchReport) : null,
    launched_at: c.launchedAt,
    closed_at: c.closedAt,
    created_at: c.createdAt,
    updated_at: c.updatedAt,
  };
}

/** A draft changes freely; once launched only the name, templates, cadence, deadline and max sends may. */
export async function patchCampaign(ctx: AppContext, key: string, patch: Partial<CampaignInput>): Promise<Campaign> {
  const current = await getCampaign(ctx, key);
  if (current.status === 'cancelled' || current.status === 'closed')
    throw new DomainError('campaign_state', `Campaign "${key}" is ${current.status}: it no longer changes`);
  if (current.status !== 'draft') {
    const frozen = (['segment', 'purposes', 'channel', 'startAt', 'confirmation', 'addNewcomers'] as const).filter(
      (f) => patch[f] !== undefined,
    );
    if (frozen.length > 0)
      throw new DomainError(
        'campaign_state',
        `Campaign "${key}" was launched: ${frozen.join(', ')} no longer change`,
        frozen.map((f) => ({ path: `/${f}`, message: 'fixed at launch' })),
      );
  }
  const channel = patch.channel ?? current.channel;
  const defaults = defaultTemplates(channel);
  const next: Campaign = {
    ...current,
    ...(patch.name !== undefined ? { name: patch.name } : {}),
    ...(patch.segment !== undefined ? { segment: patch.segment } : {}),
    ...(patch.purposes !== undefined ? { purposes: patch.purposes } : {}),
    channel,
    templates:
      patch.templates !== undefined || patch.channel !== undefined
        ? {
            first: patch.templates?.first ?? (patch.channel ? defaults.first : current.templates.first),
            reminder: patch.templates?.reminder ?? (patch.channel ? defaults.reminder : current.templates.reminder),
          }
        : current.templates,
    ...(patch.startAt !== undefined ? { startAt: iso(new Date(patch.startAt)) } : {}),
    ...(patch.cadenceDays !== undefined ? { cadenceDays: patch.cadenceDays } : {}),
    ...(patch.deadline !== undefined ? { deadline: iso(new Date(patch.deadline)) } : {}),
    ...(patch.maxSends !== undefined ? { maxSends: patch.maxSends } : {}),
    ...(patch.confirmation !== undefined ? { confirmation: patch.confirmation } : {}),
    ...(patch.atDeadline !== undefined ? { atDeadline: patch.atDeadline } : {}),
    ...(patch.addNewcomers !== undefined ? { addNewcomers: patch.addNewcomers } : {}),
    updatedAt: iso(ctx.clock.now()),
  };
  await checkDefinition(ctx, next);
  if (current.status !== 'draft' && patch.templates !== undefined) await checkTemplates(ctx, next);
  const { key: _key, created_at: _created, ...row } = toRow(next);
  await ctx.db.kysely.updateTable('campaigns').set(row).where('key', '=', key).execute();
  return next;
}

const CONFIRM_LINK = /\{\{-?\s*links\.confirm\b/;
const OPT_OUT_LINK = /\{\{-?\s*links\.unsubscribe\b/;

/** A re-permission template asks (confirm link) and lets go (unsubscribe link, or STOP by SMS). */
export function checkRepermissionTemplate(template: Template, path: string): FieldError[] {
  const errors: FieldError[] = [];
  for (const [locale, variant] of Object.entries(template.variants)) {
    const parts =
      template.channel === 'email'
        ? Object.entries({ html: (variant as { html: string }).html, text: (variant as { text: string }).text })
        : [['body', (variant as { body: string }).body] as const];
    for (const [field, source] of parts) {
      if (!CONFIRM_LINK.test(source ?? ''))
        errors.push({ path: `${path}/variants/${locale}/${field}`, message: 'must contain {{ links.confirm }}' });
      if (template.channel === 'email' && !OPT_OUT_LINK.test(source ?? ''))
        errors.push({ path: `${path}/variants/${locale}/${field}`, message: 'must contain {{ links.unsubscribe }}' });
      if (template.channel === 'sms' && !/\bSTOP\b/.test(source ?? ''))
        errors.push({ path: `${path}/variants/${locale}/${field}`, message: 'must say how to stop ("STOP au …")' });
    }
  }
  return errors;
}

/** Both templates ask (confirm link) and let go (opt-out): at launch, and when a launched campaign changes them. */
async function checkTemplates(ctx: AppContext, campaign: Campaign): Promise<void> {
  const errors: FieldError[] = [];
  for (const which of ['first', 'reminder'] as const) {
    errors.push(...checkRepermissionTemplate(await getTemplate(ctx, campaign.templates[which]), `/templates/${which}`));
  }
  if (errors.length > 0)
    throw new DomainError('campaign_templates_incomplete', errors.map((e) => `${e.path} ${e.message}`).join('; '), errors);
}

/** The address column and hash column for the campaign's channel. */
const addressColumns = (channel: 'email' | 'sms') =>
  channel === 'sms'
    ? { address: sql.ref('c.phone'), hash: sql.ref('c.phone_hash') }
    : { address: sql.ref('c.email'), hash: sql.ref('c.email_hash') };

/**
 * Why a contact may not receive this campaign (RULES 17), as one SQL CASE: null when it may.
 * Suppressions first (bounced, complained, any other), then objection to any of the purposes
 * (on any channel: an objection is absolute), then withdrawal on this channel.
 */
export function exclusionCase(campaign: Pick<Campaign, 'channel' | 'purposes'>, contactId = sql.ref('c.id')): RawBuilder<string | null> {
  const { address, hash } = addressColumns(campaign.channel);
  const purposes = sql.join(campaign.purposes.map((p) => sql`${p}`));
  const suppressed = (reasons: string | null) =>
    sql`exists (select 1 from suppressions s where s.channel_key = ${campaign.channel} and s.address_hash = ${hash}${
      reasons ? sql` and s.reason = ${reasons}` : sql``
    })`;
  return sql<string | null>`case
    when ${address} is null then 'no_address'
    when ${suppressed('bounced')} then 'bounced'
    when ${suppressed('complained')} then 'complained'
    when ${suppressed(null)} then 'suppressed'
    when exists (select 1 from consent_states cs where cs.contact_id = ${contactId} and cs.purpose_key in (${purposes}) and cs.status = 'objected') then 'objected'
    when exists (select 1 from consent_states cs where cs.contact_id = ${contactId} and cs.purpose_key in (${purposes}) and cs.channel_key = ${campaign.channel} and cs.status = 'withdrawn') then 'withdrawn'
    else null end`;
}

/** Adds the segment's members not yet in the audience (all of them at launch), with their exclusion. */
async function addToAudience(db: Executor, campaign: Campaign, filter: Filter, scope: SegmentScope, at: string): Promise<void> {
  const select = db
    .selectFrom('contacts as c')
    .where(segmentWhere(filter, 'c', scope))
    .select([
      sql<string>`${campaign.key}`.as('campaign_key'),
      'c.id as contact_id',
      exclusionCase(campaign).as('excluded_reason'),
      sql<string>`${at}`.as('added_at'),
    ]);
  await db
    .insertInto('campaign_audience')
    .columns(['campaign_key', 'contact_id', 'excluded_reason', 'added_at'])
    .expression(select)
    .onConflict((oc) => oc.columns(['campaign_key', 'contact_id']).doNothing())
    .execute();
}

export async function audienceCounts(db: Executor, key: string): Promise<{ audience: number; excludedByReason: Record<string, number> }> {
  const rows = await db
    .selectFrom('campaign_audience')
    .select(['excluded_reason', (eb) => eb.fn.countAll<number | string>().as('n')])
    .where('campaign_key', '=', key)
    .groupBy('excluded_reason')
    .execute();
  let audience = 0;
  const excludedByReason: Record<string, number> = {};
  for (const r of rows) {
    if (r.excluded_reason === null) audience = Number(r.n);
    else excludedByReason[r.excluded_reason] = Number(r.n);
  }
  return { audience, excludedByReason };
}

/**
 * Freezes the audience (members and exclusions with reasons) and starts the campaign. Step 1 is
 * enqueued at once when startAt has come, otherwise by the scheduler when it does.
 */
export async function launchCampaign(ctx: AppContext, key: string): Promise<Campaign> {
  const campaign = await getCampaign(ctx, key);
  if (campaign.status !== 'draft')
    throw new DomainError('campaign_state', `Campaign "${key}" is ${campaign.status}: only a draft launches`);
  const now = ctx.clock.now();
  if (Date.parse(campaign.deadline) <= now.getTime())
    throw new DomainError('campaign_invalid', 'The deadline has passed', [{ path: '/deadline', message: 'is in the past' }]);
  await checkTemplates(ctx, campaign);
  const at = iso(now);
  // Read before the transaction: on SQLite the one writer connection is the transaction's.
  const { filter } = await getSegment(ctx, campaign.segment);
  await ctx.db.kysely.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('campaigns')
      .set({ status: 'running', launched_at: at, updated_at: at })
      .where('key', '=', key)
      .where('status', '=', 'draft')
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1) throw new DomainError('campaign_state', `Campaign "${key}" was launched meanwhile`);
    await addToAudience(trx, campaign, filter, segmentScope(ctx, now), at);
    const counts = await audienceCounts(trx, key);
    const report: LaunchReport = {
      audience: counts.audience,
      excluded: Object.values(counts.excludedByReason).reduce((a, b) => a + b, 0),
      excludedByReason: counts.excludedByReason,
      launchedAt: at,
    };
    await trx
      .updateTable('campaigns')
      .set({ launch_report: JSON.stringify(report) })
      .where('key', '=', key)
      .execute();
  });
  ctx.logger.info({ campaign: key }, 'campaign launched');
  await runCampaignSteps(ctx, now, key);
  return getCampaign(ctx, key);
}

export async function setCampaignStatus(ctx: AppContext, key: string, action: 'pause' | 'resume' | 'cancel'): Promise<Campaign> {
  const campaign = await getCampaign(ctx, key);
  const from: Record<typeof action, CampaignStatus[]> = { pause: ['running'], resume: ['paused'], cancel: ['draft', 'running', 'paused'] };
  const to: Record<typeof action, CampaignStatus> = { pause: 'paused', resume: 'running', cancel: 'cancelled' };
  if (!from[action].includes(campaign.status))
    throw new DomainError('campaign_state', `Campaign "${key}" is ${campaign.status}: it cannot ${action}`);
  const at = iso(ctx.clock.now());
  await ctx.db.kysely.transaction().execute(async (trx) => {
    await trx
      .updateTable('campaigns')
      .set({ status: to[action], updated_at: at, ...(action === 'cancel' ? { closed_at: at } : {}) })
      .where('key', '=', key)
      .execute();
    if (action === 'cancel') await cancelQueued(trx, key, 'campaign cancelled');
  });
  if (action === 'resume') await runCampaignSteps(ctx, ctx.clock.now(), key);
  return getCampaign(ctx, key);
}

async function cancelQueued(db: Executor, key: string, why: string): Promise<void> {
  await db
    .updateTable('deliveries')
    .set({ status: 'cancelled', last_error: why })
    .where('campaign_key', '=', key)
    .where('status', '=', 'queued')
    .execute();
}

const DAY_MS = 86_400_000;

export const stepDueAt = (campaign: Pick<Campaign, 'startAt' | 'cadenceDays'>, step: number) =>
  iso(new Date(Date.parse(campaign.startAt) + (step - 1) * campaign.cadenceDays * DAY_MS));

export interface StepRun {
  campaign: string;
  step?: number;
  queued?: number;
  closed?: boolean;
}

/**
 * The scheduler's campaign job: closes campaigns whose deadline passed, and enqueues the next step
 * once it is due — at startAt + (n − 1) × cadence, and never sooner than a cadence after the
 * previous step was queued (a late start, a pause or a scheduler that did not run for a while
 * never sends two messages at once).
 */
export async function runCampaignSteps(ctx: AppContext, at: Date, only?: string): Promise<StepRun[]> {
  let q = ctx.db.kysely.selectFrom('campaigns').selectAll().where('status', '=', 'running');
  if (only) q = q.where('key', '=', only);
  const runs: StepRun[] = [];
  for (const row of await q.execute()) {
    const campaign = toCampaign(row);
    if (at.getTime() >= Date.parse(campaign.deadline)) {
      await closeCampaign(ctx, campaign, at);
      runs.push({ campaign: campaign.key, closed: true });
      continue;
    }
    if (at.getTime() < Date.parse(campaign.startAt)) continue;
    const last = await ctx.db.kysely
      .selectFrom('campaign_steps')
      .select(['step', 'enqueued_at'])
      .where('campaign_key', '=', campaign.key)
      .orderBy('step', 'desc')
      .limit(1)
      .executeTakeFirst();
    const step = Number(last?.step ?? 0) + 1;
    if (campaign.maxSends !== null && step > campaign.maxSends) continue;
    if (last) {
      const due = Math.max(Date.parse(stepDueAt(campaign, step)), Date.parse(last.enqueued_at) + campaign.cadenceDays * DAY_MS);
      if (at.getTime() < due) continue;
    }
    const queued = await enqueueStep(ctx, campaign, step, at);
    runs.push({ campaign: campaign.key, step, queued });
  }
  return runs;
}

/**
 * One step as one statement: every included audience member who has not confirmed, unsubscribed
 * or bounced in this campaign and may still be asked gets a delivery (unique per campaign, step
 * and contact: running it twice adds nothing).
 */
export async function enqueueStep(ctx: AppContext, campaign: Campaign, step: number, at: Date): Promise<number> {
  const now = iso(at);
  const filter = campaign.addNewcomers && step > 1 ? (await getSegment(ctx, campaign.segment)).filter : undefined;
  return ctx.db.kysely.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('campaign_steps')
      .values({ campaign_key: campaign.key, step, due_at: stepDueAt(campaign, step), enqueued_at: now, queued: 0, completed_at: null })
      .onConflict((oc) => oc.columns(['campaign_key', 'step']).doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) return 0;
    if (filter) await addToAudience(trx, campaign, filter, segmentScope(ctx, at), now);
    // What an earlier step still holds (a pause, sending hours) gives way: one message at a time.
    await trx
      .updateTable('deliveries')
      .set({ status: 'cancelled', last_error: `superseded by step ${step}` })
      .where('campaign_key', '=', campaign.key)
      .where('step', '<', step)
      .where('status', '=', 'queued')
      .execute();
    const purposes = sql.join(campaign.purposes.map((p) => sql`${p}`));
    // Who answered earlier steps, and who was written to before: each computed once (a set the
    // planner hashes), not probed per audience member — PostgreSQL would otherwise scan the
    // campaign's deliveries, the new ones included, for every member.
    const answered = sql`select r.contact_id from deliveries r where r.campaign_key = ${campaign.key}
      and (r.confirmed_at is not null or r.unsubscribed_at is not null or r.bounced_at is not null)`;
    const writtenTo = sql`select w.contact_id from deliveries w where w.campaign_key = ${campaign.key}`;
    let select = trx
      .selectFrom('campaign_audience as a')
      .innerJoin('contacts as c', 'c.id', 'a.contact_id')
      .where('a.campaign_key', '=', campaign.key)
      .where('a.excluded_reason', 'is', null)
      .where('c.erased_at', 'is', null)
      // Those who gave a valid consent for every purpose since the launch (another way than this
      // campaign) are not asked again; an older consent is what the campaign renews.
      .where(
        sql<boolean>`(select count(*) from consent_states cs where cs.contact_id = a.contact_id and cs.channel_key = ${campaign.channel}
          and cs.purpose_key in (${purposes}) and cs.status = 'granted' and cs.since >= ${campaign.launchedAt ?? now}) < ${campaign.purposes.length}`,
      )
      .where(exclusionCase(campaign, sql.ref('a.contact_id')), 'is', null)
      .select([
        sql<string>`${campaign.key}`.as('campaign_key'),
        sql<number>`${step}`.as('step'),
        'a.contact_id as contact_id',
        (step === 1 ? sql<string>`'first'` : sql<string>`case when a.contact_id in (${writtenTo}) then 'reminder' else 'first' end`).as(
          'template',
        ),
        sql<string>`'queued'`.as('status'),
        sql<string>`${now}`.as('send_after'),
        sql<string>`${now}`.as('created_at'),
      ]);
    if (step > 1) select = select.where(sql<boolean>`a.contact_id not in (${answered})`);
    const result = await trx
      .insertInto('deliveries')
      .columns(['campaign_key', 'step', 'contact_id', 'template', 'status', 'send_after', 'created_at'])
      .expression(select)
      .onConflict((oc) => oc.columns(['campaign_key', 'step', 'contact_id']).doNothing())
      .executeTakeFirst();
    const queued = Number(result.numInsertedOrUpdatedRows ?? 0);
    await trx.updateTable('campaign_steps').set({ queued }).where('campaign_key', '=', campaign.key).where('step', '=', step).execute();
    ctx.logger.info({ campaign: campaign.key, step, queued }, 'campaign step queued');
    return queued;
  });
}

/** The deadline: nothing more is sent; what was still queued is cancelled. */
async function closeCampaign(ctx: AppContext, campaign: Campaign, at: Date): Promise<void> {
  const now = iso(at);
  await ctx.db.kysely.transaction().execute(async (trx) => {
    await trx.updateTable('campaigns').set({ status: 'closed', closed_at: now, updated_at: now }).where('key', '=', campaign.key).execute();
    await cancelQueued(trx, campaign.key, 'deadline passed');
  });
  ctx.logger.info({ campaign: campaign.key }, 'campaign closed at its deadline');
}

/**
 * A template change may not take from a launched campaign (running — started or not yet — or
 * paused: a resume sends again without a new check) what its launch required: the confirm link
 * and the opt-out. Refuses with every such campaign and every missing field named. `db` is the
 * transaction that saves the template, so the check and the write see the same campaigns.
 */
export async function checkTemplateChange(db: Executor, template: Template): Promise<void> {
  const launched = await db
    .selectFrom('campaigns')
    .select(['key', 'status', 'templates'])
    .where('status', 'in', ['running', 'paused'])
    .orderBy('key')
    .execute();
  const users = launched.flatMap((row) => {
    const templates = JSON.parse(row.templates) as Campaign['templates'];
    const roles = (['first', 'reminder'] as const).filter((which) => templates[which] === template.key);
    return roles.length > 0 ? [{ key: row.key, status: row.status, roles }] : [];
  });
  if (users.length === 0) return;
  const missing = checkRepermissionTemplate(template, '');
  if (missing.length === 0) return;
  const named = users.map((u) => `"${u.key}" (${u.status}, ${u.roles.join(' and ')} message)`).join(', ');
  const errors: FieldError[] = users.flatMap((u) =>
    missing.map((m) => ({ path: m.path, message: `${m.message}: campaign "${u.key}" (${u.status}) sends this template` })),
  );
  throw new DomainError(
    'campaign_templates_incomplete',
    `Template "${template.key}" is used by the launched campaign${users.length > 1 ? 's' : ''} ${named}: ${missing
      .map((m) => `${m.path} ${m.message}`)
      .join('; ')}`,
    errors,
  );
}

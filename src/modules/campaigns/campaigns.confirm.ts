// What people do with a campaign message: open the confirm page (a click, recorded per delivery
// and as an interaction), confirm (renewed, or granted when there was no consent), or reply by SMS.
import type { Selectable } from 'kysely';
import type { Executor } from '../../database.ts';
import { iso } from '../../platform/clock.ts';
import type { AppContext, RequestContext } from '../../platform/context.ts';
import type { Evidence } from '../collection/collection.service.ts';
import { consentStatesOf, recordConsents } from '../consents/index.ts';
import { touchInteractionRows } from '../contacts/index.ts';
import { listPurposes, localized } from '../purposes/index.ts';
import { type Campaign, getCampaign } from './campaigns.service.ts';
import type { DeliveriesTable } from './campaigns.table.ts';

/** "campaign:key/step/deliveryId" (the ref a campaign link carries) → the delivery id. */
export function deliveryIdOfRef(ref: string | undefined): number | undefined {
  const m = /^campaign:[a-z0-9][a-z0-9_-]*\/\d+\/(\d{1,15})$/.exec(ref ?? '');
  return m ? Number(m[1]) : undefined;
}

async function findDelivery(db: Executor, id: number) {
  return db.selectFrom('deliveries').selectAll().where('id', '=', id).executeTakeFirst();
}

export interface CampaignLink {
  delivery: Selectable<DeliveriesTable>;
  campaign: Campaign;
  items: Array<{ purpose: string; channel: string; title: string; infoUrl: string | null }>;
}

/** The delivery a link names, if it is this contact's (the token's contact, when it names one). */
export async function campaignLink(
  ctx: AppContext,
  deliveryId: number,
  contactId: string | undefined,
  lang: string,
): Promise<CampaignLink | undefined> {
  const row = await findDelivery(ctx.db.kysely, deliveryId);
  if (!row || (contactId !== undefined && row.contact_id !== contactId)) return undefined;
  const campaign = await getCampaign(ctx, row.campaign_key);
  const purposes = new Map((await listPurposes(ctx)).map((p) => [p.key, p]));
  const items = campaign.purposes.map((key) => ({
    purpose: key,
    channel: campaign.channel,
    title: localized(purposes.get(key)?.title ?? {}, lang) || key,
    infoUrl: purposes.get(key)?.infoUrl ?? null,
  }));
  return { delivery: { ...row, id: Number(row.id) }, campaign, items };
}

/** A page view of a campaign link: the first click is recorded on the delivery; every click is an interaction. */
export async function recordClick(ctx: AppContext, delivery: { id: number; contact_id: string }): Promise<void> {
  const at = iso(ctx.clock.now());
  await ctx.db.kysely.transaction().execute(async (trx) => {
    await trx.updateTable('deliveries').set({ clicked_at: at }).where('id', '=', delivery.id).where('clicked_at', 'is', null).execute();
    await touchInteractionRows(trx, [delivery.contact_id], at);
  });
}

export type DeliveryConfirmOutcome = 'confirmed' | 'nothing' | 'closed' | 'used';

/**
 * Records the person's "yes" to a campaign: `renewed` where a consent was recorded before,
 * `granted` where there was none, for the campaign's purposes on its channel (in landing mode,
 * only the ticked ones), with source { type: campaign | sms_reply, ref: key/step/delivery }.
 */
export async function confirmDelivery(
  ctx: AppContext,
  req: RequestContext,
  deliveryId: number,
  options: { source: 'campaign' | 'sms_reply'; purposes?: string[]; evidence: Evidence },
): Promise<DeliveryConfirmOutcome> {
  const delivery = await findDelivery(ctx.db.kysely, deliveryId);
  if (!delivery) return 'nothing';
  if (delivery.confirmed_at) return 'used';
  const campaign = await getCampaign(ctx, delivery.campaign_key);
  if (campaign.status !== 'running' && campaign.status !== 'paused') return 'closed';
  if (Date.parse(campaign.deadline) <= ctx.clock.now().getTime()) return 'closed';
  const contact = await ctx.db.kysely
    .selectFrom('contacts')
    .select(['id', 'erased_at'])
    .where('id', '=', delivery.contact_id)
    .executeTakeFirst();
  if (!contact || contact.erased_at) return 'nothing';
  const chosen = options.purposes ? campaign.purposes.filter((p) => options.purposes?.includes(p)) : campaign.purposes;
  if (chosen.length === 0) return 'nothing';
  const states = new Map((await consentStatesOf(ctx.db.kysely, contact.id)).map((s) => [`${s.purpose_key}:${s.channel_key}`, s]));
  const ref = `${delivery.campaign_key}/${delivery.step}/${delivery.id}`;
  const at = iso(ctx.clock.now());
  let spent = false;
  await recordConsents(
    ctx,
    req,
    chosen.map((purpose) => ({
      contactId: contact.id,
      purpose,
      channel: campaign.channel,
      action: states.has(`${purpose}:${campaign.channel}`) ? ('renew' as const) : ('grant' as const),
      source: { type: options.source, ref },
      evidence: {
        ...options.evidence,
        method: options.evidence.method ?? (options.source === 'sms_reply' ? 'SMS reply' : 'campaign confirm page'),
      },
    })),
    {
      inTransaction: async (trx) => {
        // Two confirmations at once record once: the second finds confirmed_at set and rolls back.
        const updated = await trx
          .updateTable('deliveries')
          .set({ confirmed_at: at })
          .where('id', '=', delivery.id)
          .where('confirmed_at', 'is', null)
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1) throw new AlreadyConfirmed();
        spent = true;
      },
    },
  ).catch((error) => {
    if (!(error instanceof AlreadyConfirmed)) throw error;
  });
  return spent ? 'confirmed' : 'used';
}

class AlreadyConfirmed extends Error {}

/** An unsubscribe through a campaign link is counted on its delivery. */
export async function markUnsubscribed(db: Executor, ref: string | undefined, at: string): Promise<void> {
  const id = deliveryIdOfRef(ref);
  if (id === undefined) return;
  await db.updateTable('deliveries').set({ unsubscribed_at: at }).where('id', '=', id).where('unsubscribed_at', 'is', null).execute();
}

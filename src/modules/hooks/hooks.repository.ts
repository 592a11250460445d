// Queries of the provider callbacks: contacts by address hash, campaign deliveries by provider id
// or by "the last one sent to this contact on this kind of channel".
import type { Executor } from '../../database.ts';

export const findLiveContactsByEmailHash = (db: Executor, hashes: string[]) =>
  hashes.length === 0
    ? Promise.resolve([])
    : db.selectFrom('contacts').select(['id', 'email_hash']).where('email_hash', 'in', hashes).where('erased_at', 'is', null).execute();

export const findLiveContactByPhoneHash = (db: Executor, hash: string) =>
  db.selectFrom('contacts').select(['id']).where('phone_hash', '=', hash).where('erased_at', 'is', null).executeTakeFirst();

export const findDeliveriesByProviderRefs = (db: Executor, refs: string[]) =>
  refs.length === 0
    ? Promise.resolve([])
    : db.selectFrom('deliveries').select(['id', 'contact_id', 'provider_ref']).where('provider_ref', 'in', refs).execute();

/**
 * Each contact's latest delivery that left (sent_at set) through a channel of this kind, newest
 * first; `runningOnly` keeps deliveries of running campaigns.
 */
export async function latestSentDeliveries(
  db: Executor,
  contactIds: string[],
  channelKind: string,
  options: { runningOnly?: boolean } = {},
): Promise<Map<string, number>> {
  if (contactIds.length === 0) return new Map();
  let query = db
    .selectFrom('deliveries as d')
    .innerJoin('campaigns as c', 'c.key', 'd.campaign_key')
    .innerJoin('channels as ch', 'ch.key', 'c.channel_key')
    .select(['d.id', 'd.contact_id'])
    .where('d.contact_id', 'in', contactIds)
    .where('ch.kind', '=', channelKind)
    .where('d.sent_at', 'is not', null)
    .orderBy('d.contact_id')
    .orderBy('d.sent_at', 'desc')
    .orderBy('d.id', 'desc');
  if (options.runningOnly) query = query.where('c.status', '=', 'running');
  const latest = new Map<string, number>();
  for (const row of await query.execute()) if (!latest.has(row.contact_id)) latest.set(row.contact_id, Number(row.id));
  return latest;
}

/** Sets a delivery's bounce or unsubscribe time once: the first report wins, repeats change nothing. */
export const markDelivery = (db: Executor, id: number, column: 'bounced_at' | 'unsubscribed_at', at: string) =>
  db.updateTable('deliveries').set(column, at).where('id', '=', id).where(column, 'is', null).execute();

export const findDeliveryForReceipt = (db: Executor, providerRef: string, reference: number | undefined) => {
  let query = db.selectFrom('deliveries').select(['id', 'status']);
  query =
    reference === undefined
      ? query.where('provider_ref', '=', providerRef)
      : query.where((eb) => eb.or([eb('provider_ref', '=', providerRef), eb('id', '=', reference)]));
  // A provider id match is the stronger one when both match different rows.
  return query.orderBy((eb) => eb.case().when('provider_ref', '=', providerRef).then(0).else(1).end()).executeTakeFirst();
};

export const markDeliveryFailed = (db: Executor, id: number, error: string) =>
  db.updateTable('deliveries').set({ status: 'failed', last_error: error }).where('id', '=', id).execute();

// Data-subject rights. Erasure: personal data leaves the contact and the event evidence, the
// pseudonymous proof stays verifiable, and the addresses go on the suppression list.
import { addressKindFor } from '../../platform/addresses.ts';
import { iso } from '../../platform/clock.ts';
import type { AppContext, RequestContext } from '../../platform/context.ts';
import { listChannels } from '../channels/index.ts';
import { eraseEvidence, listEventsOfContact, updateEventEvidence } from '../consents/index.ts';
import { getContactRow, updateContactRow } from '../contacts/index.ts';
import { eraseMessagesOf } from '../messaging/index.ts';
import { addSuppressions } from '../suppressions/index.ts';
import { emitWebhookEvent } from '../webhooks/index.ts';

export async function eraseContact(ctx: AppContext, req: RequestContext, id: string): Promise<{ erased: boolean }> {
  const channels = await listChannels(ctx);
  return ctx.db.kysely.transaction().execute(async (trx) => {
    const contact = await getContactRow(ctx, id, trx);
    if (contact.erased_at) return { erased: false };
    const at = iso(ctx.clock.now());
    const entries = [];
    for (const channel of channels) {
      const kind = addressKindFor(channel.kind);
      const hash = kind === 'email' ? contact.email_hash : kind === 'phone' ? contact.phone_hash : null;
      if (hash)
        entries.push({ channel: channel.key, hash, reason: 'erased' as const, source: `erasure:${req.actor.name ?? req.actor.type}`, at });
    }
    await addSuppressions(trx, entries);
    for (const event of await listEventsOfContact(trx, id)) {
      await updateEventEvidence(trx, event.id, JSON.stringify(eraseEvidence(ctx.secret, JSON.parse(event.evidence))));
    }
    await eraseMessagesOf(trx, id);
    await updateContactRow(trx, id, {
      email: null,
      email_hash: null,
      phone: null,
      phone_hash: null,
      first_name: null,
      last_name: null,
      locale: null,
      source: null,
      attributes: '{}',
      last_purchase_at: null,
      updated_at: at,
      erased_at: at,
    });
    await emitWebhookEvent(ctx, trx, 'contact.erased', { contactId: id });
    return { erased: true };
  });
}

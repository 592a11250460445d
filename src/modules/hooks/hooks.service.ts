// What provider callbacks change: bounces and complaints suppress an email address, an SMS reply
// STOP withdraws and suppresses, OUI confirms a running campaign, status receipts mark failures.
import { addressKindFor, normalizeEmail, normalizePhone } from '../../platform/addresses.ts';
import { iso, parseInstant } from '../../platform/clock.ts';
import type { AppContext, RequestContext } from '../../platform/context.ts';
import { DomainError, type FieldError } from '../../platform/errors.ts';
import { confirmDelivery } from '../campaigns/index.ts';
import { listChannels } from '../channels/index.ts';
import type { Evidence } from '../collection/index.ts';
import { consentStatesOf, recordConsents } from '../consents/index.ts';
import { addressHash, addSuppressions, type SuppressionReason } from '../suppressions/index.ts';
import {
  findDeliveriesByProviderRefs,
  findDeliveryForReceipt,
  findLiveContactByPhoneHash,
  findLiveContactsByEmailHash,
  latestSentDeliveries,
  markDelivery,
  markDeliveryFailed,
} from './hooks.repository.ts';

export interface EmailEvent {
  type: 'bounce' | 'complaint';
  email: string;
  bounceType?: 'hard' | 'soft' | undefined;
  messageId?: string | undefined;
  occurredAt?: string | undefined;
}

export interface EmailEventsResult {
  /** Every event read. */
  processed: number;
  /** Events that put (or kept) an address on the suppression list: hard bounces, complaints. */
  suppressed: number;
  /** Events that change nothing: soft bounces, addresses that are not addresses. */
  ignored: number;
}

/** A report's time: when it happened, never later than now (a provider clock ahead of ours). */
function reportedAt(ctx: AppContext, value: string | undefined): string {
  const now = ctx.clock.now();
  const at = value === undefined ? undefined : parseInstant(value);
  return iso(at && at.getTime() < now.getTime() ? at : now);
}

async function channelKeysOfKind(ctx: AppContext, kind: 'email' | 'phone', channelKind?: string): Promise<string[]> {
  return (await listChannels(ctx))
    .filter((c) => (channelKind ? c.kind === channelKind : addressKindFor(c.kind) === kind))
    .map((c) => c.key);
}

/** Message-IDs arrive with or without their angle brackets; we store them with. */
const messageIdForms = (id: string) => {
  const bare = id.trim().replace(/^<|>$/g, '');
  return [`<${bare}>`, bare];
};

/**
 * Bounces and complaints reported by the mail provider. A hard bounce suppresses the address
 * (`bounced`); a complaint suppresses it (`complained`) and withdraws every email consent the
 * person holds. The matching campaign delivery is marked. All in one transaction; a repeated
 * report writes nothing new.
 */
export async function recordEmailEvents(ctx: AppContext, req: RequestContext, events: EmailEvent[]): Promise<EmailEventsResult> {
  const errors: FieldError[] = [];
  for (const [i, e] of events.entries()) {
    if (e.type === 'bounce' && !e.bounceType)
      errors.push({ path: `/body/events/${i}/bounceType`, message: 'a bounce is "hard" or "soft"' });
  }
  if (errors.length > 0) throw new DomainError('validation_failed', errors.map((e) => `${e.path} ${e.message}`).join('; '), errors);

  const items: Array<{ reason: SuppressionReason; hash: string; messageId: string | undefined; at: string }> = [];
  let ignored = 0;
  for (const e of events) {
    const email = normalizeEmail(e.email);
    if (!email || (e.type === 'bounce' && e.bounceType === 'soft')) {
      ignored++;
      continue;
    }
    items.push({
      reason: e.type === 'bounce' ? 'bounced' : 'complained',
      hash: addressHash(ctx.secret, email),
      messageId: e.messageId?.trim() || undefined,
      at: reportedAt(ctx, e.occurredAt),
    });
  }
  const result = { processed: events.length, suppressed: items.length, ignored };
  if (items.length === 0) return result;

  // A bounce or a complaint is about the address: every email channel stops using it.
  const channels = await channelKeysOfKind(ctx, 'email');
  const db = ctx.db.kysely;
  const contactOf = new Map(
    (await findLiveContactsByEmailHash(db, [...new Set(items.map((i) => i.hash))])).map((c) => [c.email_hash, c.id]),
  );
  const byRef = new Map<string, number>();
  for (const d of await findDeliveriesByProviderRefs(db, [
    ...new Set(items.flatMap((i) => (i.messageId ? messageIdForms(i.messageId) : []))),
  ])) {
    if (d.provider_ref) byRef.set(d.provider_ref, Number(d.id));
  }
  const unreferenced = items.flatMap((i) => (!i.messageId && contactOf.has(i.hash) ? [contactOf.get(i.hash) as string] : []));
  const latest = await latestSentDeliveries(db, [...new Set(unreferenced)], 'email');
  const deliveryOf = (i: (typeof items)[number]) => {
    if (i.messageId)
      return messageIdForms(i.messageId)
        .map((form) => byRef.get(form))
        .find((id) => id !== undefined);
    const contactId = contactOf.get(i.hash);
    return contactId ? latest.get(contactId) : undefined;
  };

  const afterCommit: Array<() => void> = [];
  await db.transaction().execute(async (trx) => {
    afterCommit.length = 0;
    await addSuppressions(
      trx,
      items.flatMap((i) =>
        channels.map((channel) => ({
          channel,
          hash: i.hash,
          reason: i.reason,
          source: i.reason === 'bounced' ? 'provider: hard bounce' : 'provider: complaint',
          at: i.at,
        })),
      ),
    );
    const complainedAt = new Map<string, string>();
    for (const i of items) {
      const delivery = deliveryOf(i);
      if (delivery !== undefined) await markDelivery(trx, delivery, i.reason === 'bounced' ? 'bounced_at' : 'unsubscribed_at', i.at);
      const contactId = contactOf.get(i.hash);
      if (i.reason === 'complained' && contactId && !complainedAt.has(contactId)) complainedAt.set(contactId, i.at);
    }
    // A complaint says "stop": every email consent still granted or pending is withdrawn.
    for (const [contactId, at] of complainedAt) {
      const states = (await consentStatesOf(trx, contactId)).filter(
        (s) => channels.includes(s.channel_key) && (s.status === 'granted' || s.status === 'pending'),
      );
      if (states.length === 0) continue;
      await recordConsents(
        ctx,
        req,
        states.map((s) => ({
          contactId,
          purpose: s.purpose_key,
          channel: s.channel_key,
          action: 'withdraw' as const,
          source: { type: 'system', ref: 'complaint' },
          evidence: { method: 'spam complaint (mail provider feedback loop)' },
          occurredAt: at,
        })),
        { internal: true, onlyChanges: true, within: { trx, afterCommit } },
      );
    }
  });
  for (const then of afterCommit) then();
  return result;
}

const STOP_WORDS = new Set([
  'STOP',
  'ARRET',
  'ARRETER',
  'ARRETEZ',
  'NON',
  'NONMERCI',
  'NO',
  'UNSUBSCRIBE',
  'DESABONNER',
  'DESABONNEMENT',
  'DESINSCRIRE',
  'DESINSCRIPTION',
  'END',
  'CANCEL',
  'QUIT',
  'OPTOUT',
]);
const YES_WORDS = new Set(['OUI', 'YES']);

/** A reply as one word: accents, case, spaces and punctuation dropped (" arrêt " → "ARRET"). */
export function replyWord(text: string): string {
  return text
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toUpperCase()
    .replace(/[^A-Z0-9]/g, '');
}

/**
 * What a reply asks. Anything starting with STOP or ARRET stops ("STOP SMS", "Stop au 36180"):
 * when in doubt, an opt-out is honoured (RULES 24). Only a plain OUI / YES confirms.
 */
export function replyIntent(word: string): 'stop' | 'yes' | 'other' {
  if (STOP_WORDS.has(word) || word.startsWith('STOP') || word.startsWith('ARRET')) return 'stop';
  if (YES_WORDS.has(word)) return 'yes';
  return 'other';
}

export interface InboundSms {
  from: string;
  to: string;
  text: string;
  receivedAt?: string | undefined;
  id?: string | undefined;
}

export type InboundAction = 'withdrawn' | 'confirmed' | 'ignored';

/** The sender's number in E.164; providers often drop the "+" of international numbers. */
function senderNumber(ctx: AppContext, from: string): string | undefined {
  const raw = from.trim();
  return (
    normalizePhone(raw, ctx.config.defaultRegion) ??
    (/^\d{8,15}$/.test(raw) ? normalizePhone(`+${raw}`, ctx.config.defaultRegion) : undefined)
  );
}

/**
 * An SMS someone sent us. STOP (and its variants) withdraws every SMS consent of that number and
 * suppresses it, known contact or not; OUI confirms the latest running SMS campaign sent to it.
 */
export async function receiveSms(ctx: AppContext, req: RequestContext, sms: InboundSms): Promise<InboundAction> {
  const word = replyWord(sms.text);
  const intent = replyIntent(word);
  if (intent === 'other') return 'ignored';
  const phone = senderNumber(ctx, sms.from);
  if (!phone) return 'ignored';
  const hash = addressHash(ctx.secret, phone);
  const contact = await findLiveContactByPhoneHash(ctx.db.kysely, hash);
  const evidence: Evidence = { method: 'SMS reply', text: word };

  if (intent === 'yes') {
    if (!contact) return 'ignored';
    const delivery = (await latestSentDeliveries(ctx.db.kysely, [contact.id], 'sms', { runningOnly: true })).get(contact.id);
    if (delivery === undefined) return 'ignored';
    const outcome = await confirmDelivery(ctx, req, delivery, { source: 'sms_reply', evidence });
    return outcome === 'confirmed' ? 'confirmed' : 'ignored';
  }

  const channels = await channelKeysOfKind(ctx, 'phone', 'sms');
  const at = reportedAt(ctx, sms.receivedAt);
  const states = contact
    ? (await consentStatesOf(ctx.db.kysely, contact.id)).filter(
        (s) => channels.includes(s.channel_key) && (s.status === 'granted' || s.status === 'pending'),
      )
    : [];
  const delivery = contact ? (await latestSentDeliveries(ctx.db.kysely, [contact.id], 'sms')).get(contact.id) : undefined;
  await recordConsents(
    ctx,
    req,
    states.map((s) => ({
      contactId: contact?.id as string,
      purpose: s.purpose_key,
      channel: s.channel_key,
      action: 'withdraw' as const,
      source: { type: 'sms_reply', ref: sms.id ?? 'inbound' },
      evidence,
      occurredAt: at,
    })),
    {
      onlyChanges: true,
      inTransaction: async (trx) => {
        await addSuppressions(
          trx,
          channels.map((channel) => ({ channel, hash, reason: 'unsubscribed' as const, source: 'SMS reply', at })),
        );
        if (delivery !== undefined) await markDelivery(trx, delivery, 'unsubscribed_at', at);
      },
    },
  );
  return 'withdrawn';
}

export interface SmsStatus {
  id: string;
  reference?: string | undefined;
  status: 'delivered' | 'failed' | 'undelivered';
  error?: string | undefined;
}

/** A delivery receipt: a failure marks the delivery failed; "delivered" keeps it sent. */
export async function recordSmsStatus(ctx: AppContext, receipt: SmsStatus): Promise<{ matched: boolean }> {
  const reference = receipt.reference && /^\d{1,15}$/.test(receipt.reference) ? Number(receipt.reference) : undefined;
  const delivery = await findDeliveryForReceipt(ctx.db.kysely, receipt.id, reference);
  if (!delivery) return { matched: false };
  if (receipt.status !== 'delivered') {
    await markDeliveryFailed(ctx.db.kysely, Number(delivery.id), (receipt.error || receipt.status).slice(0, 500));
  }
  return { matched: true };
}

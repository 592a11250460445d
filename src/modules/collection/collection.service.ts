// What people do through links: confirm (double opt-in), unsubscribe, manage preferences; and the
// double opt-in mail queued in the same transaction as the pending grant.
import type { Executor } from '../../database.ts';
import { addressKindFor, normalizeEmail } from '../../platform/addresses.ts';
import { iso } from '../../platform/clock.ts';
import type { AppContext, ConsentEventsHook, RequestContext } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { expiresIn, signToken, type TokenClaims } from '../../platform/tokens.ts';
import { markUnsubscribed } from '../campaigns/campaigns.confirm.ts';
import { type Channel, listChannels } from '../channels/index.ts';
import { type ConsentInput, consentStatesOf, decide, recordConsents } from '../consents/index.ts';
import { type ContactsTable, findContactRow } from '../contacts/index.ts';
import { enqueueEmail, getTemplate, kickDispatch, lastMessageAt } from '../messaging/index.ts';
import { listPurposes, localized, type Purpose } from '../purposes/index.ts';
import { addressHash, addSuppressions } from '../suppressions/index.ts';

const PREFERENCES_DAYS = 30;
const UNSUBSCRIBE_DAYS = 400;
const RESEND_AFTER_MS = 10 * 60_000;

/** What a page request tells about how the person acted (it becomes the event's evidence). */
export type Evidence = NonNullable<ConsentInput['evidence']>;

export function linkFor(ctx: AppContext, path: 'c' | 'u' | 'p', claims: Omit<TokenClaims, 'jti' | 'exp'> & { days: number }): string {
  const { days, ...rest } = claims;
  return `${ctx.config.publicUrl}/${path}/${signToken(ctx.secret, { ...rest, exp: expiresIn(ctx.clock.now(), days) })}`;
}

export const preferencesLink = (ctx: AppContext, contactId: string) =>
  linkFor(ctx, 'p', { kind: 'preferences', contactId, days: PREFERENCES_DAYS });

export const unsubscribeLink = (
  ctx: AppContext,
  contactId: string,
  purpose: string | undefined,
  channel: string,
  options: { all?: boolean; ref?: string } = {},
) =>
  linkFor(ctx, 'u', {
    kind: 'unsubscribe',
    contactId,
    channel,
    ...(purpose ? { purpose } : {}),
    ...(options.all ? { all: true } : {}),
    ...(options.ref ? { ref: options.ref } : {}),
    days: UNSUBSCRIBE_DAYS,
  });

/**
 * After a grant left an email consent pending (double opt-in), queue the confirmation mail in the
 * same transaction: one mail per contact, at most one every ten minutes.
 */
export function doubleOptInHook(ctx: AppContext): ConsentEventsHook {
  return async (trx, events) => {
    const pending = events.filter((e) => e.action === 'granted' && e.status === 'pending' && e.sourceType !== 'import');
    if (pending.length === 0) return undefined;
    const channels = new Map((await listChannels(ctx)).map((c) => [c.key, c]));
    const purposes = new Map((await listPurposes(ctx)).map((p) => [p.key, p]));
    const byContact = new Map<string, string[]>();
    for (const e of pending) {
      if (channels.get(e.channel)?.kind !== 'email') continue;
      byContact.set(e.contactId, [...(byContact.get(e.contactId) ?? []), e.purpose]);
    }
    for (const [contactId, purposeKeys] of byContact) {
      const contact = await findContactRow(trx, contactId);
      if (!contact?.email) continue;
      const last = await lastMessageAt(trx, contactId, 'double_opt_in');
      if (last && ctx.clock.now().getTime() - new Date(last).getTime() < RESEND_AFTER_MS) continue;
      const lang = contact.locale ?? 'fr';
      const titles = purposeKeys.map((k) => localized(purposes.get(k)?.title ?? {}, lang));
      await enqueueEmail(ctx, trx, {
        contactId,
        to: contact.email,
        kind: 'double_opt_in',
        templateKey: 'double-opt-in',
        locale: contact.locale,
        vars: {
          contact: { firstName: contact.first_name, lastName: contact.last_name, email: contact.email },
          purpose: { title: titles.join(', ') },
          links: {
            confirm: linkFor(ctx, 'c', {
              kind: 'confirm',
              contactId,
              channel: 'email',
              ref: 'doi',
              days: ctx.config.doubleOptInExpiryDays,
            }),
            preferences: preferencesLink(ctx, contactId),
          },
        },
      });
    }
    return () => kickDispatch(ctx);
  };
}

export function registerCollection(ctx: AppContext): void {
  ctx.consentHooks.push(doubleOptInHook(ctx));
}

export interface PendingItem {
  purpose: string;
  channel: string;
  title: string;
  infoUrl: string | null;
}

/** The pending double opt-in consents a confirm link would confirm. */
export async function pendingConfirmations(
  ctx: AppContext,
  claims: TokenClaims,
  lang: string,
): Promise<{ contact: ContactsTable | undefined; items: PendingItem[] }> {
  const contact = await findContactRow(ctx.db.kysely, claims.contactId);
  if (!contact || contact.erased_at) return { contact: undefined, items: [] };
  const purposes = new Map((await listPurposes(ctx)).map((p) => [p.key, p]));
  const channels = new Map((await listChannels(ctx)).map((c) => [c.key, c]));
  const states = await consentStatesOf(ctx.db.kysely, claims.contactId);
  const items = states
    .filter((s) => s.status === 'pending' && channels.get(s.channel_key)?.kind === 'email')
    .filter((s) => !claims.purpose || s.purpose_key === claims.purpose)
    .map((s) => {
      const purpose = purposes.get(s.purpose_key) as Purpose;
      return { purpose: s.purpose_key, channel: s.channel_key, title: localized(purpose.title, lang), infoUrl: purpose.infoUrl };
    });
  return { contact, items };
}

export type ConfirmOutcome = 'confirmed' | 'nothing' | 'used';

/** POST of a double opt-in link: records `confirmed` for each pending email consent, once. */
export async function confirmDoubleOptIn(
  ctx: AppContext,
  req: RequestContext,
  claims: TokenClaims,
  evidence: Evidence,
): Promise<ConfirmOutcome> {
  const used = await ctx.db.kysely.selectFrom('used_tokens').select('jti').where('jti', '=', claims.jti).executeTakeFirst();
  if (used) return 'used';
  const { items } = await pendingConfirmations(ctx, claims, evidence.locale ?? 'fr');
  if (items.length === 0) return 'nothing';
  try {
    await recordConsents(
      ctx,
      req,
      items.map((item) => ({
        contactId: claims.contactId,
        purpose: item.purpose,
        channel: item.channel,
        action: 'confirm' as const,
        source: { type: 'double_opt_in', ref: claims.ref ?? 'doi' },
        evidence: { ...evidence, method: 'double-opt-in link' },
      })),
      { inTransaction: (trx) => spendToken(ctx, trx, claims.jti) },
    );
  } catch (error) {
    if ((error as { code?: string }).code === 'nothing_to_confirm') return 'nothing';
    if (await ctx.db.kysely.selectFrom('used_tokens').select('jti').where('jti', '=', claims.jti).executeTakeFirst()) return 'used';
    throw error;
  }
  return 'confirmed';
}

async function spendToken(ctx: AppContext, trx: Executor, jti: string): Promise<void> {
  await trx
    .insertInto('used_tokens')
    .values({ jti, used_at: iso(ctx.clock.now()) })
    .execute();
}

export interface UnsubscribeView {
  contact: ContactsTable | undefined;
  items: string[];
}

export async function unsubscribeView(ctx: AppContext, claims: TokenClaims, lang: string): Promise<UnsubscribeView> {
  const contact = await findContactRow(ctx.db.kysely, claims.contactId);
  if (!contact || contact.erased_at) return { contact: undefined, items: [] };
  const channels = new Map((await listChannels(ctx)).map((c) => [c.key, c]));
  const channelName = localized(channels.get(claims.channel ?? '')?.names ?? {}, lang) || (claims.channel ?? '');
  if (claims.all || !claims.purpose) return { contact, items: [channelName] };
  const purpose = (await listPurposes(ctx)).find((p) => p.key === claims.purpose);
  return { contact, items: [`${localized(purpose?.title ?? {}, lang) || claims.purpose} (${channelName})`] };
}

/**
 * Records the withdrawal a link names (and, for "all", suppresses the address on the channel).
 * Twice is the same as once: nothing new is written when it is already done.
 */
export async function unsubscribe(ctx: AppContext, req: RequestContext, claims: TokenClaims, evidence: Evidence): Promise<boolean> {
  const contact = await findContactRow(ctx.db.kysely, claims.contactId);
  if (!contact || contact.erased_at || !claims.channel) return false;
  const channel = (await listChannels(ctx)).find((c) => c.key === claims.channel);
  if (!channel) return false;
  const states = await consentStatesOf(ctx.db.kysely, contact.id);
  const targets = states.filter(
    (s) =>
      s.channel_key === channel.key &&
      (claims.all || !claims.purpose || s.purpose_key === claims.purpose) &&
      (s.status === 'granted' || s.status === 'pending'),
  );
  // A purpose-bound link withdraws that purpose even when nothing was recorded yet (legitimate interest).
  const purposes =
    claims.purpose && !claims.all && !states.some((s) => s.purpose_key === claims.purpose && s.channel_key === channel.key)
      ? [claims.purpose]
      : targets.map((s) => s.purpose_key);
  const hash = addressHashFor(ctx, contact, channel);
  // Two POSTs at once (the mail provider's one-click and the person's click) withdraw once:
  // onlyChanges judges "already withdrawn" under the chain lock.
  await recordConsents(
    ctx,
    req,
    purposes.map((purpose) => ({
      contactId: contact.id,
      purpose,
      channel: channel.key,
      action: 'withdraw' as const,
      source: { type: 'unsubscribe', ref: claims.ref ?? (claims.all ? 'link:all' : 'link') },
      evidence: { ...evidence, method: evidence.method ?? 'unsubscribe link' },
    })),
    {
      onlyChanges: true,
      inTransaction: async (trx) => {
        await markUnsubscribed(trx, claims.ref, iso(ctx.clock.now()));
        if (claims.all && hash) {
          await addSuppressions(trx, [
            { channel: channel.key, hash, reason: 'unsubscribed', source: 'unsubscribe link', at: iso(ctx.clock.now()) },
          ]);
        }
      },
    },
  );
  return true;
}

function addressHashFor(ctx: AppContext, contact: ContactsTable, channel: Channel): string | null {
  const kind = addressKindFor(channel.kind);
  if (kind === 'email') return contact.email_hash ?? (contact.email ? addressHash(ctx.secret, contact.email) : null);
  if (kind === 'phone') return contact.phone_hash ?? (contact.phone ? addressHash(ctx.secret, contact.phone) : null);
  return null;
}

export interface PreferenceItem {
  purpose: string;
  channel: string;
  title: string;
  description: string;
  infoUrl: string | null;
  channelName: string;
  status: string;
  checked: boolean;
}

/** Every purpose × channel that applies to the contact (it has an address there), with its state. */
export async function preferenceItems(ctx: AppContext, contact: ContactsTable, lang: string): Promise<PreferenceItem[]> {
  const channels = new Map((await listChannels(ctx)).map((c) => [c.key, c]));
  const states = new Map((await consentStatesOf(ctx.db.kysely, contact.id)).map((s) => [`${s.purpose_key}:${s.channel_key}`, s]));
  const items: PreferenceItem[] = [];
  for (const purpose of await listPurposes(ctx)) {
    for (const key of purpose.channels) {
      const channel = channels.get(key);
      if (!channel) continue;
      const kind = addressKindFor(channel.kind);
      if ((kind === 'email' && !contact.email) || (kind === 'phone' && !contact.phone)) continue;
      const status = states.get(`${purpose.key}:${key}`)?.status ?? 'none';
      items.push({
        purpose: purpose.key,
        channel: key,
        title: localized(purpose.title, lang),
        description: localized(purpose.description, lang),
        infoUrl: purpose.infoUrl,
        channelName: localized(channel.names, lang) || key,
        status,
        checked: status === 'granted' || status === 'pending',
      });
    }
  }
  return items;
}

/** Saves the ticked boxes: new ticks are grants, removed ticks withdrawals; "withdraw all" withdraws every one. */
export async function savePreferences(
  ctx: AppContext,
  req: RequestContext,
  contact: ContactsTable,
  ticked: Set<string>,
  withdrawAll: boolean,
  evidence: Evidence,
): Promise<number> {
  const items = await preferenceItems(ctx, contact, evidence.locale ?? 'fr');
  const changes = [];
  for (const item of items) {
    const want = !withdrawAll && ticked.has(`${item.purpose}:${item.channel}`);
    if (want && !item.checked) changes.push({ ...item, action: 'grant' as const });
    if (!want && item.checked) changes.push({ ...item, action: 'withdraw' as const });
  }
  if (changes.length === 0) return 0;
  const result = await recordConsents(
    ctx,
    req,
    changes.map((c) => ({
      contactId: contact.id,
      purpose: c.purpose,
      channel: c.channel,
      action: c.action,
      source: { type: 'preference_centre', ref: withdrawAll ? 'withdraw-all' : 'save' },
      evidence: { ...evidence, method: 'preference centre' },
    })),
    { onlyChanges: true },
  );
  return result.length;
}

/** GET /p: mail a preferences link if the address is known; the caller answers the same either way. */
export async function requestPreferencesLink(ctx: AppContext, rawEmail: string): Promise<'invalid' | 'done'> {
  const email = normalizeEmail(rawEmail);
  if (!email) return 'invalid';
  const contact = await ctx.db.kysely.selectFrom('contacts').selectAll().where('email', '=', email).executeTakeFirst();
  if (!contact || contact.erased_at) return 'done';
  const last = await lastMessageAt(ctx.db.kysely, contact.id, 'preference_link');
  if (last && ctx.clock.now().getTime() - new Date(last).getTime() < RESEND_AFTER_MS) return 'done';
  await enqueueEmail(ctx, ctx.db.kysely, {
    contactId: contact.id,
    to: email,
    kind: 'preference_link',
    templateKey: 'preference-link',
    locale: contact.locale,
    vars: {
      contact: { firstName: contact.first_name, lastName: contact.last_name, email },
      links: { preferences: preferencesLink(ctx, contact.id) },
    },
  });
  kickDispatch(ctx);
  return 'done';
}

export interface SendEmailInput {
  contactId: string;
  template: string;
  purpose?: string;
  vars?: Record<string, unknown>;
}

/**
 * Sends one email to one contact. A marketing template needs a purpose, and the decision must
 * allow it (asked now, and again just before the send); it carries the one-click unsubscribe.
 */
export async function sendEmail(ctx: AppContext, input: SendEmailInput): Promise<{ id: string; status: string }> {
  const template = await getTemplate(ctx, input.template);
  if (template.channel !== 'email')
    throw new DomainError('validation_failed', `Template "${template.key}" is not an email template`, [
      { path: '/template', message: 'not an email template' },
    ]);
  const contact = await findContactRow(ctx.db.kysely, input.contactId);
  if (!contact) throw new DomainError('contact_not_found', `There is no contact "${input.contactId}"`);
  if (contact.erased_at) throw new DomainError('contact_erased');
  if (!contact.email) throw new DomainError('no_address_for_channel', 'This contact has no email address');
  const marketing = template.category === 'marketing';
  if (marketing && !input.purpose)
    throw new DomainError('purpose_required', 'Name the purpose this marketing message serves', [
      { path: '/purpose', message: 'required for a marketing template' },
    ]);
  if (input.purpose) {
    const decision = await decide(ctx, { contactId: contact.id, purpose: input.purpose, channel: 'email' }, '');
    if (marketing && !decision.allowed) {
      throw new DomainError('contact_not_allowed', `Not sent: ${decision.reason}`, [{ path: '/contactId', message: decision.reason }]);
    }
  }
  const unsubscribeUrl = input.purpose ? unsubscribeLink(ctx, contact.id, input.purpose, 'email') : undefined;
  const id = await enqueueEmail(ctx, ctx.db.kysely, {
    contactId: contact.id,
    to: contact.email,
    kind: marketing ? 'marketing' : 'transactional',
    templateKey: template.key,
    locale: contact.locale,
    vars: {
      ...(input.vars ?? {}),
      contact: { firstName: contact.first_name, lastName: contact.last_name, email: contact.email },
      links: {
        unsubscribe: unsubscribeUrl ?? unsubscribeLink(ctx, contact.id, undefined, 'email', { all: true }),
        preferences: preferencesLink(ctx, contact.id),
      },
    },
    ...(marketing && unsubscribeUrl ? { unsubscribeUrl, purpose: input.purpose as string } : {}),
  });
  kickDispatch(ctx);
  return { id, status: 'queued' };
}

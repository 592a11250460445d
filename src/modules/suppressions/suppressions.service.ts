import type { Executor } from '../../database.ts';
import { addressKindFor, normalizeEmail, normalizePhone } from '../../platform/addresses.ts';
import { iso } from '../../platform/clock.ts';
import type { AppContext } from '../../platform/context.ts';
import { hmacHex } from '../../platform/crypto.ts';
import { DomainError } from '../../platform/errors.ts';
import { requireChannel } from '../channels/index.ts';
import { deleteSuppressionRows, findSuppressionRows, insertSuppressionRows } from './suppressions.repository.ts';

export const suppressionReasons = ['unsubscribed', 'objected', 'bounced', 'complained', 'erased'] as const;
export type SuppressionReason = (typeof suppressionReasons)[number];

/** Reasons that the person's own later, explicit grant lifts (a form, the preference centre, a confirm link). */
export const liftableReasons: SuppressionReason[] = ['unsubscribed', 'erased'];

/** Keyed hash of a normalised address: all the suppression list keeps (RULES 15). */
export const addressHash = (secret: string, normalizedAddress: string): string => hmacHex(secret, `address:${normalizedAddress}`);

export interface Suppression {
  channel: string;
  reason: SuppressionReason;
  source: string | null;
  createdAt: string;
}

export async function addSuppressions(
  db: Executor,
  entries: Array<{ channel: string; hash: string; reason: SuppressionReason; source?: string | null; at: string }>,
): Promise<void> {
  await insertSuppressionRows(
    db,
    entries.map((e) => ({
      channel_key: e.channel,
      address_hash: e.hash,
      reason: e.reason,
      source: e.source ?? null,
      created_at: e.at,
    })),
  );
}

export const liftSuppressions = (db: Executor, channel: string, hash: string) => deleteSuppressionRows(db, channel, hash, liftableReasons);

async function hashFor(
  ctx: AppContext,
  channelKey: string,
  address: { email?: string | undefined; phone?: string | undefined },
): Promise<string> {
  const channel = await requireChannel(ctx, channelKey);
  const kind = addressKindFor(channel.kind);
  if (kind === 'email') {
    const email = address.email === undefined ? undefined : normalizeEmail(address.email);
    if (!email)
      throw new DomainError('invalid_email', 'This channel needs a valid "email"', [
        { path: '/email', message: 'a valid email address is required' },
      ]);
    return addressHash(ctx.secret, email);
  }
  if (kind === 'phone') {
    const phone = address.phone === undefined ? undefined : normalizePhone(address.phone, ctx.config.defaultRegion);
    if (!phone)
      throw new DomainError('invalid_phone', 'This channel needs a valid "phone"', [
        { path: '/phone', message: 'a valid phone number is required' },
      ]);
    return addressHash(ctx.secret, phone);
  }
  throw new DomainError('no_address_for_channel', `Channel "${channelKey}" has no address to suppress`);
}

export async function suppressAddress(
  ctx: AppContext,
  input: { channel: string; email?: string; phone?: string; reason: SuppressionReason; source?: string },
): Promise<Suppression> {
  const hash = await hashFor(ctx, input.channel, input);
  const at = iso(ctx.clock.now());
  await addSuppressions(ctx.db.kysely, [{ channel: input.channel, hash, reason: input.reason, source: input.source ?? 'api', at }]);
  return { channel: input.channel, reason: input.reason, source: input.source ?? 'api', createdAt: at };
}

export async function checkSuppression(
  ctx: AppContext,
  input: { channel: string; email?: string; phone?: string },
): Promise<{ suppressed: boolean; reasons: SuppressionReason[] }> {
  const hash = await hashFor(ctx, input.channel, input);
  const rows = await findSuppressionRows(ctx.db.kysely, input.channel, hash);
  return { suppressed: rows.length > 0, reasons: rows.map((r) => r.reason as SuppressionReason) };
}

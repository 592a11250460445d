import { iso } from '../../platform/clock.ts';
import { type AppContext, cached, invalidate, peekCached } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { findChannelRow, insertChannelRow, listChannelsQuery, updateChannelRow } from './channels.repository.ts';
import type { ChannelsTable } from './channels.table.ts';

export const channelKinds = ['email', 'sms', 'phone', 'postal', 'web', 'other'] as const;
export type ChannelKind = (typeof channelKinds)[number];

export interface Channel {
  key: string;
  kind: ChannelKind;
  names: { fr?: string; en?: string };
  builtin: boolean;
}

const toChannel = (row: ChannelsTable): Channel => ({
  key: row.key,
  kind: row.kind as ChannelKind,
  names: JSON.parse(row.names),
  builtin: row.builtin === 1,
});

export const builtinChannels: Array<Omit<Channel, 'builtin'>> = [
  { key: 'email', kind: 'email', names: { fr: 'Email', en: 'Email' } },
  { key: 'sms', kind: 'sms', names: { fr: 'SMS', en: 'Text message' } },
  { key: 'phone', kind: 'phone', names: { fr: 'Téléphone', en: 'Phone call' } },
  { key: 'web', kind: 'web', names: { fr: 'Web', en: 'Web' } },
];

export async function ensureBuiltinChannels(ctx: AppContext): Promise<void> {
  const now = iso(ctx.clock.now());
  for (const c of builtinChannels) {
    await insertChannelRow(ctx.db.kysely, {
      key: c.key,
      kind: c.kind,
      names: JSON.stringify(c.names),
      builtin: 1,
      created_at: now,
      updated_at: now,
    });
  }
}

const CHANNELS_CACHE = 'channels';

export const listChannels = (ctx: AppContext): Promise<Channel[]> =>
  cached(ctx, CHANNELS_CACHE, async () => (await ctx.db.read(listChannelsQuery(ctx.db.kysely))).map(toChannel));

/** The list listChannels() would answer at once, when it is cached and fresh: no promise (the decision hot path). */
export const peekChannels = (ctx: AppContext): Channel[] | undefined => peekCached<Channel[]>(ctx, CHANNELS_CACHE);

export async function getChannel(ctx: AppContext, key: string): Promise<Channel | undefined> {
  return (await listChannels(ctx)).find((c) => c.key === key);
}

export async function requireChannel(ctx: AppContext, key: string): Promise<Channel> {
  const channel = await getChannel(ctx, key);
  if (!channel) throw new DomainError('unknown_channel', `There is no channel "${key}"`);
  return channel;
}

export async function createChannel(ctx: AppContext, input: { key: string; kind: ChannelKind; names: Channel['names'] }): Promise<Channel> {
  const now = iso(ctx.clock.now());
  const result = await insertChannelRow(ctx.db.kysely, {
    key: input.key,
    kind: input.kind,
    names: JSON.stringify(input.names),
    builtin: 0,
    created_at: now,
    updated_at: now,
  });
  if (Number(result.numInsertedOrUpdatedRows ?? 0) === 0) {
    throw new DomainError('key_exists', `A channel "${input.key}" exists already`);
  }
  invalidate(ctx, 'channels');
  return { ...input, builtin: false };
}

export async function updateChannel(
  ctx: AppContext,
  key: string,
  patch: { kind?: ChannelKind; names?: Channel['names'] },
): Promise<Channel> {
  const row = await findChannelRow(ctx.db.kysely, key);
  if (!row) throw new DomainError('not_found', `There is no channel "${key}"`);
  if (row.builtin === 1 && patch.kind !== undefined && patch.kind !== row.kind) {
    throw new DomainError('builtin_locked', `The kind of the built-in channel "${key}" cannot change`);
  }
  const names = patch.names ? { ...JSON.parse(row.names), ...patch.names } : JSON.parse(row.names);
  await updateChannelRow(ctx.db.kysely, key, {
    kind: patch.kind ?? row.kind,
    names: JSON.stringify(names),
    updated_at: iso(ctx.clock.now()),
  });
  invalidate(ctx, 'channels');
  return toChannel({ ...row, kind: patch.kind ?? row.kind, names: JSON.stringify(names) });
}

import { iso } from '../../platform/clock.ts';
import { type AppContext, cached, invalidate, peekCached } from '../../platform/context.ts';
import { canonicalJson, sha256Hex } from '../../platform/crypto.ts';
import { DomainError } from '../../platform/errors.ts';
import { getChannel } from '../channels/index.ts';
import {
  findPurposeRow,
  findPurposeVersionRows,
  hasWithdrawals,
  insertPurposeRow,
  insertPurposeVersionRow,
  listPurposesQuery,
  listPurposeVersionRows,
  type PurposeRow,
  updatePurposeRow,
} from './purposes.repository.ts';
import type { PurposeVersionsTable } from './purposes.table.ts';

export const legalBases = ['consent', 'legitimate_interest', 'contract', 'legal_obligation'] as const;
export type LegalBasis = (typeof legalBases)[number];

export interface Localized {
  fr?: string;
  en?: string;
}

export interface Purpose {
  key: string;
  version: number;
  title: Localized;
  description: Localized;
  infoUrl: string | null;
  channels: string[];
  legalBasis: LegalBasis;
  doubleOptIn: boolean;
  expiry: { afterDays: number | null };
  partner: { name: string; url?: string } | null;
  retentionDays: number | null;
  recipients: string[];
  builtin: boolean;
  wordingHash: string;
}

export interface PurposeVersion {
  purpose: string;
  version: number;
  title: Localized;
  description: Localized;
  infoUrl: string | null;
  wordingHash: string;
  createdAt: string;
}

export interface PurposeInput {
  key: string;
  title: Localized;
  description?: Localized;
  infoUrl?: string | null;
  channels: string[];
  legalBasis?: LegalBasis;
  doubleOptIn?: boolean;
  expiry?: { afterDays?: number | null };
  partner?: { name: string; url?: string } | null;
  retentionDays?: number | null;
  recipients?: string[];
}

export type PurposePatch = Partial<Omit<PurposeInput, 'key'>>;

const wordingHash = (title: Localized, description: Localized, infoUrl: string | null) =>
  sha256Hex(canonicalJson({ title, description, infoUrl }));

const toPurpose = (row: PurposeRow): Purpose => ({
  key: row.key,
  version: row.version,
  title: JSON.parse(row.title),
  description: JSON.parse(row.description),
  infoUrl: row.info_url,
  channels: JSON.parse(row.channels),
  legalBasis: row.legal_basis as LegalBasis,
  doubleOptIn: row.double_opt_in === 1,
  expiry: { afterDays: row.expiry_after_days },
  partner: row.partner ? JSON.parse(row.partner) : null,
  retentionDays: row.retention_days,
  recipients: JSON.parse(row.recipients),
  builtin: row.builtin === 1,
  wordingHash: row.wording_hash,
});

const toVersion = (row: PurposeVersionsTable): PurposeVersion => ({
  purpose: row.purpose_key,
  version: row.version,
  title: JSON.parse(row.title),
  description: JSON.parse(row.description),
  infoUrl: row.info_url,
  wordingHash: row.wording_hash,
  createdAt: row.created_at,
});

export const builtinPurposes: PurposeInput[] = [
  {
    key: 'commercial-email',
    title: { fr: 'Informations commerciales par email', en: 'Commercial information by email' },
    description: {
      fr: 'Recevoir nos offres et nouveautés par email.',
      en: 'Receive our offers and news by email.',
    },
    channels: ['email'],
    legalBasis: 'consent',
  },
  {
    key: 'commercial-sms',
    title: { fr: 'Informations commerciales par SMS', en: 'Commercial information by text message' },
    description: {
      fr: 'Recevoir nos offres et nouveautés par SMS.',
      en: 'Receive our offers and news by text message.',
    },
    channels: ['sms'],
    legalBasis: 'consent',
  },
  {
    key: 'commercial-phone',
    title: { fr: 'Informations commerciales par téléphone', en: 'Commercial information by phone' },
    description: {
      fr: 'Être appelé pour nos offres et nouveautés.',
      en: 'Be called about our offers and news.',
    },
    channels: ['phone'],
    legalBasis: 'legitimate_interest',
  },
];

const PURPOSES_CACHE = 'purposes';

export const listPurposes = (ctx: AppContext): Promise<Purpose[]> =>
  cached(ctx, PURPOSES_CACHE, async () => (await ctx.db.read(listPurposesQuery(ctx.db.kysely))).map(toPurpose));

/** The list listPurposes() would answer at once, when it is cached and fresh: no promise (the decision hot path). */
export const peekPurposes = (ctx: AppContext): Purpose[] | undefined => peekCached<Purpose[]>(ctx, PURPOSES_CACHE);

export async function getPurpose(ctx: AppContext, key: string): Promise<Purpose | undefined> {
  return (await listPurposes(ctx)).find((p) => p.key === key);
}

export async function requirePurpose(ctx: AppContext, key: string): Promise<Purpose> {
  const purpose = await getPurpose(ctx, key);
  if (!purpose) throw new DomainError('unknown_purpose', `There is no purpose "${key}"`);
  return purpose;
}

async function checkChannels(ctx: AppContext, channels: string[], doubleOptIn: boolean): Promise<void> {
  const fields = [];
  for (const [i, key] of channels.entries()) {
    if (!(await getChannel(ctx, key))) fields.push({ path: `/channels/${i}`, message: `unknown channel "${key}"` });
  }
  if (fields.length > 0) throw new DomainError('unknown_channel', 'The purpose names channels that do not exist', fields);
  if (doubleOptIn && !channels.includes('email')) {
    throw new DomainError(
      'double_opt_in_requires_email',
      'Double opt-in confirms an email address: add the "email" channel or turn doubleOptIn off',
      [{ path: '/doubleOptIn', message: 'needs "email" among the channels' }],
    );
  }
}

async function insertPurpose(ctx: AppContext, input: PurposeInput, builtin: boolean): Promise<boolean> {
  const now = iso(ctx.clock.now());
  const description = input.description ?? {};
  const infoUrl = input.infoUrl ?? null;
  return ctx.db.kysely.transaction().execute(async (trx) => {
    const result = await insertPurposeRow(trx, {
      key: input.key,
      version: 1,
      legal_basis: input.legalBasis ?? 'consent',
      channels: JSON.stringify(input.channels),
      double_opt_in: input.doubleOptIn ? 1 : 0,
      expiry_after_days: input.expiry?.afterDays ?? null,
      info_url: infoUrl,
      partner: input.partner ? JSON.stringify(input.partner) : null,
      retention_days: input.retentionDays ?? null,
      recipients: JSON.stringify(input.recipients ?? []),
      builtin: builtin ? 1 : 0,
      created_at: now,
      updated_at: now,
    });
    if (Number(result.numInsertedOrUpdatedRows ?? 0) === 0) return false;
    await insertPurposeVersionRow(trx, {
      purpose_key: input.key,
      version: 1,
      title: JSON.stringify(input.title),
      description: JSON.stringify(description),
      info_url: infoUrl,
      wording_hash: wordingHash(input.title, description, infoUrl),
      created_at: now,
    });
    return true;
  });
}

export async function ensureBuiltinPurposes(ctx: AppContext): Promise<void> {
  for (const p of builtinPurposes) await insertPurpose(ctx, p, true);
  invalidate(ctx, 'purposes');
}

export async function createPurpose(ctx: AppContext, input: PurposeInput): Promise<Purpose> {
  await checkChannels(ctx, input.channels, input.doubleOptIn ?? false);
  if (!(await insertPurpose(ctx, input, false))) {
    throw new DomainError('key_exists', `A purpose "${input.key}" exists already`);
  }
  invalidate(ctx, 'purposes');
  return (await requirePurpose(ctx, input.key)) as Purpose;
}

export async function updatePurpose(ctx: AppContext, key: string, patch: PurposePatch): Promise<Purpose> {
  const current = await findPurposeRow(ctx.db.kysely, key);
  if (!current) throw new DomainError('not_found', `There is no purpose "${key}"`);
  invalidate(ctx, 'purposes');
  const before = (await requirePurpose(ctx, key)) as Purpose;

  const channels = patch.channels ?? before.channels;
  if (before.builtin && patch.channels && [...channels].sort().join() !== [...before.channels].sort().join()) {
    throw new DomainError('builtin_locked', `The channels of the built-in purpose "${key}" cannot change`, [
      { path: '/channels', message: 'locked on built-in purposes' },
    ]);
  }
  const doubleOptIn = patch.doubleOptIn ?? before.doubleOptIn;
  await checkChannels(ctx, channels, doubleOptIn);

  const legalBasis = patch.legalBasis ?? before.legalBasis;
  if (before.legalBasis === 'consent' && legalBasis !== 'consent' && (await hasWithdrawals(ctx.db.kysely, key))) {
    throw new DomainError(
      'basis_switch_forbidden',
      'People withdrew or refused their consent to this purpose: it cannot fall back to another legal basis',
      [{ path: '/legalBasis', message: 'locked after a withdrawal' }],
    );
  }

  const title = patch.title ?? before.title;
  const description = patch.description ?? before.description;
  const infoUrl = patch.infoUrl === undefined ? before.infoUrl : patch.infoUrl;
  const hash = wordingHash(title, description, infoUrl);
  const now = iso(ctx.clock.now());
  const version = hash === before.wordingHash ? before.version : before.version + 1;

  await ctx.db.kysely.transaction().execute(async (trx) => {
    if (version !== before.version) {
      await insertPurposeVersionRow(trx, {
        purpose_key: key,
        version,
        title: JSON.stringify(title),
        description: JSON.stringify(description),
        info_url: infoUrl,
        wording_hash: hash,
        created_at: now,
      });
    }
    await updatePurposeRow(trx, key, {
      version,
      legal_basis: legalBasis,
      channels: JSON.stringify(channels),
      double_opt_in: doubleOptIn ? 1 : 0,
      expiry_after_days: patch.expiry === undefined ? before.expiry.afterDays : (patch.expiry.afterDays ?? null),
      info_url: infoUrl,
      partner: patch.partner === undefined ? current.partner : patch.partner === null ? null : JSON.stringify(patch.partner),
      retention_days: patch.retentionDays === undefined ? before.retentionDays : patch.retentionDays,
      recipients: JSON.stringify(patch.recipients ?? before.recipients),
      updated_at: now,
    });
  });
  invalidate(ctx, 'purposes');
  return (await requirePurpose(ctx, key)) as Purpose;
}

export async function listPurposeVersions(ctx: AppContext, key: string): Promise<PurposeVersion[]> {
  return (await listPurposeVersionRows(ctx.db.kysely, key)).map(toVersion);
}

export async function findPurposeVersions(ctx: AppContext, pairs: Array<{ purpose: string; version: number }>): Promise<PurposeVersion[]> {
  return (await findPurposeVersionRows(ctx.db.kysely, pairs)).map(toVersion);
}

/** A text in the asked language, else in the other one (French first), else empty. */
export const localized = (text: Localized, lang: string | null | undefined): string =>
  (lang === 'en' ? (text.en ?? text.fr) : (text.fr ?? text.en)) ?? '';

/** The wording a person was shown, as one text: used when the caller does not send it. */
export function wordingText(purpose: Pick<Purpose, 'title' | 'description'>, locale: string | null | undefined): string {
  const title = localized(purpose.title, locale);
  const description = localized(purpose.description, locale);
  return description ? `${title} — ${description}` : title;
}

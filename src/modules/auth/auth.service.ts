// API keys: shown once, stored as SHA-256 (they are 256-bit random, so a fast hash is enough),
// checked in constant time, with three nested scopes.
import type { CompiledQuery } from 'kysely';
import { iso } from '../../platform/clock.ts';
import { type AppContext, invalidate } from '../../platform/context.ts';
import { randomToken, safeEqual, sha256Hex } from '../../platform/crypto.ts';
import { DomainError } from '../../platform/errors.ts';
import type { Scope } from '../../platform/http.ts';
import { findKeyRowByName, insertKeyRow, listKeyRows, revokeKeyRow, touchKeyRow } from './auth.repository.ts';
import type { ApiKeysTable } from './auth.table.ts';

export const scopes: Scope[] = ['read', 'write', 'admin'];
const rank: Record<Scope, number> = { read: 0, write: 1, admin: 2 };
export const scopeAllows = (has: Scope, needs: Scope) => rank[has] >= rank[needs];

const KEY_FORMAT = /^ak_([0-9A-HJKMNP-TV-Z]{26})_([A-Za-z0-9_-]{43})$/;

export interface ApiKeyInfo {
  name: string;
  scope: Scope;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface Principal {
  id: string;
  name: string;
  scope: Scope;
}

const toInfo = (r: ApiKeysTable): ApiKeyInfo => ({
  name: r.name,
  scope: r.scope as Scope,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
  revokedAt: r.revoked_at,
});

export async function createKey(
  ctx: AppContext,
  input: { name: string; scope: Scope },
): Promise<{ name: string; scope: Scope; key: string }> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(input.name)) {
    throw new DomainError('validation_failed', 'A key name is 1–64 letters, digits, ".", "_" or "-"');
  }
  if (!scopes.includes(input.scope)) throw new DomainError('validation_failed', `The scope is one of ${scopes.join(', ')}`);
  const id = ctx.newId();
  const key = `ak_${id}_${randomToken(32)}`;
  const result = await insertKeyRow(ctx.db.kysely, {
    id,
    name: input.name,
    scope: input.scope,
    key_hash: sha256Hex(key),
    created_at: iso(ctx.clock.now()),
    last_used_at: null,
    revoked_at: null,
  });
  if (Number(result.numInsertedOrUpdatedRows ?? 0) === 0) throw new DomainError('key_exists', `A key named "${input.name}" exists`);
  return { name: input.name, scope: input.scope, key };
}

export const listKeys = async (ctx: AppContext): Promise<ApiKeyInfo[]> => (await listKeyRows(ctx.db.kysely)).map(toInfo);

export async function revokeKey(ctx: AppContext, name: string): Promise<ApiKeyInfo> {
  const row = await findKeyRowByName(ctx.db.kysely, name);
  if (!row) throw new DomainError('not_found', `There is no key named "${name}"`);
  const at = iso(ctx.clock.now());
  await revokeKeyRow(ctx.db.kysely, name, at);
  invalidate(ctx, 'apikey:');
  return toInfo({ ...row, revoked_at: row.revoked_at ?? at });
}

const TOUCH_EVERY_MS = 60_000;

function keyQuery(ctx: AppContext): CompiledQuery<ApiKeysTable> {
  const hit = ctx.cache.get('apikey-sql');
  if (hit) return hit.value as CompiledQuery<ApiKeysTable>;
  const compiled = ctx.db.kysely.selectFrom('api_keys').selectAll().where('id', '=', '?id').compile();
  ctx.cache.set('apikey-sql', { at: Number.MAX_SAFE_INTEGER / 2, value: compiled });
  return compiled;
}

/** Resolves the presented key. Results are cached two seconds, so a revocation reaches every process within that. */
export async function authenticate(ctx: AppContext, presented: string | undefined): Promise<Principal> {
  const match = presented ? KEY_FORMAT.exec(presented) : null;
  if (!presented || !match) {
    throw new DomainError('unauthorized', 'Send an API key as "Authorization: Bearer ak_…" (create one with: npx assent keys create)');
  }
  const id = match[1] as string;
  const cacheKey = `apikey:${id}`;
  const now = Date.now();
  let row = ctx.cache.get(cacheKey);
  if (!row || now - row.at > 2_000) {
    const compiled = keyQuery(ctx);
    const [found] = await ctx.db.read<ApiKeysTable>({ ...compiled, parameters: [id] });
    row = { at: now, value: found };
    ctx.cache.set(cacheKey, row);
  }
  const stored = row.value as ApiKeysTable | undefined;
  if (!stored || stored.revoked_at || !safeEqual(stored.key_hash, sha256Hex(presented))) {
    throw new DomainError('unauthorized', 'This API key is unknown or revoked');
  }
  const touched = ctx.cache.get(`apikey-touch:${id}`);
  if (!touched || now - touched.at > TOUCH_EVERY_MS) {
    ctx.cache.set(`apikey-touch:${id}`, { at: now, value: true });
    touchKeyRow(ctx.db.kysely, id, iso(ctx.clock.now())).catch((error: unknown) =>
      ctx.logger.warn({ err: error }, 'could not record key use'),
    );
  }
  return { id: stored.id, name: stored.name, scope: stored.scope as Scope };
}

// API keys: shown once, stored as SHA-256 (they are 256-bit random, so a fast hash is enough),
// checked in constant time, with three nested scopes.
import { hash, timingSafeEqual } from 'node:crypto';
import type { CompiledQuery } from 'kysely';
import { iso } from '../../platform/clock.ts';
import { type AppContext, invalidate } from '../../platform/context.ts';
import { randomToken, sha256Hex } from '../../platform/crypto.ts';
import { DomainError } from '../../platform/errors.ts';
import type { Scope } from '../../platform/http.ts';
import { findKeyRowByName, insertKeyRow, listKeyRows, revokeKeyRow, touchKeyRow } from './auth.repository.ts';
import type { ApiKeysTable } from './auth.table.ts';

export const scopes: Scope[] = ['read', 'write', 'admin'];
const rank: Record<Scope, number> = { read: 0, write: 1, admin: 2 };
export const scopeAllows = (has: Scope, needs: Scope) => rank[has] >= rank[needs];

const KEY_FORMAT = /^ak_([0-9A-HJKMNP-TV-Z]{26})_([A-Za-z0-9_-]{43})$/;
const KEY_LENGTH = 73;

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
/** How long a key's row is trusted without reading it again: a revocation elsewhere takes effect within this. */
export const KEY_CACHE_MS = 2_000;
/** Past this many cached keys (well-formed ids are cheap to invent), the cache starts over. */
const KEY_CACHE_LIMIT = 10_000;
/** The key cache, one entry of ctx.cache under the prefix revokeKey() invalidates. */
const KEY_CACHE = 'apikey:rows';

interface CachedKey {
  /** When the row was read (Date.now()). */
  at: number;
  principal: Principal | undefined;
  /** SHA-256 of the key as stored, decoded once. */
  hash: Buffer | undefined;
  /**
   * The key as last presented and found to match `hash`, kept as long as this entry (two
   * seconds at most): the same key presented again is compared with it in constant time
   * instead of being hashed on every request.
   */
  verified: string | undefined;
  touchedAt: number;
}

function keyCache(ctx: AppContext): Map<string, CachedKey> {
  const hit = ctx.cache.get(KEY_CACHE);
  if (hit) return hit.value as Map<string, CachedKey>;
  const keys = new Map<string, CachedKey>();
  // The map itself never goes stale (each entry carries its own age); revokeKey() drops it.
  ctx.cache.set(KEY_CACHE, { at: Number.MAX_SAFE_INTEGER / 2, value: keys });
  return keys;
}

function keyQuery(ctx: AppContext): CompiledQuery<ApiKeysTable> {
  const hit = ctx.cache.get('apikey-sql');
  if (hit) return hit.value as CompiledQuery<ApiKeysTable>;
  const compiled = ctx.db.kysely.selectFrom('api_keys').selectAll().where('id', '=', '?id').compile();
  ctx.cache.set('apikey-sql', { at: Number.MAX_SAFE_INTEGER / 2, value: compiled });
  return compiled;
}

const unauthorized = () =>
  new DomainError('unauthorized', 'Send an API key as "Authorization: Bearer ak_…" (create one with: npx assent keys create)');

/**
 * Whether two strings are equal, in a time that depends on their length only: every character
 * is compared (no early exit), as timingSafeEqual does for buffers, without making one per request.
 */
function sameInConstantTime(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i += 1) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/**
 * The principal of a cached row, once the presented key is known to be its key: already matched
 * (in constant time) to the key this entry last verified, or else its SHA-256 digest compared in
 * constant time with the stored one.
 */
function principalOf(ctx: AppContext, entry: CachedKey, id: string, presented: string, now: number, matched = false): Principal {
  const { principal, hash: stored } = entry;
  if (!principal || !stored) throw new DomainError('unauthorized', 'This API key is unknown or revoked');
  if (!matched) {
    if (!timingSafeEqual(hash('sha256', presented, 'buffer'), stored)) {
      throw new DomainError('unauthorized', 'This API key is unknown or revoked');
    }
    entry.verified = presented;
  }
  if (now - entry.touchedAt > TOUCH_EVERY_MS) {
    entry.touchedAt = now;
    touchKeyRow(ctx.db.kysely, id, iso(ctx.clock.now())).catch((error: unknown) =>
      ctx.logger.warn({ err: error }, 'could not record key use'),
    );
  }
  return principal;
}

async function loadKey(ctx: AppContext, keys: Map<string, CachedKey>, id: string, now: number): Promise<CachedKey> {
  const [row] = await ctx.db.read<ApiKeysTable>({ ...keyQuery(ctx), parameters: [id] });
  const stored = row && !row.revoked_at ? Buffer.from(row.key_hash, 'hex') : undefined;
  // A stored hash that is not a SHA-256 digest (a damaged row) matches no key: refused, not a 500.
  const live = stored?.length === 32 ? row : undefined;
  const previous = keys.get(id);
  const entry: CachedKey = {
    at: now,
    principal: live ? { id: live.id, name: live.name, scope: live.scope as Scope } : undefined,
    hash: live ? stored : undefined,
    verified: undefined,
    touchedAt: previous?.touchedAt ?? 0,
  };
  // Filled into the map of before the read: if a revocation dropped it meanwhile, this row (maybe
  // read before the revocation) is not kept.
  if (keys.size >= KEY_CACHE_LIMIT) keys.clear();
  keys.set(id, entry);
  return entry;
}

/**
 * Resolves the presented key. A key's row is cached for KEY_CACHE_MS (two seconds), so a
 * revocation in another process takes effect within that; revokeKey() drops the cache of its own
 * process at once. Answers synchronously when the cache can (the hot path: no promise per request).
 */
export function authenticate(ctx: AppContext, presented: string | undefined): Principal | Promise<Principal> {
  if (!presented || presented.length !== KEY_LENGTH) throw unauthorized();
  const id = presented.slice(3, 29);
  const now = Date.now();
  const keys = keyCache(ctx);
  const entry = keys.get(id);
  const fresh = entry !== undefined && now - entry.at <= KEY_CACHE_MS;
  // The key this entry last verified (hence well-formed), presented again: no format check, no hash.
  if (fresh && entry.verified !== undefined && sameInConstantTime(presented, entry.verified)) {
    return principalOf(ctx, entry, id, presented, now, true);
  }
  if (!KEY_FORMAT.test(presented)) throw unauthorized();
  if (fresh) return principalOf(ctx, entry, id, presented, now);
  return loadKey(ctx, keys, id, now).then((loaded) => principalOf(ctx, loaded, id, presented, now));
}

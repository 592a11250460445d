// Signed tokens for every link a person clicks: HMAC-SHA256 with the server secret, bound to
// what the link does, the contact, and an expiry. Compared in constant time.
import { createHmac, randomBytes } from 'node:crypto';
import { safeEqual } from './crypto.ts';

export type TokenKind = 'confirm' | 'unsubscribe' | 'preferences';

export interface TokenClaims {
  /** What the link does. */
  kind: TokenKind;
  /** Contact id. */
  contactId: string;
  purpose?: string;
  channel?: string;
  /** Unsubscribe from everything on the channel (adds a suppression). */
  all?: boolean;
  /** What the confirmation is for: double opt-in, or a campaign delivery ("campaign:key/step/delivery"). */
  ref?: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
  /** Unique id: a confirmation link is used once. */
  jti: string;
}

const short = { confirm: 'c', unsubscribe: 'u', preferences: 'p' } as const;
const long = { c: 'confirm', u: 'unsubscribe', p: 'preferences' } as const;

const mac = (secret: string, body: string) => createHmac('sha256', secret).update(`link-token:${body}`).digest('base64url');

export function signToken(secret: string, claims: Omit<TokenClaims, 'jti'> & { jti?: string }): string {
  const compact = {
    k: short[claims.kind],
    c: claims.contactId,
    ...(claims.purpose ? { p: claims.purpose } : {}),
    ...(claims.channel ? { h: claims.channel } : {}),
    ...(claims.all ? { a: 1 } : {}),
    ...(claims.ref ? { r: claims.ref } : {}),
    e: claims.exp,
    j: claims.jti ?? randomBytes(9).toString('base64url'),
  };
  const body = Buffer.from(JSON.stringify(compact)).toString('base64url');
  return `${body}.${mac(secret, body)}`;
}

export type TokenCheck = { ok: true; claims: TokenClaims } | { ok: false; reason: 'invalid' | 'expired' };

/** Verifies signature, kind and expiry. A tampered token is 'invalid'; a late one 'expired'. */
export function verifyToken(secret: string, token: string, kind: TokenKind, now: Date): TokenCheck {
  const [body, signature, extra] = token.split('.');
  if (!body || !signature || extra !== undefined || token.length > 1000) return { ok: false, reason: 'invalid' };
  if (!safeEqual(signature, mac(secret, body))) return { ok: false, reason: 'invalid' };
  let compact: Record<string, unknown>;
  try {
    compact = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'invalid' };
  }
  if (long[compact.k as keyof typeof long] !== kind || typeof compact.c !== 'string' || typeof compact.e !== 'number') {
    return { ok: false, reason: 'invalid' };
  }
  if (compact.e * 1000 < now.getTime()) return { ok: false, reason: 'expired' };
  const claims: TokenClaims = { kind, contactId: compact.c, exp: compact.e, jti: String(compact.j) };
  if (typeof compact.p === 'string') claims.purpose = compact.p;
  if (typeof compact.h === 'string') claims.channel = compact.h;
  if (compact.a === 1) claims.all = true;
  if (typeof compact.r === 'string') claims.ref = compact.r;
  return { ok: true, claims };
}

export const expiresIn = (now: Date, days: number) => Math.floor(now.getTime() / 1000) + Math.round(days * 86_400);

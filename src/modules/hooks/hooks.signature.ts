// The signature on provider callbacks: `Assent-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<raw body>">`, the scheme of our own outgoing webhooks, keyed with HOOKS_SECRET.
import { hmacHex, safeEqual } from '../../platform/crypto.ts';

/** How far the signed time may be from our clock, either way. */
export const HOOK_TOLERANCE_SECONDS = 300;

export const SIGNATURE_HEADER = 'assent-signature';

/** The header value signing `body` at `t` (unix seconds): what a provider adapter sends. */
export function signHookBody(secret: string, body: string, t: number): string {
  return `t=${t},v1=${hmacHex(secret, `${t}.${body}`)}`;
}

export type SignatureCheck = 'ok' | 'missing' | 'malformed' | 'stale' | 'mismatch';

/** Checks a signature header against the raw body, in constant time; any `v1` may match (key rotation). */
export function checkHookSignature(secret: string, header: string | string[] | undefined, body: string, now: Date): SignatureCheck {
  if (header === undefined || header === '') return 'missing';
  if (typeof header !== 'string' || header.length > 1000) return 'malformed';
  let t: string | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const [key, value] = [part.slice(0, eq).trim(), part.slice(eq + 1).trim()];
    if (key === 't') t = value;
    else if (key === 'v1') signatures.push(value.toLowerCase());
  }
  if (!t || !/^\d{1,12}$/.test(t) || signatures.length === 0) return 'malformed';
  if (Math.abs(now.getTime() / 1000 - Number(t)) > HOOK_TOLERANCE_SECONDS) return 'stale';
  const expected = hmacHex(secret, `${t}.${body}`);
  // Every candidate is compared, so the time taken does not tell which one matched.
  let ok = false;
  for (const s of signatures) if (safeEqual(s, expected)) ok = true;
  return ok ? 'ok' : 'mismatch';
}

// Hashing and signing primitives shared by the ledger, suppressions and API keys.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import canonicalizeJson from 'canonicalize';

export const sha256Hex = (value: string | Buffer): string => createHash('sha256').update(value).digest('hex');

export const hmacHex = (secret: string, value: string): string => createHmac('sha256', secret).update(value).digest('hex');

/** RFC 8785 JSON canonicalisation: the same object always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  const text = (canonicalizeJson as unknown as (v: unknown) => string | undefined)(value);
  if (text === undefined) throw new Error('value cannot be canonicalised');
  return text;
}

export const randomToken = (bytes = 32): string => randomBytes(bytes).toString('base64url');

export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

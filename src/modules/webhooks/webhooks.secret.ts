// Webhook signing secrets: generated, sealed at rest (AES-256-GCM under a key derived from the
// server secret), and the `Assent-Signature` header computed with them.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { hmacHex, randomToken } from '../../platform/crypto.ts';

const VERSION = 'v1';

/** The sealing key: HKDF-SHA256 of the server secret, bound to this one use. */
function sealingKey(serverSecret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', serverSecret, 'assent', 'webhook-secrets:v1', 32));
}

/** A new signing secret, shown once to whoever creates the webhook. */
export const generateWebhookSecret = (): string => `whsec_${randomToken(32)}`;

/** Seals a signing secret for the `webhooks.secret` column; bound to the webhook id (AAD). */
export function sealSecret(serverSecret: string, webhookId: string, secret: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealingKey(serverSecret), iv);
  cipher.setAAD(Buffer.from(`webhook:${webhookId}`));
  const sealed = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return [VERSION, iv.toString('base64url'), sealed.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

/** Opens a sealed secret; throws when it was sealed under another server secret or altered. */
export function openSecret(serverSecret: string, webhookId: string, sealed: string): string {
  const [version, iv, data, tag] = sealed.split('.');
  if (version !== VERSION || !iv || data === undefined || !tag) throw new Error('the webhook secret is not in a known sealed form');
  const decipher = createDecipheriv('aes-256-gcm', sealingKey(serverSecret), Buffer.from(iv, 'base64url'));
  decipher.setAAD(Buffer.from(`webhook:${webhookId}`));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
}

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the contract receivers verify. */
export function signatureHeader(secret: string, body: string, at: Date): string {
  const t = Math.floor(at.getTime() / 1000);
  return `t=${t},v1=${hmacHex(secret, `${t}.${body}`)}`;
}

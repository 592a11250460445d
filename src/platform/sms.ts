// How SMS leave: the outbox provider keeps them in the database (the default, for reading with
// GET /v1/outbox), or the generic HTTP provider posts them to SMS_PROVIDER_URL (contract in README).
import type { Config } from '../config.ts';

export interface OutgoingSms {
  /** E.164 number. */
  to: string;
  body: string;
  /** Our reference for the message (the delivery id): echoed in status receipts. */
  reference: string;
}

export interface SmsProvider {
  readonly kind: 'outbox' | 'http';
  /** Hands the SMS over; resolves with the provider's id for it. */
  send(sms: OutgoingSms): Promise<{ providerRef: string }>;
}

export const outboxSmsProvider: SmsProvider = {
  kind: 'outbox',
  send: async (sms) => ({ providerRef: `outbox:${sms.reference}` }),
};

export function createSmsProvider(config: Config['sms']): SmsProvider {
  if (!config.providerUrl) return outboxSmsProvider;
  const url = config.providerUrl;
  const token = config.providerToken;
  return {
    kind: 'http',
    async send(sms) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ to: sms.to, body: sms.body, reference: sms.reference }),
        signal: AbortSignal.timeout(10_000),
      });
      if (!response.ok) throw new Error(`SMS provider answered ${response.status}`);
      // Handed over: an answer without a usable id is not a failure (retrying would send twice);
      // receipts then match on our reference.
      const answer = (await response.json().catch(() => ({}))) as { id?: unknown } | null;
      const id = answer?.id;
      const providerRef = (typeof id === 'string' && id) || (typeof id === 'number' && Number.isFinite(id) ? String(id) : '');
      return { providerRef: providerRef ? providerRef.slice(0, 200) : `http:${sms.reference}` };
    },
  };
}

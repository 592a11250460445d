// Structured logs that never carry personal data: requests are logged by route pattern (no
// query string, no IP), and any field named like personal data is censored.
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

const personalKeys = [
  'email',
  'phone',
  'firstName',
  'lastName',
  'first_name',
  'last_name',
  'ip',
  'userAgent',
  'user_agent',
  'address',
  'remoteAddress',
  'authorization',
  'key',
];

export const redactPaths = [
  ...personalKeys,
  ...personalKeys.map((k) => `*.${k}`),
  ...personalKeys.map((k) => `*.*.${k}`),
  'req.headers',
];

// Database drivers quote the offending row in their errors (PostgreSQL: "Key (email)=(…) already
// exists", "Failing row contains (…)"): those fields go, and addresses are scrubbed from the text.
const driverValueFields = ['detail', 'where', 'parameters', 'sql'];
const EMAIL_LIKE = /[^\s@"'()<>,;:=/\\]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g; // not node_modules/@scope/x.js
const PHONE_LIKE = /\+\d[\d ().-]{6,18}\d/g;
const scrub = (text: string) => text.replace(EMAIL_LIKE, '[email]').replace(PHONE_LIKE, '[phone]');

export function serializeError(error: Error): Record<string, unknown> {
  const out = pino.stdSerializers.err(error) as unknown as Record<string, unknown>;
  for (const field of driverValueFields) if (field in out) out[field] = '[redacted]';
  for (const field of ['message', 'stack'] as const) if (typeof out[field] === 'string') out[field] = scrub(out[field]);
  return out;
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'assent' },
    redact: { paths: redactPaths, censor: '[redacted]' },
    serializers: {
      err: serializeError,
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

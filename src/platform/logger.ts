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

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'assent' },
    redact: { paths: redactPaths, censor: '[redacted]' },
    serializers: {
      err: pino.stdSerializers.err,
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

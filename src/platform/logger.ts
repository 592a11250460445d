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

export const redactPaths = [...personalKeys, ...personalKeys.map((k) => `*.${k}`), ...personalKeys.map((k) => `*.*.${k}`), 'req.headers'];

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

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type ChildBindings = Record<string, unknown>;
interface ChildParent {
  level: string;
  isLevelEnabled(level: string): boolean;
  child(bindings: ChildBindings, options?: object): unknown;
}

/**
 * A request's child logger, made on the first line actually written. Fastify makes one per
 * request, and with redaction configured pino spends microseconds on each; at the default level
 * most requests write nothing through theirs (the access line aside, which makes it as before).
 * The lines written are the same: the child is made from the same parent and bindings.
 */
type ChildLogger = Record<Level | 'silent' | 'child', (...args: unknown[]) => unknown>;

export class LazyChildLogger {
  #child: ChildLogger | undefined;
  readonly #parent: ChildParent;
  readonly #bindings: ChildBindings;

  constructor(parent: ChildParent, bindings: ChildBindings) {
    this.#parent = parent;
    this.#bindings = bindings;
  }

  #real() {
    this.#child ??= this.#parent.child(this.#bindings) as ChildLogger;
    return this.#child;
  }

  #write(level: Level, args: unknown[]): void {
    if (this.#child || this.#parent.isLevelEnabled(level)) this.#real()[level](...args);
  }

  get level(): string {
    return this.#child ? (this.#child as unknown as { level: string }).level : this.#parent.level;
  }
  set level(level: string) {
    (this.#real() as unknown as { level: string }).level = level;
  }
  isLevelEnabled(level: string): boolean {
    return this.#child ? (this.#child as unknown as ChildParent).isLevelEnabled(level) : this.#parent.isLevelEnabled(level);
  }
  fatal(...args: unknown[]): void {
    this.#write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.#write('error', args);
  }
  warn(...args: unknown[]): void {
    this.#write('warn', args);
  }
  info(...args: unknown[]): void {
    this.#write('info', args);
  }
  debug(...args: unknown[]): void {
    this.#write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.#write('trace', args);
  }
  silent(): void {}
  child(bindings: ChildBindings, options?: object): unknown {
    return this.#real().child(bindings, options);
  }
}

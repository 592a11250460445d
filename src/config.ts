// Configuration: read once from the environment at boot, validated, then passed down typed.
import { resolve } from 'node:path';

export interface Config {
  databaseUrl: string;
  database: { dialect: 'sqlite'; file: string } | { dialect: 'postgres'; url: string };
  port: number;
  host: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  secret: string | undefined;
  defaultRegion: string;
  formerCustomerAfterDays: number;
  phoneConsentRequiredFrom: string;
  schedulerIntervalSeconds: number;
  bodyLimitBytes: number;
  pgPoolSize: number;
  publicUrl: string;
  mail: {
    smtpUrl: string | undefined;
    smtpPoolSize: number;
    from: string;
    unsubscribeMailto: string;
    dkim: { domain: string; selector: string; privateKeyFile: string } | undefined;
  };
  company: { name: string; address: string; logoUrl: string | undefined };
  doubleOptInExpiryDays: number;
  rateLimitPerMinute: number;
  sms: {
    /** Generic HTTP provider; unset: the outbox provider keeps SMS in the database. */
    providerUrl: string | undefined;
    providerToken: string | undefined;
    /** The short number people text STOP to ("STOP au 36180"). */
    stopNumber: string;
    quietHours: QuietHours;
  };
  /** Shared secret signing the provider callbacks (/hooks/*); unset: the hooks answer 503. */
  hooksSecret: string | undefined;
  deliveries: {
    /** Campaign messages per second, per dispatcher (0: as fast as the transport goes). */
    ratePerSecond: number;
    batch: number;
    /** A claimed delivery not recorded within this time is given back (its dispatcher died). */
    leaseSeconds: number;
  };
}

/** When SMS may be sent: days (1 = Monday … 7 = Sunday) and hours, in a time zone. */
export interface QuietHours {
  days: number[];
  start: string; // HH:MM
  end: string; // HH:MM
  timeZone: string;
}

const dayNames = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

/** "Mon-Sat 08:00-20:00" → the days and hours when sending is allowed. */
export function parseQuietHours(value: string, timeZone: string): QuietHours | string {
  const m = /^([a-z]{3})(?:-([a-z]{3}))?\s+(\d{2}:\d{2})-(\d{2}:\d{2})$/i.exec(value.trim());
  const from = dayNames.indexOf(m?.[1]?.toLowerCase() ?? '');
  const to = m?.[2] ? dayNames.indexOf(m[2].toLowerCase()) : from;
  const time = /^([01]\d|2[0-4]):[0-5]\d$/;
  if (!m || from < 0 || to < from || !time.test(m[3] as string) || !time.test(m[4] as string) || (m[3] as string) >= (m[4] as string))
    return `SMS_SEND_HOURS must look like "Mon-Sat 08:00-20:00" (got "${value}")`;
  try {
    new Intl.DateTimeFormat('en', { timeZone });
  } catch {
    return `SMS_TIME_ZONE must be an IANA time zone such as Europe/Paris (got "${timeZone}")`;
  }
  const days = Array.from({ length: to - from + 1 }, (_, i) => from + i + 1);
  return { days, start: m[3] as string, end: m[4] as string, timeZone };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function parseDatabaseUrl(value: string): Config['database'] | string {
  if (value.startsWith('sqlite:')) {
    const file = value.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!file) return 'DATABASE_URL "sqlite:" needs a file path, e.g. sqlite:./data/assent.db';
    return { dialect: 'sqlite', file: file === ':memory:' ? file : resolve(file) };
  }
  if (/^postgres(ql)?:\/\//.test(value)) {
    try {
      new URL(value);
    } catch {
      return 'DATABASE_URL is not a valid postgres:// URL';
    }
    return { dialect: 'postgres', url: value };
  }
  return 'DATABASE_URL must start with sqlite: or postgres:// (got an unsupported scheme)';
}

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];

  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return n;
  };

  const databaseUrl = env.DATABASE_URL || 'sqlite:./data/assent.db';
  const database = parseDatabaseUrl(databaseUrl);
  if (typeof database === 'string') problems.push(database);

  const logLevel = (env.LOG_LEVEL || 'info') as Config['logLevel'];
  if (!levels.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${levels.join(', ')} (got "${logLevel}")`);

  const secret = env.ASSENT_SECRET || undefined;
  if (secret !== undefined && secret.length < 32) {
    problems.push('ASSENT_SECRET must be at least 32 characters (use: openssl rand -base64 48)');
  }

  const defaultRegion = (env.DEFAULT_REGION || 'FR').toUpperCase();
  if (!/^[A-Z]{2}$/.test(defaultRegion)) problems.push(`DEFAULT_REGION must be a two-letter country code (got "${defaultRegion}")`);

  const phoneConsentRequiredFrom = env.PHONE_CONSENT_REQUIRED_FROM || '2026-08-11';
  if (!/^\d{4}-\d{2}-\d{2}$/.test(phoneConsentRequiredFrom) || Number.isNaN(Date.parse(phoneConsentRequiredFrom))) {
    problems.push(`PHONE_CONSENT_REQUIRED_FROM must be a date YYYY-MM-DD (got "${phoneConsentRequiredFrom}")`);
  }

  const host = env.HOST || '127.0.0.1';
  const publicUrl = env.PUBLIC_URL || '';
  if (publicUrl && !/^https?:\/\/[^\s/]+/.test(publicUrl)) problems.push(`PUBLIC_URL must be an http(s) URL (got "${publicUrl}")`);

  const smtpUrl = env.SMTP_URL || undefined;
  if (smtpUrl && !/^smtps?:\/\/[^\s]+$/.test(smtpUrl))
    problems.push('SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465');
  const from = env.MAIL_FROM || 'Assent <no-reply@localhost>';
  const fromAddress = /<([^>]+)>\s*$/.exec(from)?.[1] ?? from;
  if (!/^[^\s@<>]+@[^\s@<>]+$/.test(fromAddress))
    problems.push(`MAIL_FROM must be an address, e.g. "Shop <news@shop.example>" (got "${from}")`);
  const unsubscribeMailto = env.UNSUBSCRIBE_MAILTO || fromAddress;
  const dkimParts = [env.DKIM_DOMAIN, env.DKIM_SELECTOR, env.DKIM_PRIVATE_KEY_FILE];
  const dkimSet = dkimParts.filter(Boolean).length;
  if (dkimSet > 0 && dkimSet < 3) problems.push('DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE go together: set all three or none');
  const logoUrl = env.COMPANY_LOGO_URL || undefined;
  if (logoUrl && !/^(https?:\/\/|\/)/.test(logoUrl)) problems.push('COMPANY_LOGO_URL must be an http(s) URL or a path');

  const smsProviderUrl = env.SMS_PROVIDER_URL || undefined;
  if (smsProviderUrl && !/^https?:\/\/[^\s]+$/.test(smsProviderUrl)) problems.push('SMS_PROVIDER_URL must be an http(s) URL');
  const quietHours = parseQuietHours(env.SMS_SEND_HOURS || 'Mon-Sat 08:00-20:00', env.SMS_TIME_ZONE || 'Europe/Paris');
  if (typeof quietHours === 'string') problems.push(quietHours);
  const hooksSecret = env.HOOKS_SECRET || undefined;
  if (hooksSecret !== undefined && hooksSecret.length < 16) problems.push('HOOKS_SECRET must be at least 16 characters');

  const config: Config = {
    databaseUrl,
    database: typeof database === 'string' ? { dialect: 'sqlite', file: '' } : database,
    port: int('PORT', 3000, 0, 65535),
    host,
    logLevel,
    secret,
    defaultRegion,
    formerCustomerAfterDays: int('FORMER_CUSTOMER_AFTER_DAYS', 365, 1, 36500),
    phoneConsentRequiredFrom,
    schedulerIntervalSeconds: int('SCHEDULER_INTERVAL_SECONDS', 5, 0, 86400),
    bodyLimitBytes: int('BODY_LIMIT_BYTES', 1_048_576, 1024, 104_857_600),
    pgPoolSize: int('PG_POOL_SIZE', 10, 1, 200),
    publicUrl: '',
    mail: {
      smtpUrl,
      smtpPoolSize: int('SMTP_POOL_SIZE', 5, 1, 50),
      from,
      unsubscribeMailto,
      dkim:
        dkimSet === 3
          ? {
              domain: env.DKIM_DOMAIN as string,
              selector: env.DKIM_SELECTOR as string,
              privateKeyFile: env.DKIM_PRIVATE_KEY_FILE as string,
            }
          : undefined,
    },
    company: { name: env.COMPANY_NAME || 'Assent', address: env.COMPANY_ADDRESS || '', logoUrl },
    doubleOptInExpiryDays: int('DOUBLE_OPT_IN_EXPIRY_DAYS', 7, 1, 365),
    rateLimitPerMinute: int('RATE_LIMIT_PER_MINUTE', 30, 1, 100000),
    sms: {
      providerUrl: smsProviderUrl,
      providerToken: env.SMS_PROVIDER_TOKEN || undefined,
      stopNumber: env.SMS_STOP_NUMBER || '36180',
      quietHours: typeof quietHours === 'string' ? { days: [], start: '00:00', end: '24:00', timeZone: 'UTC' } : quietHours,
    },
    hooksSecret,
    deliveries: {
      ratePerSecond: int('DELIVERY_RATE_PER_SECOND', 0, 0, 100000),
      batch: int('DELIVERY_BATCH', 200, 1, 10000),
      leaseSeconds: int('DELIVERY_LEASE_SECONDS', 300, 1, 86400),
    },
  };
  config.publicUrl = (publicUrl || `http://localhost:${config.port}`).replace(/\/+$/, '');

  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

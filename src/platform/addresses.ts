// Normalising the addresses people are reached at: one spelling per address, so that lookups,
// uniqueness and suppression hashes agree.
import { type CountryCode, parsePhoneNumberFromString } from 'libphonenumber-js/max';

const EMAIL = /^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;

/** Lower-cased and trimmed; undefined when it is not a plausible address. */
export function normalizeEmail(raw: string): string | undefined {
  const email = raw.trim().toLowerCase();
  if (email.length > 254 || !EMAIL.test(email)) return undefined;
  const [local, domain] = email.split('@') as [string, string];
  if (local.length > 64 || local.startsWith('.') || local.endsWith('.') || local.includes('..')) return undefined;
  if (!/\.[a-z]{2,63}$/.test(domain) && !/\.xn--[a-z0-9-]+$/.test(domain)) return undefined;
  return email;
}

/** E.164 (+33612345678); numbers without a country code are read in the default region. */
export function normalizePhone(raw: string, defaultRegion: string): string | undefined {
  if (raw.length > 40 || !/^[+\d\s().\-/]+$/.test(raw.trim())) return undefined;
  const parsed = parsePhoneNumberFromString(raw.trim(), defaultRegion as CountryCode);
  if (!parsed?.isValid()) return undefined;
  return parsed.number;
}

/** Which of a contact's addresses a channel of this kind reaches. */
export function addressKindFor(channelKind: string): 'email' | 'phone' | undefined {
  if (channelKind === 'email') return 'email';
  if (channelKind === 'sms' || channelKind === 'phone') return 'phone';
  return undefined;
}

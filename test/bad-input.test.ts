// Bad input: every malformed request gets a 4xx application/problem+json naming what is wrong,
// and none of them leaves a row behind (issue 3, acceptance "Bad input").
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProblemCode, problemCodes } from '../src/platform/errors.ts';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, record, rowCounts } from './helpers/factories.ts';

interface Fixtures {
  /** A live contact with taken@example.com and +33612345678. */
  taken: string;
  /** Another live contact (other@example.com). */
  other: string;
  /** An erased contact. */
  erased: string;
}

interface BadRequest {
  name: string;
  method: string;
  url: string | ((f: Fixtures) => string);
  body?: object | string | ((f: Fixtures) => unknown);
  headers?: Record<string, string>;
  code: ProblemCode;
  /** A path the `errors` array must name (validation errors). */
  path?: string;
}

const TAKEN_EMAIL = 'taken@example.com';
const TAKEN_PHONE = '+33612345678';
const UNKNOWN_ID = '01JAAAAAAAAAAAAAAAAAAAAAAA';
const TWO_MB = 2 * 1024 * 1024;

const cases: BadRequest[] = [
  // --- POST /v1/contacts ---
  {
    name: 'contact without email nor phone',
    method: 'POST',
    url: '/v1/contacts',
    body: { firstName: 'Nobody' },
    code: 'contact_address_required',
    path: '/email',
  },
  {
    name: 'contact email of the wrong type',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 42 },
    code: 'validation_failed',
    path: '/body/email',
  },
  {
    name: 'contact with an invalid email',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'not an email@' },
    code: 'invalid_email',
    path: '/email',
  },
  {
    name: 'contact with an email without a TLD',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'someone@localhost' },
    code: 'invalid_email',
    path: '/email',
  },
  {
    name: 'contact with an invalid phone',
    method: 'POST',
    url: '/v1/contacts',
    body: { phone: '+33 1 23' },
    code: 'invalid_phone',
    path: '/phone',
  },
  {
    name: 'contact with letters in the phone',
    method: 'POST',
    url: '/v1/contacts',
    body: { phone: 'call me maybe' },
    code: 'invalid_phone',
    path: '/phone',
  },
  {
    name: 'contact with an unknown top-level field',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'fresh1@example.com', nickname: 'Cam' },
    code: 'validation_failed',
    path: '/body/nickname',
  },
  {
    name: 'contact with an unknown kind',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'fresh2@example.com', kind: 'robot' },
    code: 'validation_failed',
    path: '/body/kind',
  },
  {
    name: 'contact with a malformed locale',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'fresh3@example.com', locale: 'french' },
    code: 'validation_failed',
    path: '/body/locale',
  },
  {
    name: 'contact with a lastPurchaseAt that is not a date',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'fresh4@example.com', lastPurchaseAt: 'yesterday' },
    code: 'validation_failed',
    path: '/lastPurchaseAt',
  },
  {
    name: 'contact with a lastPurchaseAt on 30 February',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'fresh13@example.com', lastPurchaseAt: '2026-02-30' },
    code: 'validation_failed',
    path: '/lastPurchaseAt',
  },
  {
    name: 'contact with a lastPurchaseAt at 24:00',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'fresh14@example.com', lastPurchaseAt: '2026-01-01T24:00:00Z' },
    code: 'validation_failed',
    path: '/lastPurchaseAt',
  },
  {
    name: 'contact with a date attribute on 31 April',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'fresh15@example.com', attributes: { memberSince: '2026-04-31' } },
    code: 'invalid_attribute',
    path: '/attributes/memberSince',
  },
  // PostgreSQL text cannot hold U+0000 (SQLite can): both stores must refuse it the same way.
  {
    name: 'contact name holding a NUL character',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'fresh16@example.com', firstName: 'Cam\u0000ille' },
    code: 'validation_failed',
    path: '/body/firstName',
  },
  {
    name: 'contact with an undeclared attribute',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'fresh5@example.com', attributes: { shoeSize: 42 } },
    code: 'undeclared_attribute',
    path: '/attributes/shoeSize',
  },
  {
    name: 'contact with a mistyped attribute',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'fresh6@example.com', attributes: { loyaltyPoints: 'lots' } },
    code: 'invalid_attribute',
    path: '/attributes/loyaltyPoints',
  },
  {
    name: 'contact with an attribute that is an object',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: 'fresh7@example.com', attributes: { loyaltyPoints: { n: 1 } } },
    code: 'validation_failed',
    path: '/body/attributes/loyaltyPoints',
  },
  {
    name: 'contact whose email exists (other case and spaces)',
    method: 'POST',
    url: '/v1/contacts',
    body: { email: '  Taken@Example.COM ' },
    code: 'contact_exists',
    path: '/email',
  },
  {
    name: 'contact whose phone exists (national format)',
    method: 'POST',
    url: '/v1/contacts',
    body: { phone: '06 12 34 56 78' },
    code: 'contact_exists',
    path: '/phone',
  },
  {
    name: 'contact body that is a JSON array',
    method: 'POST',
    url: '/v1/contacts',
    body: [{ email: 'fresh8@example.com' }],
    code: 'validation_failed',
    path: '/body',
  },
  {
    name: 'contact body that is not JSON',
    method: 'POST',
    url: '/v1/contacts',
    body: '{"email": "fresh9@example.com",',
    headers: { 'content-type': 'application/json' },
    code: 'bad_json',
  },
  {
    name: 'contact body that is empty JSON',
    method: 'POST',
    url: '/v1/contacts',
    body: '',
    headers: { 'content-type': 'application/json' },
    code: 'bad_json',
  },
  {
    name: 'contact body as XML',
    method: 'POST',
    url: '/v1/contacts',
    body: '<contact><email>fresh10@example.com</email></contact>',
    headers: { 'content-type': 'application/xml' },
    code: 'unsupported_media_type',
  },
  {
    name: 'contact body as form data',
    method: 'POST',
    url: '/v1/contacts',
    body: 'email=fresh11%40example.com',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    code: 'unsupported_media_type',
  },
  {
    name: 'contact body as plain text',
    method: 'POST',
    url: '/v1/contacts',
    body: 'fresh12@example.com',
    headers: { 'content-type': 'text/plain' },
    code: 'validation_failed',
    path: '/body',
  },
  {
    name: 'contact body of 2 MB',
    method: 'POST',
    url: '/v1/contacts',
    body: JSON.stringify({ email: 'big@example.com', source: 'x'.repeat(TWO_MB) }),
    headers: { 'content-type': 'application/json' },
    code: 'payload_too_large',
  },

  // --- PATCH / GET / DELETE /v1/contacts/:id ---
  {
    name: 'patch with an empty body',
    method: 'PATCH',
    url: (f) => `/v1/contacts/${f.taken}`,
    body: {},
    code: 'validation_failed',
    path: '/body',
  },
  {
    name: 'patch of an unknown contact',
    method: 'PATCH',
    url: `/v1/contacts/${UNKNOWN_ID}`,
    body: { firstName: 'Ghost' },
    code: 'contact_not_found',
  },
  {
    name: 'patch with a malformed id',
    method: 'PATCH',
    url: '/v1/contacts/not-a-ulid',
    body: { firstName: 'Ghost' },
    code: 'validation_failed',
    path: '/params/id',
  },
  {
    name: 'patch with an invalid email',
    method: 'PATCH',
    url: (f) => `/v1/contacts/${f.other}`,
    body: { email: 'nope' },
    code: 'invalid_email',
    path: '/email',
  },
  {
    name: 'patch to the email of another contact',
    method: 'PATCH',
    url: (f) => `/v1/contacts/${f.other}`,
    body: { email: TAKEN_EMAIL },
    code: 'contact_exists',
    path: '/email',
  },
  {
    name: 'patch removing the only address',
    method: 'PATCH',
    url: (f) => `/v1/contacts/${f.other}`,
    body: { email: null },
    code: 'contact_address_required',
  },
  {
    name: 'patch with an undeclared attribute',
    method: 'PATCH',
    url: (f) => `/v1/contacts/${f.other}`,
    body: { attributes: { favouriteColour: 'blue' } },
    code: 'undeclared_attribute',
    path: '/attributes/favouriteColour',
  },
  {
    name: 'patch of an erased contact',
    method: 'PATCH',
    url: (f) => `/v1/contacts/${f.erased}`,
    body: { firstName: 'Back' },
    code: 'contact_erased',
  },
  { name: 'get an erased contact', method: 'GET', url: (f) => `/v1/contacts/${f.erased}`, code: 'contact_erased' },
  {
    name: 'find contacts by an invalid email',
    method: 'GET',
    url: '/v1/contacts?email=not-an-email',
    code: 'invalid_email',
    path: '/email',
  },
  { name: 'list contacts with limit 0', method: 'GET', url: '/v1/contacts?limit=0', code: 'validation_failed', path: '/querystring/limit' },
  { name: 'delete with a malformed id', method: 'DELETE', url: '/v1/contacts/12345', code: 'validation_failed', path: '/params/id' },
  { name: 'delete an unknown contact', method: 'DELETE', url: `/v1/contacts/${UNKNOWN_ID}`, code: 'contact_not_found' },

  // --- POST /v1/consents ---
  {
    name: 'consent without purpose',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.taken, channel: 'email', action: 'grant' }),
    code: 'validation_failed',
    path: '/body/purpose',
  },
  {
    name: 'consent with an unknown action',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.taken, purpose: 'commercial-email', channel: 'email', action: 'maybe' }),
    code: 'validation_failed',
    path: '/body/action',
  },
  {
    name: 'consent with a purpose of the wrong type',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.taken, purpose: 7, channel: 'email', action: 'grant' }),
    code: 'validation_failed',
    path: '/body/purpose',
  },
  {
    name: 'consent with a purpose key holding a space',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.taken, purpose: 'commercial email', channel: 'email', action: 'grant' }),
    code: 'validation_failed',
    path: '/body/purpose',
  },
  {
    name: 'consent for an unknown purpose',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.taken, purpose: 'no-such-purpose', channel: 'email', action: 'grant' }),
    code: 'unknown_purpose',
    path: '/purpose',
  },
  {
    name: 'consent on an unknown channel',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.taken, purpose: 'commercial-email', channel: 'pigeon', action: 'grant' }),
    code: 'unknown_channel',
    path: '/channel',
  },
  {
    name: 'consent on a channel the purpose does not use',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.taken, purpose: 'commercial-email', channel: 'sms', action: 'grant' }),
    code: 'channel_not_in_purpose',
    path: '/channel',
  },
  {
    name: 'consent naming no contact',
    method: 'POST',
    url: '/v1/consents',
    body: { purpose: 'commercial-email', channel: 'email', action: 'grant' },
    code: 'validation_failed',
    path: '/contactId',
  },
  {
    name: 'consent with a malformed contactId',
    method: 'POST',
    url: '/v1/consents',
    body: { contactId: 'abc', purpose: 'commercial-email', channel: 'email', action: 'grant' },
    code: 'validation_failed',
    path: '/body/contactId',
  },
  {
    name: 'consent for an unknown contact',
    method: 'POST',
    url: '/v1/consents',
    body: { contactId: UNKNOWN_ID, purpose: 'commercial-email', channel: 'email', action: 'grant' },
    code: 'contact_not_found',
    path: '/contactId',
  },
  {
    name: 'consent by an invalid email',
    method: 'POST',
    url: '/v1/consents',
    body: { email: 'nobody@@example.com', purpose: 'commercial-email', channel: 'email', action: 'grant' },
    code: 'invalid_email',
    path: '/email',
  },
  {
    name: 'consent for an erased contact',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.erased, purpose: 'commercial-email', channel: 'email', action: 'grant' }),
    code: 'contact_erased',
  },
  {
    name: 'consent with occurredAt in the future',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({
      contactId: f.taken,
      purpose: 'commercial-email',
      channel: 'email',
      action: 'grant',
      occurredAt: '2027-01-01T00:00:00Z',
    }),
    code: 'occurred_in_future',
    path: '/occurredAt',
  },
  {
    name: 'consent with occurredAt that is not a date-time',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.taken, purpose: 'commercial-email', channel: 'email', action: 'grant', occurredAt: 'last tuesday' }),
    code: 'validation_failed',
    path: '/body/occurredAt',
  },
  {
    name: 'consent with the reserved "system" source',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.taken, purpose: 'commercial-email', channel: 'email', action: 'grant', source: { type: 'system' } }),
    code: 'validation_failed',
    path: '/body/source/type',
  },
  {
    name: 'consent with an unknown evidence field',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({
      contactId: f.taken,
      purpose: 'commercial-email',
      channel: 'email',
      action: 'grant',
      evidence: { ip: '192.0.2.1', mood: 'happy' },
    }),
    code: 'validation_failed',
    path: '/body/evidence/mood',
  },
  {
    name: 'confirm without a pending consent',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.taken, purpose: 'commercial-email', channel: 'email', action: 'confirm' }),
    code: 'nothing_to_confirm',
    path: '/action',
  },
  // The contact would be created by email inside the transaction: the rollback must take it away.
  {
    name: 'confirm without a pending consent for a new email',
    method: 'POST',
    url: '/v1/consents',
    body: { email: 'brand.new@example.com', purpose: 'commercial-email', channel: 'email', action: 'confirm' },
    code: 'nothing_to_confirm',
  },
  {
    name: 'consent idempotency key holding a NUL character',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.taken, purpose: 'commercial-email', channel: 'email', action: 'grant', idempotencyKey: 'k\u00001' }),
    code: 'validation_failed',
    path: '/body/idempotencyKey',
  },
  {
    name: 'consent source ref holding a NUL character',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({
      contactId: f.taken,
      purpose: 'commercial-email',
      channel: 'email',
      action: 'grant',
      source: { type: 'form', ref: 'signup\u0000@1' },
    }),
    code: 'validation_failed',
    path: '/body/source/ref',
  },
  {
    name: 'idempotency key reused with another body',
    method: 'POST',
    url: '/v1/consents',
    body: (f) => ({ contactId: f.taken, purpose: 'commercial-sms', channel: 'sms', action: 'refuse', idempotencyKey: 'fixture-idem-1' }),
    code: 'idempotency_conflict',
    path: '/idempotencyKey',
  },

  // --- /v1/purposes ---
  {
    name: 'purpose key with a space',
    method: 'POST',
    url: '/v1/purposes',
    body: { key: 'my purpose', title: { fr: 'Ma finalité' }, channels: ['email'] },
    code: 'validation_failed',
    path: '/body/key',
  },
  {
    name: 'purpose key in upper case',
    method: 'POST',
    url: '/v1/purposes',
    body: { key: 'Newsletter', title: { fr: 'Lettre' }, channels: ['email'] },
    code: 'validation_failed',
    path: '/body/key',
  },
  {
    name: 'purpose without a title',
    method: 'POST',
    url: '/v1/purposes',
    body: { key: 'untitled', channels: ['email'] },
    code: 'validation_failed',
    path: '/body/title',
  },
  {
    name: 'purpose with an empty title',
    method: 'POST',
    url: '/v1/purposes',
    body: { key: 'untitled', title: {}, channels: ['email'] },
    code: 'validation_failed',
    path: '/body/title',
  },
  {
    name: 'purpose without channels',
    method: 'POST',
    url: '/v1/purposes',
    body: { key: 'nochannel', title: { fr: 'Rien' }, channels: [] },
    code: 'validation_failed',
    path: '/body/channels',
  },
  {
    name: 'purpose with an unknown channel',
    method: 'POST',
    url: '/v1/purposes',
    body: { key: 'pigeons', title: { fr: 'Pigeons' }, channels: ['email', 'pigeon'] },
    code: 'unknown_channel',
    path: '/channels/1',
  },
  {
    name: 'purpose with double opt-in but no email channel',
    method: 'POST',
    url: '/v1/purposes',
    body: { key: 'sms-doi', title: { fr: 'SMS' }, channels: ['sms'], doubleOptIn: true },
    code: 'double_opt_in_requires_email',
    path: '/doubleOptIn',
  },
  {
    name: 'purpose with an unknown legal basis',
    method: 'POST',
    url: '/v1/purposes',
    body: { key: 'vibes', title: { fr: 'Vibes' }, channels: ['email'], legalBasis: 'because' },
    code: 'validation_failed',
    path: '/body/legalBasis',
  },
  {
    name: 'purpose with a non-http info URL',
    method: 'POST',
    url: '/v1/purposes',
    body: { key: 'ftp-info', title: { fr: 'FTP' }, channels: ['email'], infoUrl: 'ftp://example.com/x' },
    code: 'validation_failed',
    path: '/body/infoUrl',
  },
  {
    name: 'purpose with expiry of zero days',
    method: 'POST',
    url: '/v1/purposes',
    body: { key: 'instant', title: { fr: 'Instant' }, channels: ['email'], expiry: { afterDays: 0 } },
    code: 'validation_failed',
    path: '/body/expiry/afterDays',
  },
  {
    name: 'purpose whose key exists',
    method: 'POST',
    url: '/v1/purposes',
    body: { key: 'commercial-email', title: { fr: 'Encore' }, channels: ['email'] },
    code: 'key_exists',
  },
  {
    name: 'built-in purpose channels change',
    method: 'PATCH',
    url: '/v1/purposes/commercial-email',
    body: { channels: ['email', 'sms'] },
    code: 'builtin_locked',
    path: '/channels',
  },
  {
    name: 'double opt-in turned on for an SMS-only purpose',
    method: 'PATCH',
    url: '/v1/purposes/commercial-sms',
    body: { doubleOptIn: true },
    code: 'double_opt_in_requires_email',
    path: '/doubleOptIn',
  },
  {
    name: 'legal basis switched after a withdrawal',
    method: 'PATCH',
    url: '/v1/purposes/switch-basis',
    body: { legalBasis: 'legitimate_interest' },
    code: 'basis_switch_forbidden',
    path: '/legalBasis',
  },
  {
    name: 'patch of an unknown purpose',
    method: 'PATCH',
    url: '/v1/purposes/no-such-purpose',
    body: { title: { fr: 'X' } },
    code: 'not_found',
  },
  {
    name: 'purpose patch with an unknown field',
    method: 'PATCH',
    url: '/v1/purposes/switch-basis',
    body: { colour: 'red' },
    code: 'validation_failed',
    path: '/body/colour',
  },

  // --- /v1/channels ---
  {
    name: 'channel key with a space',
    method: 'POST',
    url: '/v1/channels',
    body: { key: 'post al', kind: 'postal', names: { fr: 'Courrier' } },
    code: 'validation_failed',
    path: '/body/key',
  },
  {
    name: 'channel of an unknown kind',
    method: 'POST',
    url: '/v1/channels',
    body: { key: 'fax', kind: 'fax', names: { fr: 'Fax' } },
    code: 'validation_failed',
    path: '/body/kind',
  },
  {
    name: 'channel without names',
    method: 'POST',
    url: '/v1/channels',
    body: { key: 'postal', kind: 'postal' },
    code: 'validation_failed',
    path: '/body/names',
  },
  {
    name: 'channel whose key exists',
    method: 'POST',
    url: '/v1/channels',
    body: { key: 'email', kind: 'email', names: { fr: 'Courriel' } },
    code: 'key_exists',
  },
  { name: 'built-in channel kind change', method: 'PATCH', url: '/v1/channels/email', body: { kind: 'sms' }, code: 'builtin_locked' },
  {
    name: 'patch of an unknown channel',
    method: 'PATCH',
    url: '/v1/channels/pigeon',
    body: { names: { fr: 'Pigeon' } },
    code: 'not_found',
  },
  {
    name: 'channel patch with a key holding a space',
    method: 'PATCH',
    url: '/v1/channels/bad%20key',
    body: { names: { fr: 'X' } },
    code: 'validation_failed',
    path: '/params/key',
  },

  // --- /v1/fields ---
  {
    name: 'field of an unknown type',
    method: 'POST',
    url: '/v1/fields',
    body: { key: 'shoeSize', type: 'integer', purpose: 'commercial-email', retentionDays: 365 },
    code: 'validation_failed',
    path: '/body/type',
  },
  {
    name: 'field for an unknown purpose',
    method: 'POST',
    url: '/v1/fields',
    body: { key: 'shoeSize', type: 'number', purpose: 'no-such-purpose', retentionDays: 365 },
    code: 'unknown_purpose',
  },
  {
    name: 'field without retention',
    method: 'POST',
    url: '/v1/fields',
    body: { key: 'shoeSize', type: 'number', purpose: 'commercial-email' },
    code: 'validation_failed',
    path: '/body/retentionDays',
  },
  {
    name: 'field with a fractional retention',
    method: 'POST',
    url: '/v1/fields',
    body: { key: 'shoeSize', type: 'number', purpose: 'commercial-email', retentionDays: 1.5 },
    code: 'validation_failed',
    path: '/body/retentionDays',
  },
  {
    name: 'field named like a built-in contact field',
    method: 'POST',
    url: '/v1/fields',
    body: { key: 'email', type: 'string', purpose: 'commercial-email', retentionDays: 365 },
    code: 'key_exists',
    path: '/key',
  },
  {
    name: 'field declared twice',
    method: 'POST',
    url: '/v1/fields',
    body: { key: 'loyaltyPoints', type: 'number', purpose: 'commercial-email', retentionDays: 365 },
    code: 'key_exists',
  },

  // --- /v1/decisions ---
  {
    name: 'decision without purpose',
    method: 'GET',
    url: (f) => `/v1/decisions?contactId=${f.taken}&channel=email`,
    code: 'validation_failed',
    path: '/querystring/purpose',
  },
  {
    name: 'decision naming no contact',
    method: 'GET',
    url: '/v1/decisions?purpose=commercial-email&channel=email',
    code: 'validation_failed',
    path: '/contactId',
  },
  {
    name: 'decision for an unknown purpose',
    method: 'GET',
    url: (f) => `/v1/decisions?contactId=${f.taken}&purpose=no-such-purpose&channel=email`,
    code: 'unknown_purpose',
    path: '/purpose',
  },
  {
    name: 'decision on an unknown channel',
    method: 'GET',
    url: (f) => `/v1/decisions?contactId=${f.taken}&purpose=commercial-email&channel=pigeon`,
    code: 'unknown_channel',
    path: '/channel',
  },
  {
    name: 'decision by an invalid email',
    method: 'GET',
    url: '/v1/decisions?email=nobody&purpose=commercial-email&channel=email',
    code: 'invalid_email',
    path: '/email',
  },
  {
    name: 'decision by an invalid phone',
    method: 'GET',
    url: '/v1/decisions?phone=12&purpose=commercial-sms&channel=sms',
    code: 'invalid_phone',
    path: '/phone',
  },
  {
    name: 'decision at a time that is not a date-time',
    method: 'GET',
    url: (f) => `/v1/decisions?contactId=${f.taken}&purpose=commercial-email&channel=email&at=tomorrow`,
    code: 'validation_failed',
    path: '/querystring/at',
  },
  {
    name: 'decision with an unknown query parameter',
    method: 'GET',
    url: (f) => `/v1/decisions?contactId=${f.taken}&purpose=commercial-email&channel=email&force=1`,
    code: 'validation_failed',
    path: '/querystring/force',
  },
  {
    name: 'decision batch without items',
    method: 'POST',
    url: '/v1/decisions',
    body: { items: [] },
    code: 'validation_failed',
    path: '/body/items',
  },
  {
    name: 'decision batch of 1,001 items',
    method: 'POST',
    url: '/v1/decisions',
    body: (f) => ({ items: Array.from({ length: 1001 }, () => ({ contactId: f.taken, purpose: 'commercial-email', channel: 'email' })) }),
    code: 'validation_failed',
    path: '/body/items',
  },
  {
    name: 'decision batch with an unknown purpose in item 1',
    method: 'POST',
    url: '/v1/decisions',
    body: (f) => ({
      items: [
        { contactId: f.taken, purpose: 'commercial-email', channel: 'email' },
        { contactId: f.taken, purpose: 'no-such-purpose', channel: 'email' },
      ],
    }),
    code: 'unknown_purpose',
    path: '/items/1/purpose',
  },

  // --- /v1/suppressions ---
  {
    name: 'suppression with an unknown reason',
    method: 'POST',
    url: '/v1/suppressions',
    body: { channel: 'email', email: 'x@example.com', reason: 'because' },
    code: 'validation_failed',
    path: '/body/reason',
  },
  {
    name: 'suppression on an unknown channel',
    method: 'POST',
    url: '/v1/suppressions',
    body: { channel: 'pigeon', email: 'x@example.com', reason: 'unsubscribed' },
    code: 'unknown_channel',
  },
  {
    name: 'suppression of an invalid email',
    method: 'POST',
    url: '/v1/suppressions',
    body: { channel: 'email', email: 'x@', reason: 'unsubscribed' },
    code: 'invalid_email',
    path: '/email',
  },
  {
    name: 'SMS suppression without a phone',
    method: 'POST',
    url: '/v1/suppressions',
    body: { channel: 'sms', email: 'x@example.com', reason: 'unsubscribed' },
    code: 'invalid_phone',
    path: '/phone',
  },
  {
    name: 'suppression on a channel without addresses',
    method: 'POST',
    url: '/v1/suppressions',
    body: { channel: 'web', email: 'x@example.com', reason: 'unsubscribed' },
    code: 'no_address_for_channel',
  },

  // --- routes that do not exist ---
  { name: 'unknown route', method: 'GET', url: '/v1/nothing-here', code: 'route_not_found' },
  {
    name: 'unknown method on a known path',
    method: 'PUT',
    url: '/v1/contacts',
    body: { email: 'put@example.com' },
    code: 'route_not_found',
  },
];

describe.each(dialects)('bad input on %s', (dialect) => {
  let t: TestApp;
  let fixtures: Fixtures;
  let before: Record<string, number>;

  beforeAll(async () => {
    t = await buildTestApp(dialect);
    const field = await t.call('POST', '/v1/fields', {
      body: { key: 'loyaltyPoints', type: 'number', purpose: 'commercial-email', retentionDays: 730 },
    });
    expect(field.statusCode).toBe(201);
    const dateField = await t.call('POST', '/v1/fields', {
      body: { key: 'memberSince', type: 'date', purpose: 'commercial-email', retentionDays: 730 },
    });
    expect(dateField.statusCode).toBe(201);
    const taken = await createContact(t, { email: TAKEN_EMAIL, phone: TAKEN_PHONE });
    const other = await createContact(t, { email: 'other@example.com' });
    const erased = await createContact(t, { email: 'erased@example.com' });
    expect((await t.call('DELETE', `/v1/contacts/${erased.id}`)).statusCode).toBe(204);

    // A purpose someone withdrew from: its legal basis may no longer switch.
    const purpose = await t.call('POST', '/v1/purposes', { body: { key: 'switch-basis', title: { fr: 'Bascule' }, channels: ['email'] } });
    expect(purpose.statusCode).toBe(201);
    await record(t, { contactId: taken.id, purpose: 'switch-basis', channel: 'email', action: 'grant' });
    await record(t, { contactId: taken.id, purpose: 'switch-basis', channel: 'email', action: 'withdraw' });
    // An idempotency key already used with one body.
    await record(t, { contactId: taken.id, purpose: 'commercial-sms', channel: 'sms', action: 'grant', idempotencyKey: 'fixture-idem-1' });

    fixtures = { taken: taken.id, other: other.id, erased: erased.id };
    before = await rowCounts(t);
    // The snapshot is meaningful: the fixtures are in it.
    expect(before).toMatchObject({ contacts: 3, fields: 2, consent_events: 3 });
    expect(before.suppressions).toBeGreaterThan(0);
  });
  afterAll(async () => t?.close());

  it('has at least 30 distinct malformed requests', () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(cases)('$name → 4xx $code', async (c) => {
    const url = typeof c.url === 'function' ? c.url(fixtures) : c.url;
    const body = typeof c.body === 'function' ? (c.body as (f: Fixtures) => unknown)(fixtures) : c.body;
    const res = await t.call(c.method, url, { ...(body !== undefined ? { body } : {}), ...(c.headers ? { headers: c.headers } : {}) });

    const expected = problemCodes[c.code].status;
    expect({ status: res.statusCode, body: res.body.slice(0, 500) }).toMatchObject({ status: expected });
    expect(res.statusCode).toBeGreaterThanOrEqual(400);
    expect(res.statusCode).toBeLessThan(500);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);

    const problem = res.json();
    expect(problem).toMatchObject({ code: c.code, status: res.statusCode, type: `urn:assent:problem:${c.code}` });
    expect(typeof problem.title).toBe('string');
    expect(problem.title.length).toBeGreaterThan(0);
    expect(typeof problem.detail).toBe('string');
    expect(problem.detail.length).toBeGreaterThan(0);
    if (c.path !== undefined) {
      expect(Array.isArray(problem.errors)).toBe(true);
      const paths = (problem.errors as Array<{ path: string; message: string }>).map((e) => e.path);
      expect(paths).toContain(c.path);
      for (const e of problem.errors) expect(typeof e.message).toBe('string');
    }
  });

  it('leaves the row count of every table unchanged after all of them', async () => {
    expect(await rowCounts(t)).toEqual(before);
    // The store still works: the same requests made valid do write.
    const ok = await t.call('POST', '/v1/contacts', { body: { email: 'brand.new@example.com' } });
    expect(ok.statusCode).toBe(201);
    expect((await rowCounts(t)).contacts).toBe((before.contacts ?? 0) + 1);
  });
});

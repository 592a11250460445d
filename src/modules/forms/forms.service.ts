// Forms: versioned definitions, the markup they show (hashed and kept as proof), the hosted page's
// stateless CSRF token, and submissions — the contact and one consent event per ticked box, in
// one transaction.
import { createHmac } from 'node:crypto';
import type { Executor } from '../../database.ts';
import type { Lang } from '../../pages/i18n.ts';
import { renderPage } from '../../pages/render.ts';
import { addressKindFor, normalizeEmail, normalizePhone } from '../../platform/addresses.ts';
import { iso } from '../../platform/clock.ts';
import { type AppContext, cached, invalidate, type RequestContext } from '../../platform/context.ts';
import { safeEqual, sha256Hex } from '../../platform/crypto.ts';
import { DomainError, type FieldError, type ProblemCode } from '../../platform/errors.ts';
import { listChannels } from '../channels/index.ts';
import { recordConsents } from '../consents/index.ts';
import {
  type ContactsTable,
  findContactRowByAddress,
  newContactRow,
  storeContactPatch,
  storeNewContact,
  touchInteractionRows,
} from '../contacts/index.ts';
import { listPurposes, localized } from '../purposes/index.ts';
import { addressHash } from '../suppressions/index.ts';
import { type FormRow, findFormRow, insertFormRow, insertRenderRow, listFormRows, updateFormRow } from './forms.repository.ts';
import type { FormField } from './forms.schema.ts';

export interface FormPurpose {
  purpose: string;
  channels: string[];
}

export interface FormDefinition {
  title: string;
  locale: Lang;
  fields: FormField[];
  purposes: FormPurpose[];
  termsUrl: string | null;
  redirectUrl: string | null;
  allowedOrigins: string[];
}

export interface Form extends FormDefinition {
  key: string;
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface FormInput {
  key?: string;
  title: string;
  locale: Lang;
  fields: FormField[];
  purposes: FormPurpose[];
  termsUrl?: string | null;
  redirectUrl?: string | null;
  allowedOrigins?: string[];
}

const CSRF_TTL_SECONDS = 2 * 3600;
const CSRF_SKEW_SECONDS = 300;
const NAME_MAX = 100;
const MAX_CONSENTS = 50;

const toForm = (row: FormRow): Form => {
  const d = JSON.parse(row.definition) as FormDefinition;
  return {
    key: row.key,
    version: row.version,
    title: d.title,
    locale: d.locale,
    fields: d.fields,
    purposes: d.purposes,
    termsUrl: d.termsUrl ?? null,
    redirectUrl: d.redirectUrl ?? null,
    allowedOrigins: d.allowedOrigins ?? [],
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
};

export const formUrl = (ctx: AppContext, key: string) => `${ctx.config.publicUrl}/f/${encodeURIComponent(key)}`;

/** What the API shows of a form: its definition and where it lives. */
export const presentForm = (ctx: AppContext, form: Form) => ({
  ...form,
  links: { hosted: formUrl(ctx, form.key), embedScript: `${formUrl(ctx, form.key)}/embed.js` },
});

function originOf(url: string): string | undefined {
  try {
    const origin = new URL(url).origin;
    return origin === 'null' ? undefined : origin;
  } catch {
    return undefined;
  }
}

/** Our own origin (PUBLIC_URL) and the form's allowed origins. */
export function originAllowed(ctx: AppContext, allowedOrigins: string[], origin: string): boolean {
  return origin === originOf(ctx.config.publicUrl) || allowedOrigins.includes(origin);
}

const redirectAllowed = (ctx: AppContext, allowedOrigins: string[], url: string) => {
  const origin = originOf(url);
  return origin !== undefined && originAllowed(ctx, allowedOrigins, origin);
};

/** A form's redirect, only while its origin is still allowed. */
export const allowedRedirect = (ctx: AppContext, form: Form): string | undefined =>
  form.redirectUrl && redirectAllowed(ctx, form.allowedOrigins, form.redirectUrl) ? form.redirectUrl : undefined;

type CodedError = FieldError & { code: ProblemCode };

function refuse(errors: CodedError[]): never {
  const first = errors[0] as CodedError;
  throw new DomainError(
    first.code,
    errors.map((e) => `${e.path} ${e.message}`).join('; '),
    errors.map(({ path, message }) => ({ path, message })),
  );
}

/** The rules a definition follows beyond its schema: known purposes and channels, addresses, origins. */
async function checkDefinition(ctx: AppContext, input: FormInput): Promise<FormDefinition> {
  const errors: CodedError[] = [];
  if (!input.fields.includes('email') && !input.fields.includes('phone')) {
    errors.push({ code: 'address_field_required', path: '/fields', message: 'must include "email" or "phone"' });
  }
  const purposes = new Map((await listPurposes(ctx)).map((p) => [p.key, p]));
  const channels = new Map((await listChannels(ctx)).map((c) => [c.key, c]));
  const seen = new Set<string>();
  for (const [i, entry] of input.purposes.entries()) {
    const path = `/purposes/${i}`;
    const purpose = purposes.get(entry.purpose);
    if (seen.has(entry.purpose)) {
      errors.push({ code: 'validation_failed', path: `${path}/purpose`, message: 'appears twice: list its channels once' });
      continue;
    }
    seen.add(entry.purpose);
    if (!purpose) {
      errors.push({ code: 'unknown_purpose', path: `${path}/purpose`, message: `there is no purpose "${entry.purpose}"` });
      continue;
    }
    for (const [j, key] of entry.channels.entries()) {
      const at = `${path}/channels/${j}`;
      const channel = channels.get(key);
      if (!channel) errors.push({ code: 'unknown_channel', path: at, message: `there is no channel "${key}"` });
      else if (!purpose.channels.includes(key)) {
        errors.push({
          code: 'channel_not_in_purpose',
          path: at,
          message: `not one of ${purpose.key}'s channels (${purpose.channels.join(', ')})`,
        });
      } else {
        const kind = addressKindFor(channel.kind);
        if (kind && !input.fields.includes(kind)) {
          errors.push({ code: 'field_required_for_channel', path: at, message: `needs "${kind}" among the form's fields` });
        }
      }
    }
  }
  const allowedOrigins = input.allowedOrigins ?? [];
  for (const [i, origin] of allowedOrigins.entries()) {
    if (originOf(origin) !== origin) {
      errors.push({
        code: 'validation_failed',
        path: `/allowedOrigins/${i}`,
        message: 'must be an origin as browsers send it, e.g. https://shop.example (lower case, no path, no default port)',
      });
    }
  }
  if (input.redirectUrl && !redirectAllowed(ctx, allowedOrigins, input.redirectUrl)) {
    errors.push({
      code: 'redirect_not_allowed',
      path: '/redirectUrl',
      message: `must be on ${originOf(ctx.config.publicUrl)} or one of allowedOrigins`,
    });
  }
  if (errors.length > 0) refuse(errors);
  return {
    title: input.title,
    locale: input.locale,
    fields: input.fields,
    purposes: input.purposes.map((p) => ({ purpose: p.purpose, channels: p.channels })),
    termsUrl: input.termsUrl ?? null,
    redirectUrl: input.redirectUrl ?? null,
    allowedOrigins,
  };
}

export async function listForms(ctx: AppContext): Promise<Form[]> {
  return (await listFormRows(ctx.db.kysely)).map(toForm);
}

/** A form by key, through the short-lived configuration cache (public pages read it on every hit). */
export async function requireForm(ctx: AppContext, key: string): Promise<Form> {
  const form = await cached(ctx, `form:${key}`, async () => {
    const row = await findFormRow(ctx.db.kysely, key);
    return row ? toForm(row) : null;
  });
  if (!form) throw new DomainError('form_not_found', `There is no form "${key}"`);
  return form;
}

export async function createForm(ctx: AppContext, input: FormInput & { key: string }): Promise<Form> {
  const definition = await checkDefinition(ctx, input);
  const now = iso(ctx.clock.now());
  const row: FormRow = { key: input.key, version: 1, definition: JSON.stringify(definition), created_at: now, updated_at: now };
  if ((await insertFormRow(ctx.db.kysely, row)) === 0) {
    throw new DomainError('key_exists', `A form "${input.key}" exists already: PUT /v1/forms/${input.key} changes it`, [
      { path: '/key', message: 'already taken' },
    ]);
  }
  invalidate(ctx, `form:${input.key}`);
  return toForm(row);
}

/** Replaces a form's definition: every call makes a new version. */
export async function updateForm(ctx: AppContext, key: string, input: FormInput): Promise<Form> {
  if (input.key !== undefined && input.key !== key) {
    throw new DomainError('validation_failed', 'The key in the body is not the key in the path', [
      { path: '/body/key', message: `must be "${key}"` },
    ]);
  }
  const definition = JSON.stringify(await checkDefinition(ctx, input));
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const current = await findFormRow(ctx.db.kysely, key);
    if (!current) throw new DomainError('form_not_found', `There is no form "${key}": POST /v1/forms creates it`);
    const patch = { version: current.version + 1, definition, updated_at: iso(ctx.clock.now()) };
    if ((await updateFormRow(ctx.db.kysely, key, current.version, patch)) === 1) {
      invalidate(ctx, `form:${key}`);
      return toForm({ ...current, ...patch });
    }
  }
  throw new DomainError('form_changed', 'The form is being changed by someone else: try again');
}

export async function getForm(ctx: AppContext, key: string): Promise<Form> {
  const row = await findFormRow(ctx.db.kysely, key);
  if (!row) throw new DomainError('form_not_found', `There is no form "${key}"`);
  return toForm(row);
}

// --- What the form shows ---------------------------------------------------------------------

export interface Choice {
  /** `<purpose>:<channel>`, the value of the box. */
  value: string;
  purpose: string;
  channel: string;
  title: string;
  description: string;
  infoUrl: string | null;
  channelName: string;
  /** Which address the channel reaches: a ticked box needs it. */
  address: 'email' | 'phone' | undefined;
}

/** The boxes a form offers, with the current wording in the page's language. */
export async function formChoices(ctx: AppContext, form: Form, lang: Lang): Promise<Choice[]> {
  const purposes = new Map((await listPurposes(ctx)).map((p) => [p.key, p]));
  const channels = new Map((await listChannels(ctx)).map((c) => [c.key, c]));
  const choices: Choice[] = [];
  for (const entry of form.purposes) {
    const purpose = purposes.get(entry.purpose);
    if (!purpose) continue;
    for (const key of entry.channels) {
      const channel = channels.get(key);
      // A purpose that stopped using a channel since the form was saved no longer offers it.
      if (!channel || !purpose.channels.includes(key)) continue;
      choices.push({
        value: `${purpose.key}:${key}`,
        purpose: purpose.key,
        channel: key,
        title: localized(purpose.title, lang),
        description: localized(purpose.description, lang),
        infoUrl: purpose.infoUrl,
        channelName: localized(channel.names, lang) || key,
        address: addressKindFor(channel.kind),
      });
    }
  }
  return choices;
}

const fieldSpecs: Record<FormField, { type: string; autocomplete: string; maxLength: number }> = {
  email: { type: 'email', autocomplete: 'email', maxLength: 254 },
  phone: { type: 'tel', autocomplete: 'tel', maxLength: 40 },
  firstName: { type: 'text', autocomplete: 'given-name', maxLength: NAME_MAX },
  lastName: { type: 'text', autocomplete: 'family-name', maxLength: NAME_MAX },
};

/** Email is required when asked; phone when it is the only address asked. */
const isRequired = (form: Pick<Form, 'fields'>, field: FormField) =>
  field === 'email' || (field === 'phone' && !form.fields.includes('email'));

export interface Markup {
  /** The visible form, exactly as inserted in the page: what the hash proves. */
  markup: string;
  hash: string;
  lang: Lang;
  choices: Choice[];
}

/**
 * Renders the visible form (heading, fields, boxes with their wording, terms, button). It holds
 * nothing that changes per request, so the same form, version, wording and language always give
 * the same bytes and the same hash; the per-request hidden inputs live outside it.
 */
export async function renderMarkup(ctx: AppContext, form: Form, lang: Lang, embed: boolean): Promise<Markup> {
  const choices = await formChoices(ctx, form, lang);
  const fields = form.fields.map((name) => ({ name, labelKey: `field_${name}`, required: isRequired(form, name), ...fieldSpecs[name] }));
  const action = `/f/${encodeURIComponent(form.key)}?lang=${lang}${embed ? '&embed=1' : ''}`;
  const markup = (
    await renderPage(ctx, 'form-markup', { form: { title: form.title, termsUrl: form.termsUrl }, fields, choices, action }, { lang })
  ).trim();
  return { markup, hash: sha256Hex(markup), lang, choices };
}

/** Stores the markup under its hash once (a process remembers what it already stored). */
async function storeRender(ctx: AppContext, db: Executor, form: Form, shown: Markup): Promise<() => void> {
  const cacheKey = `form-render:${shown.hash}`;
  const remember = () => ctx.cache.set(cacheKey, { at: Number.MAX_SAFE_INTEGER / 2, value: true });
  if (ctx.cache.has(cacheKey)) return remember;
  await insertRenderRow(db, {
    hash: shown.hash,
    form_key: form.key,
    form_version: form.version,
    html: shown.markup,
    created_at: iso(ctx.clock.now()),
  });
  return remember;
}

// --- The hosted page's CSRF token --------------------------------------------------------------
// Stateless: `<version>.<issued at, unix s>.<HMAC of key, version, issue time, markup hash, page URL>`.
// No cookie, so it works inside a third-party iframe; valid two hours.

const csrfMac = (secret: string, key: string, version: number, issuedAt: number, hash: string, pageUrl: string) =>
  createHmac('sha256', secret).update(`form-csrf\n${key}\n${version}\n${issuedAt}\n${hash}\n${pageUrl}`).digest('base64url');

export function issueCsrf(ctx: AppContext, form: Form, hash: string, pageUrl: string): string {
  const issuedAt = Math.floor(ctx.clock.now().getTime() / 1000);
  return `${form.version}.${issuedAt}.${csrfMac(ctx.secret, form.key, form.version, issuedAt, hash, pageUrl)}`;
}

export type CsrfCheck = { ok: true; version: number } | { ok: false; reason: 'missing' | 'invalid' | 'expired' };

export function checkCsrf(ctx: AppContext, key: string, token: string | undefined, hash: string | undefined, pageUrl: string): CsrfCheck {
  if (!token || !hash) return { ok: false, reason: 'missing' };
  const match = /^(\d{1,9})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!match) return { ok: false, reason: 'invalid' };
  const version = Number(match[1]);
  const issuedAt = Number(match[2]);
  if (!safeEqual(match[3] as string, csrfMac(ctx.secret, key, version, issuedAt, hash, pageUrl))) return { ok: false, reason: 'invalid' };
  const now = Math.floor(ctx.clock.now().getTime() / 1000);
  if (issuedAt > now + CSRF_SKEW_SECONDS) return { ok: false, reason: 'invalid' };
  if (now - issuedAt > CSRF_TTL_SECONDS) return { ok: false, reason: 'expired' };
  return { ok: true, version };
}

/** An http(s) URL, as given, or undefined. */
function httpUrl(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2000) return undefined;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? value : undefined;
  } catch {
    return undefined;
  }
}

export interface FormPage {
  markup: string;
  htmlHash: string;
  csrf: string;
  pageUrl: string;
}

/**
 * Everything the hosted (or embedded) page needs. The page URL recorded as evidence is the page
 * the person is on: for an embed, the host page (as embed.js or the Referer tells it, when its
 * origin is allowed), else our own URL.
 */
export async function showForm(
  ctx: AppContext,
  form: Form,
  request: { lang: Lang; embed: boolean; page?: string | undefined; referer?: string | undefined; path: string },
): Promise<FormPage> {
  const shown = await renderMarkup(ctx, form, request.lang, request.embed);
  (await storeRender(ctx, ctx.db.kysely, form, shown))();
  const hostPage = (value: string | undefined) => {
    const url = httpUrl(value);
    const origin = url && originOf(url);
    return origin && form.allowedOrigins.includes(origin) ? url : undefined;
  };
  const own = `${ctx.config.publicUrl}${request.path}`;
  const pageUrl =
    (request.embed ? (hostPage(request.page) ?? hostPage(request.referer)) : undefined) ??
    (own.length <= 2000 ? own : formUrl(ctx, form.key));
  return { markup: shown.markup, htmlHash: shown.hash, csrf: issueCsrf(ctx, form, shown.hash, pageUrl), pageUrl };
}

// --- Submissions -----------------------------------------------------------------------------

/** Why a submission is refused, one word per problem: the page says each in the person's language. */
export type IssueReason =
  | 'email_missing'
  | 'email_invalid'
  | 'phone_missing'
  | 'phone_invalid'
  | 'phone_for_choice'
  | 'unknown_field'
  | 'invalid'
  | 'too_long'
  | 'unknown_choice'
  | 'terms';

export interface Issue extends CodedError {
  reason: IssueReason;
}

/** A refused submission: a DomainError (for problem+json) that keeps each issue's reason (for the page). */
export class SubmissionRefused extends DomainError {
  readonly issues: Issue[];
  constructor(issues: Issue[]) {
    const first = issues[0] as Issue;
    super(
      first.code,
      issues.map((i) => `${i.path} ${i.message}`).join('; '),
      issues.map(({ path, message }) => ({ path, message })),
    );
    this.issues = issues;
  }
}

interface RawSubmission {
  values: Partial<Record<FormField, string>>;
  consents: Array<{ value: string; path: string }>;
  terms: boolean;
  pageUrl?: string;
  issues: Issue[];
}

const unknownField = (name: string): Issue => ({
  code: 'validation_failed',
  reason: 'unknown_field',
  path: `/${name.slice(0, 64)}`,
  message: 'is not a field of this form',
});

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

const HOSTED_CONTROLS = new Set(['csrf', 'htmlHash', 'pageUrl']);

/** The hosted page's urlencoded body: text inputs, `consent` boxes (repeated), `terms`, hidden inputs. */
function readHosted(form: Form, body: Record<string, unknown>): RawSubmission {
  const raw: RawSubmission = { values: {}, consents: [], terms: false, issues: [] };
  for (const [name, value] of Object.entries(body)) {
    if (HOSTED_CONTROLS.has(name)) continue;
    if (name === 'consent') {
      for (const v of ([] as unknown[]).concat(value)) raw.consents.push({ value: String(v), path: '/consent' });
    } else if (name === 'terms' && form.termsUrl) {
      raw.terms = ([] as unknown[]).concat(value).some((v) => typeof v === 'string' && v !== '');
    } else if ((form.fields as string[]).includes(name)) {
      if (typeof value !== 'string')
        raw.issues.push({ code: 'validation_failed', reason: 'invalid', path: `/${name}`, message: 'is given more than once' });
      else raw.values[name as FormField] = value;
    } else raw.issues.push(unknownField(name));
  }
  return raw;
}

/** The JSON body: `{ email, firstName, …, consents: ["purpose:channel"], terms?, pageUrl? }`. */
function readJson(form: Form, body: unknown): RawSubmission {
  const raw: RawSubmission = { values: {}, consents: [], terms: false, issues: [] };
  if (!isRecord(body)) {
    raw.issues.push({ code: 'validation_failed', reason: 'invalid', path: '/', message: 'must be a JSON object' });
    return raw;
  }
  for (const [name, value] of Object.entries(body)) {
    if (name === 'consents') {
      if (!Array.isArray(value) || value.length > MAX_CONSENTS || value.some((v) => typeof v !== 'string')) {
        raw.issues.push({
          code: 'validation_failed',
          reason: 'invalid',
          path: '/consents',
          message: `must be an array of at most ${MAX_CONSENTS} "purpose:channel" strings`,
        });
      } else {
        for (const [i, v] of value.entries()) raw.consents.push({ value: v as string, path: `/consents/${i}` });
      }
    } else if (name === 'terms' && form.termsUrl) {
      if (typeof value !== 'boolean')
        raw.issues.push({ code: 'validation_failed', reason: 'invalid', path: '/terms', message: 'must be true or false' });
      else raw.terms = value;
    } else if (name === 'pageUrl') {
      if (typeof value !== 'string' || !httpUrl(value)) {
        raw.issues.push({
          code: 'validation_failed',
          reason: 'invalid',
          path: '/pageUrl',
          message: 'must be an http(s) URL of at most 2000 characters',
        });
      } else raw.pageUrl = value;
    } else if ((form.fields as string[]).includes(name)) {
      if (value === null) continue;
      if (typeof value !== 'string')
        raw.issues.push({ code: 'validation_failed', reason: 'invalid', path: `/${name}`, message: 'must be a string' });
      else raw.values[name as FormField] = value;
    } else raw.issues.push(unknownField(name));
  }
  return raw;
}

export interface Submission {
  email?: string;
  phone?: string;
  firstName?: string;
  lastName?: string;
  choices: Choice[];
}

/** Checks a submission against the form: its fields, its boxes, its terms. Refuses with every issue at once. */
function checkSubmission(ctx: AppContext, form: Form, choices: Choice[], raw: RawSubmission): Submission {
  const issues = [...raw.issues];
  const text = (field: FormField) => {
    const value = raw.values[field]?.trim();
    return value ? value : undefined;
  };
  const out: Submission = { choices: [] };
  const email = text('email');
  if (form.fields.includes('email')) {
    if (!email) issues.push({ code: 'validation_failed', reason: 'email_missing', path: '/email', message: 'is required' });
    else {
      const normalized = normalizeEmail(email);
      if (normalized) out.email = normalized;
      else issues.push({ code: 'invalid_email', reason: 'email_invalid', path: '/email', message: 'is not a valid email address' });
    }
  }
  const phone = text('phone');
  if (form.fields.includes('phone')) {
    if (phone) {
      const normalized = normalizePhone(phone, ctx.config.defaultRegion);
      if (normalized) out.phone = normalized;
      else
        issues.push({
          code: 'invalid_phone',
          reason: 'phone_invalid',
          path: '/phone',
          message: `is not a valid phone number (region ${ctx.config.defaultRegion} by default)`,
        });
    } else if (isRequired(form, 'phone'))
      issues.push({ code: 'validation_failed', reason: 'phone_missing', path: '/phone', message: 'is required' });
  }
  for (const field of ['firstName', 'lastName'] as const) {
    const value = text(field);
    if (value === undefined) continue;
    if (value.length > NAME_MAX)
      issues.push({ code: 'validation_failed', reason: 'too_long', path: `/${field}`, message: `must be at most ${NAME_MAX} characters` });
    else out[field] = value;
  }
  const offered = new Map(choices.map((c) => [c.value, c]));
  const ticked = new Set<string>();
  for (const { value, path } of raw.consents) {
    const choice = offered.get(value);
    if (!choice) {
      issues.push({
        code: 'consent_not_offered',
        reason: 'unknown_choice',
        path,
        message: `"${value.slice(0, 100)}" is not one of this form's boxes`,
      });
      continue;
    }
    if (ticked.has(value)) continue;
    ticked.add(value);
    out.choices.push(choice);
    if (choice.address === 'phone' && !phone) {
      issues.push({ code: 'no_address_for_channel', reason: 'phone_for_choice', path: '/phone', message: `is needed for "${value}"` });
    }
  }
  if (form.termsUrl && !raw.terms) {
    issues.push({ code: 'terms_not_accepted', reason: 'terms', path: '/terms', message: 'must be accepted to send this form' });
  }
  if (issues.length > 0) throw new SubmissionRefused(issues);
  return out;
}

export interface SubmissionRequest {
  lang: Lang;
  ip?: string | undefined;
  userAgent?: string | undefined;
  referer?: string | undefined;
}

export interface SubmissionResult {
  contactId: string;
  events: string[];
  /** `purpose:channel` left pending (double opt-in: a confirmation mail is queued). */
  pending: string[];
}

/** The hosted (or embedded) page's post: CSRF first, then the form as shown, then its content. */
export async function submitHostedForm(
  ctx: AppContext,
  req: RequestContext,
  form: Form,
  body: unknown,
  request: SubmissionRequest & { embed: boolean },
): Promise<SubmissionResult> {
  const fields = isRecord(body) ? body : {};
  const single = (name: string) => (typeof fields[name] === 'string' ? (fields[name] as string) : undefined);
  const pageUrl = single('pageUrl') ?? '';
  const csrf = checkCsrf(ctx, form.key, single('csrf'), single('htmlHash'), pageUrl);
  if (!csrf.ok) {
    throw new DomainError(
      'csrf_failed',
      csrf.reason === 'expired' ? 'The form was shown more than two hours ago' : `The form token is ${csrf.reason}`,
    );
  }
  // The person agrees to what was shown: the same version, and markup that renders the same today
  // (a purpose's wording may have changed since).
  if (csrf.version !== form.version)
    throw new DomainError('form_changed', `The form is at version ${form.version} now, it showed ${csrf.version}`);
  const shown = await renderMarkup(ctx, form, request.lang, request.embed);
  if (shown.hash !== single('htmlHash')) throw new DomainError('form_changed', 'The form’s wording or language changed since it was shown');
  const submission = checkSubmission(ctx, form, shown.choices, readHosted(form, fields));
  const evidence = {
    url: httpUrl(pageUrl) ?? httpUrl(request.referer) ?? formUrl(ctx, form.key),
    method: request.embed ? 'embedded form' : 'hosted form',
    htmlHash: shown.hash,
  };
  return write(ctx, req, form, submission, request, evidence, shown);
}

/** The JSON post (a site's own form or script): no CSRF, the Origin checked when a browser sends one. */
export async function submitJsonForm(
  ctx: AppContext,
  req: RequestContext,
  form: Form,
  body: unknown,
  request: SubmissionRequest & { origin?: string | undefined },
): Promise<SubmissionResult> {
  if (request.origin !== undefined && !originAllowed(ctx, form.allowedOrigins, request.origin)) {
    throw new DomainError('origin_not_allowed', `The origin ${request.origin.slice(0, 200)} may not post to the form "${form.key}"`);
  }
  const raw = readJson(form, body);
  const submission = checkSubmission(ctx, form, await formChoices(ctx, form, request.lang), raw);
  const evidence = {
    url: raw.pageUrl ?? httpUrl(request.referer) ?? (request.origin ? httpUrl(request.origin) : undefined) ?? formUrl(ctx, form.key),
    method: 'api form',
  };
  return write(ctx, req, form, submission, request, evidence);
}

const isUniqueViolation = (error: unknown) => {
  const e = error as { code?: string; message?: string };
  return e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_UNIQUE' || /UNIQUE constraint/.test(e.message ?? '');
};

async function write(
  ctx: AppContext,
  req: RequestContext,
  form: Form,
  submission: Submission,
  request: SubmissionRequest,
  evidence: { url: string; method: string; htmlHash?: string },
  shown?: Markup,
): Promise<SubmissionResult> {
  const source = { type: 'form', ref: `${form.key}@${form.version}` };
  const fullEvidence = {
    ...(request.ip ? { ip: request.ip } : {}),
    ...(request.userAgent ? { userAgent: request.userAgent.slice(0, 1000) } : {}),
    ...evidence,
    locale: request.lang,
  };
  const afterCommit: Array<() => void> = [];
  const attempt = () =>
    ctx.db.kysely.transaction().execute(async (trx) => {
      afterCommit.length = 0;
      const remember = shown ? await storeRender(ctx, trx, form, shown) : undefined;
      const contact = await resolveContact(ctx, trx, form, submission, request.lang);
      if (submission.choices.length === 0) return { contactId: contact.id, events: [], pending: [], remember };
      const results = await recordConsents(
        ctx,
        req,
        submission.choices.map((choice) => ({
          contactId: contact.id,
          purpose: choice.purpose,
          channel: choice.channel,
          action: 'grant' as const,
          source,
          evidence: fullEvidence,
        })),
        { within: { trx, afterCommit } },
      );
      return {
        contactId: contact.id,
        events: results.map((r) => r.event.id),
        pending: results.filter((r) => r.event.status === 'pending').map((r) => `${r.event.purpose}:${r.event.channel}`),
        remember,
      };
    });
  let outcome: Awaited<ReturnType<typeof attempt>>;
  try {
    outcome = await attempt();
  } catch (error) {
    // Two first submissions of one address raced (PostgreSQL): the loser now finds the contact.
    if (!isUniqueViolation(error)) throw error;
    outcome = await attempt();
  }
  const { remember, ...result } = outcome;
  remember?.();
  // The double opt-in mail was queued inside the transaction: send it now that it is committed.
  for (const then of afterCommit) then();
  return result;
}

/**
 * The contact a submission is about: by normalised email, then by phone (when that contact has no
 * other email), else a new one. Only empty fields of an existing contact are filled; a phone that
 * belongs to another contact is left there. A form is the person's own act: it counts as their
 * last interaction (RULES 16).
 */
async function resolveContact(ctx: AppContext, trx: Executor, form: Form, submission: Submission, lang: Lang): Promise<ContactsTable> {
  const now = iso(ctx.clock.now());
  const byEmail = submission.email ? await findContactRowByAddress(trx, { email: submission.email }) : undefined;
  const byPhone = submission.phone ? await findContactRowByAddress(trx, { phone: submission.phone }) : undefined;
  const found = byEmail ?? (byPhone && (!submission.email || !byPhone.email) ? byPhone : undefined);
  const phone = submission.phone && (!byPhone || byPhone.id === found?.id) ? submission.phone : undefined;

  if (!found) {
    const row = newContactRow(
      ctx,
      ctx.newId(),
      {
        ...(submission.firstName ? { firstName: submission.firstName } : {}),
        ...(submission.lastName ? { lastName: submission.lastName } : {}),
        locale: lang,
        source: `form:${form.key}`,
      },
      { ...(submission.email ? { email: submission.email } : {}), ...(phone ? { phone } : {}) },
      now,
    );
    row.last_interaction_at = now;
    // Announced (`contact.created`) in this transaction, as a contact made through the API is.
    await storeNewContact(ctx, trx, row);
    return row;
  }

  const patch: Partial<ContactsTable> = {};
  if (!found.first_name && submission.firstName) patch.first_name = submission.firstName;
  if (!found.last_name && submission.lastName) patch.last_name = submission.lastName;
  if (!found.locale) patch.locale = lang;
  if (!found.email && submission.email) {
    patch.email = submission.email;
    patch.email_hash = addressHash(ctx.secret, submission.email);
  }
  if (!found.phone && phone) {
    patch.phone = phone;
    patch.phone_hash = addressHash(ctx.secret, phone);
  }
  if (Object.keys(patch).length > 0) {
    patch.updated_at = now;
    // Announced (`contact.updated`, the names of the filled fields) in this transaction.
    await storeContactPatch(ctx, trx, found, patch);
  }
  await touchInteractionRows(trx, [found.id], now);
  return {
    ...found,
    ...patch,
    last_interaction_at: found.last_interaction_at && found.last_interaction_at > now ? found.last_interaction_at : now,
  };
}

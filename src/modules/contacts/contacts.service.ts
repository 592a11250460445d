import type { Executor } from '../../database.ts';
import { normalizeEmail, normalizePhone } from '../../platform/addresses.ts';
import { iso, parseInstant } from '../../platform/clock.ts';
import { type AppContext, cached, invalidate, type RequestContext } from '../../platform/context.ts';
import { DomainError, type FieldError } from '../../platform/errors.ts';
import { requirePurpose } from '../purposes/index.ts';
import { addressHash } from '../suppressions/index.ts';
import { emitWebhookEvent } from '../webhooks/index.ts';
import {
  findContactRow,
  findContactRowByAddress,
  insertContactRows,
  insertFieldRow,
  listContactRows,
  listFieldsQuery,
  updateContactRow,
} from './contacts.repository.ts';
import type { ContactsTable, FieldsTable } from './contacts.table.ts';

export const contactKinds = ['person', 'professional'] as const;
export const lifecycles = ['prospect', 'customer', 'former_customer'] as const;
export const fieldTypes = ['string', 'number', 'boolean', 'date'] as const;

export type ContactKind = (typeof contactKinds)[number];
export type Lifecycle = (typeof lifecycles)[number];
export type AttributeValue = string | number | boolean;

export interface Contact {
  id: string;
  email: string | null;
  phone: string | null;
  firstName: string | null;
  lastName: string | null;
  locale: string | null;
  kind: ContactKind;
  lifecycle: Lifecycle;
  lastPurchaseAt: string | null;
  source: string | null;
  attributes: Record<string, AttributeValue>;
  createdAt: string;
  updatedAt: string;
  lastInteractionAt: string | null;
  erasedAt: string | null;
}

export interface ContactInput {
  email?: string | null;
  phone?: string | null;
  firstName?: string | null;
  lastName?: string | null;
  locale?: string | null;
  kind?: ContactKind;
  lifecycle?: Lifecycle;
  lastPurchaseAt?: string | null;
  source?: string | null;
  attributes?: Record<string, AttributeValue | null>;
}

export interface Field {
  key: string;
  type: (typeof fieldTypes)[number];
  purpose: string;
  retentionDays: number;
  createdAt: string;
}

/** A contact is a former customer once the last purchase is older than the setting (default 365 days). */
export function effectiveLifecycle(
  row: Pick<ContactsTable, 'lifecycle' | 'last_purchase_at'>,
  at: Date,
  formerAfterDays: number,
): Lifecycle {
  if (row.last_purchase_at) {
    const age = at.getTime() - new Date(row.last_purchase_at).getTime();
    return age > formerAfterDays * 86_400_000 ? 'former_customer' : 'customer';
  }
  return row.lifecycle as Lifecycle;
}

export function toContact(ctx: AppContext, row: ContactsTable): Contact {
  return {
    id: row.id,
    email: row.email,
    phone: row.phone,
    firstName: row.first_name,
    lastName: row.last_name,
    locale: row.locale,
    kind: row.kind as ContactKind,
    lifecycle: effectiveLifecycle(row, ctx.clock.now(), ctx.config.formerCustomerAfterDays),
    lastPurchaseAt: row.last_purchase_at,
    source: row.source,
    attributes: JSON.parse(row.attributes),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastInteractionAt: row.last_interaction_at,
    erasedAt: row.erased_at,
  };
}

const toField = (row: FieldsTable): Field => ({
  key: row.key,
  type: row.type as Field['type'],
  purpose: row.purpose_key,
  retentionDays: row.retention_days,
  createdAt: row.created_at,
});

export const listFields = (ctx: AppContext): Promise<Field[]> =>
  cached(ctx, 'fields', async () => (await ctx.db.read(listFieldsQuery(ctx.db.kysely))).map(toField));

export async function declareField(ctx: AppContext, input: Omit<Field, 'createdAt'>): Promise<Field> {
  await requirePurpose(ctx, input.purpose);
  const row: FieldsTable = {
    key: input.key,
    type: input.type,
    purpose_key: input.purpose,
    retention_days: input.retentionDays,
    created_at: iso(ctx.clock.now()),
  };
  const result = await insertFieldRow(ctx.db.kysely, row);
  if (Number(result.numInsertedOrUpdatedRows ?? 0) === 0) {
    throw new DomainError('key_exists', `A field "${input.key}" is declared already`);
  }
  invalidate(ctx, 'fields');
  return toField(row);
}

const reservedFieldKeys = new Set(['email', 'phone', 'firstName', 'lastName', 'locale', 'kind', 'lifecycle', 'source', 'id']);
export const isReservedFieldKey = (key: string) => reservedFieldKeys.has(key);

async function checkAttributes(ctx: AppContext, attributes: Record<string, AttributeValue | null>, errors: FieldError[]): Promise<void> {
  const fields = new Map((await listFields(ctx)).map((f) => [f.key, f]));
  for (const [key, value] of Object.entries(attributes)) {
    const field = fields.get(key);
    const path = `/attributes/${key}`;
    if (!field) {
      errors.push({ path, message: `"${key}" is not a declared field (declare it with POST /v1/fields)` });
      continue;
    }
    if (value === null) continue;
    const ok =
      field.type === 'date'
        ? typeof value === 'string' && parseInstant(value) !== undefined
        : typeof value === field.type && (field.type !== 'number' || Number.isFinite(value));
    if (!ok) errors.push({ path, message: `must be a ${field.type}` });
  }
}

interface NormalizedInput {
  email?: string | null;
  phone?: string | null;
  lastPurchaseAt?: string | null;
}

async function normalizeInput(ctx: AppContext, input: ContactInput): Promise<NormalizedInput> {
  const errors: FieldError[] = [];
  const out: NormalizedInput = {};
  let code: 'invalid_email' | 'invalid_phone' | 'undeclared_attribute' | 'invalid_attribute' | 'validation_failed' = 'validation_failed';
  if (input.email !== undefined && input.email !== null) {
    const email = normalizeEmail(input.email);
    if (!email) {
      errors.push({ path: '/email', message: 'is not a valid email address' });
      code = 'invalid_email';
    } else out.email = email;
  } else if (input.email === null) out.email = null;
  if (input.phone !== undefined && input.phone !== null) {
    const phone = normalizePhone(input.phone, ctx.config.defaultRegion);
    if (!phone) {
      errors.push({ path: '/phone', message: `is not a valid phone number (region ${ctx.config.defaultRegion} by default)` });
      if (code === 'validation_failed') code = 'invalid_phone';
    } else out.phone = phone;
  } else if (input.phone === null) out.phone = null;
  if (input.lastPurchaseAt !== undefined && input.lastPurchaseAt !== null) {
    const at = parseInstant(input.lastPurchaseAt);
    if (!at) errors.push({ path: '/lastPurchaseAt', message: 'must be an ISO-8601 date or date-time' });
    else out.lastPurchaseAt = iso(at);
  } else if (input.lastPurchaseAt === null) out.lastPurchaseAt = null;
  if (input.attributes) {
    const before = errors.length;
    await checkAttributes(ctx, input.attributes, errors);
    if (errors.length > before && code === 'validation_failed') {
      code = errors.slice(before).some((e) => e.message.includes('not a declared field')) ? 'undeclared_attribute' : 'invalid_attribute';
    }
  }
  if (errors.length > 0) throw new DomainError(code, errors.map((e) => `${e.path} ${e.message}`).join('; '), errors);
  return out;
}

export function newContactRow(ctx: AppContext, id: string, input: ContactInput, normalized: NormalizedInput, now: string): ContactsTable {
  const email = normalized.email ?? null;
  const phone = normalized.phone ?? null;
  const attributes = Object.fromEntries(Object.entries(input.attributes ?? {}).filter(([, v]) => v !== null));
  return {
    id,
    email,
    email_hash: email ? addressHash(ctx.secret, email) : null,
    phone,
    phone_hash: phone ? addressHash(ctx.secret, phone) : null,
    first_name: input.firstName ?? null,
    last_name: input.lastName ?? null,
    locale: input.locale ?? null,
    kind: input.kind ?? 'person',
    lifecycle: input.lifecycle ?? (normalized.lastPurchaseAt ? 'customer' : 'prospect'),
    last_purchase_at: normalized.lastPurchaseAt ?? null,
    source: input.source ?? null,
    attributes: JSON.stringify(attributes),
    created_at: now,
    updated_at: now,
    last_interaction_at: null,
    erased_at: null,
  };
}

function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_UNIQUE' || /UNIQUE constraint/.test(e.message ?? '');
}

export async function createContact(ctx: AppContext, _req: RequestContext, input: ContactInput): Promise<Contact> {
  const normalized = await normalizeInput(ctx, input);
  if (!normalized.email && !normalized.phone) {
    throw new DomainError('contact_address_required', 'A contact needs an "email" or a "phone"', [
      { path: '/email', message: 'email or phone is required' },
    ]);
  }
  const now = iso(ctx.clock.now());
  const row = newContactRow(ctx, ctx.newId(), input, normalized, now);
  try {
    await ctx.db.kysely.transaction().execute(async (trx) => {
      const existing = await findContactRowByAddress(trx, {
        ...(row.email ? { email: row.email } : {}),
        ...(row.phone ? { phone: row.phone } : {}),
      });
      if (existing)
        throw new DomainError('contact_exists', 'A contact with this email or phone exists', [
          { path: existing.email === row.email ? '/email' : '/phone', message: 'already used by another contact' },
        ]);
      await storeNewContact(ctx, trx, row);
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new DomainError('contact_exists');
    throw error;
  }
  return toContact(ctx, row);
}

/** Finds or creates the contact for an email inside a transaction (consents recorded by email). */
export async function contactForEmail(ctx: AppContext, trx: Executor, rawEmail: string): Promise<ContactsTable> {
  const email = normalizeEmail(rawEmail);
  if (!email)
    throw new DomainError('invalid_email', 'is not a valid email address', [{ path: '/email', message: 'is not a valid email address' }]);
  const existing = await findContactRowByAddress(trx, { email });
  if (existing) return existing;
  const row = newContactRow(ctx, ctx.newId(), { email }, { email }, iso(ctx.clock.now()));
  await storeNewContact(ctx, trx, row);
  return row;
}

/**
 * Writes a new contact and queues its `contact.created` announcement in the caller's transaction:
 * every path that creates one contact (API, consent by email, form) goes through here.
 */
export async function storeNewContact(ctx: AppContext, trx: Executor, row: ContactsTable): Promise<void> {
  await insertContactRows(trx, [row]);
  await emitWebhookEvent(ctx, trx, 'contact.created', { contactId: row.id });
}

/**
 * Writes a change to a contact and, when a field really changed, queues `contact.updated` (field
 * names only) in the caller's transaction: the API and the form path both go through here.
 */
export async function storeContactPatch(ctx: AppContext, trx: Executor, row: ContactsTable, patch: Partial<ContactsTable>): Promise<void> {
  await updateContactRow(trx, row.id, patch);
  const fields = changedFields(row, patch);
  if (fields.length > 0) await emitWebhookEvent(ctx, trx, 'contact.updated', { contactId: row.id, fields });
}

export async function getContactRow(ctx: AppContext, id: string, db: Executor = ctx.db.kysely): Promise<ContactsTable> {
  const row = await findContactRow(db, id);
  if (!row) throw new DomainError('contact_not_found', `There is no contact "${id}"`);
  return row;
}

export async function getContact(ctx: AppContext, id: string): Promise<Contact> {
  const row = await getContactRow(ctx, id);
  if (row.erased_at) throw new DomainError('contact_erased', 'This contact was erased; its pseudonymous proof remains');
  return toContact(ctx, row);
}

export async function findContacts(
  ctx: AppContext,
  query: { email?: string; phone?: string; cursor?: string; limit?: number },
): Promise<{ items: Contact[]; nextCursor: string | null }> {
  if (query.email !== undefined || query.phone !== undefined) {
    const normalized = await normalizeInput(ctx, {
      ...(query.email !== undefined ? { email: query.email } : {}),
      ...(query.phone !== undefined ? { phone: query.phone } : {}),
    });
    const by: { email?: string; phone?: string } = {};
    if (normalized.email) by.email = normalized.email;
    if (normalized.phone) by.phone = normalized.phone;
    const row = await findContactRowByAddress(ctx.db.kysely, by);
    return { items: row ? [toContact(ctx, row)] : [], nextCursor: null };
  }
  const limit = query.limit ?? 50;
  const after = query.cursor ? Buffer.from(query.cursor, 'base64url').toString() : undefined;
  const rows = await listContactRows(ctx.db.kysely, after, limit + 1);
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map((r) => toContact(ctx, r)),
    nextCursor: rows.length > limit && last ? Buffer.from(last.id).toString('base64url') : null,
  };
}

const wireNames: Array<[keyof ContactsTable, string]> = [
  ['email', 'email'],
  ['phone', 'phone'],
  ['first_name', 'firstName'],
  ['last_name', 'lastName'],
  ['locale', 'locale'],
  ['kind', 'kind'],
  ['lifecycle', 'lifecycle'],
  ['last_purchase_at', 'lastPurchaseAt'],
  ['source', 'source'],
];

/** The names (as the API spells them) of what a patch changes: what `contact.updated` tells, never the values. */
function changedFields(row: ContactsTable, patch: Partial<ContactsTable>): string[] {
  const fields = wireNames.filter(([column]) => column in patch && patch[column] !== row[column]).map(([, name]) => name);
  if (patch.attributes !== undefined) {
    const before = JSON.parse(row.attributes) as Record<string, unknown>;
    const after = JSON.parse(patch.attributes) as Record<string, unknown>;
    for (const key of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
      if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) fields.push(`attributes.${key}`);
    }
  }
  return fields;
}

export async function updateContact(ctx: AppContext, _req: RequestContext, id: string, input: ContactInput): Promise<Contact> {
  const normalized = await normalizeInput(ctx, input);
  try {
    return await ctx.db.kysely.transaction().execute(async (trx) => {
      const row = await getContactRow(ctx, id, trx);
      if (row.erased_at) throw new DomainError('contact_erased');
      const email = normalized.email === undefined ? row.email : normalized.email;
      const phone = normalized.phone === undefined ? row.phone : normalized.phone;
      if (!email && !phone) throw new DomainError('contact_address_required', 'A contact keeps an "email" or a "phone"');
      for (const [field, value] of [
        ['email', normalized.email],
        ['phone', normalized.phone],
      ] as const) {
        if (value && value !== row[field]) {
          const other = await findContactRowByAddress(trx, { [field]: value });
          if (other && other.id !== id)
            throw new DomainError('contact_exists', `Another contact has this ${field}`, [
              { path: `/${field}`, message: 'already used by another contact' },
            ]);
        }
      }
      const attributes = { ...JSON.parse(row.attributes), ...(input.attributes ?? {}) };
      for (const [k, v] of Object.entries(attributes)) if (v === null) delete attributes[k];
      const patch: Partial<ContactsTable> = {
        email,
        email_hash: email ? addressHash(ctx.secret, email) : null,
        phone,
        phone_hash: phone ? addressHash(ctx.secret, phone) : null,
        first_name: input.firstName === undefined ? row.first_name : input.firstName,
        last_name: input.lastName === undefined ? row.last_name : input.lastName,
        locale: input.locale === undefined ? row.locale : input.locale,
        kind: input.kind ?? row.kind,
        lifecycle: input.lifecycle ?? row.lifecycle,
        last_purchase_at: normalized.lastPurchaseAt === undefined ? row.last_purchase_at : normalized.lastPurchaseAt,
        source: input.source === undefined ? row.source : input.source,
        attributes: JSON.stringify(attributes),
        updated_at: iso(ctx.clock.now()),
      };
      await storeContactPatch(ctx, trx, row, patch);
      return toContact(ctx, { ...row, ...patch });
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new DomainError('contact_exists');
    throw error;
  }
}

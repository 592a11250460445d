import { iso } from '../../platform/clock.ts';
import type { AppContext } from '../../platform/context.ts';
import { DomainError, type FieldError } from '../../platform/errors.ts';
import { getChannel } from '../channels/index.ts';
import { type Contact, toContact } from '../contacts/index.ts';
import { getPurpose } from '../purposes/index.ts';
import { attributeKey, type FieldCondition, type Filter, validateFilter, visitConditions } from './segments.filter.ts';
import {
  countMembers,
  findFieldTypes,
  findSegmentRow,
  insertSegmentRow,
  listMemberRows,
  listSegmentRows,
  type SegmentRow,
  updateSegmentRow,
} from './segments.repository.ts';
import type { SegmentScope } from './segments.sql.ts';

export interface Segment {
  key: string;
  name: string;
  filter: Filter;
  createdAt: string;
  updatedAt: string;
}

export interface SegmentInput {
  name: string;
  filter: unknown;
}

const toSegment = (row: SegmentRow): Segment => ({
  key: row.key,
  name: row.name,
  filter: JSON.parse(row.filter) as Filter,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** The store and the time a segment is evaluated at (lifecycle is derived as of then). */
export const segmentScope = (ctx: AppContext, at: Date = ctx.clock.now()): SegmentScope => ({
  dialect: ctx.db.dialect,
  now: at,
  formerCustomerAfterDays: ctx.config.formerCustomerAfterDays,
});

/** Which operators each declared field type takes, and the JSON type of its values. */
const attributeRules = {
  string: { ops: ['eq', 'neq', 'in', 'exists', 'contains'], value: 'string' },
  date: { ops: ['eq', 'neq', 'gt', 'lt', 'exists'], value: 'string' },
  number: { ops: ['eq', 'neq', 'in', 'gt', 'lt', 'exists'], value: 'number' },
  boolean: { ops: ['eq', 'neq', 'exists'], value: 'boolean' },
} as const;

/**
 * Validates a filter's shape, then what it refers to: purposes, channels and declared attribute
 * fields (with their types). Errors carry JSON pointers under `base` (`/filter` for a request body).
 */
export async function checkFilter(ctx: AppContext, raw: unknown, base = ''): Promise<Filter> {
  const filter = validateFilter(raw, base);
  const errors: FieldError[] = [];
  const conditions: Array<{ condition: Parameters<Parameters<typeof visitConditions>[1]>[0]; path: string }> = [];
  visitConditions(filter, (condition, path) => conditions.push({ condition, path }), base);

  const attributes = new Set<string>();
  for (const { condition } of conditions) {
    const key = 'field' in condition ? attributeKey(condition.field) : undefined;
    if (key !== undefined) attributes.add(key);
  }
  const fieldTypes = new Map((await findFieldTypes(ctx.db.kysely, [...attributes])).map((f) => [f.key, f.type]));

  for (const { condition, path } of conditions) {
    if ('consent' in condition) {
      if (!(await getPurpose(ctx, condition.consent.purpose)))
        errors.push({ path: `${path}/consent/purpose`, message: 'is not a known purpose' });
      if (!(await getChannel(ctx, condition.consent.channel)))
        errors.push({ path: `${path}/consent/channel`, message: 'is not a known channel' });
    } else if ('field' in condition) {
      const key = attributeKey(condition.field);
      if (key === undefined) continue;
      const type = fieldTypes.get(key);
      if (type === undefined) {
        errors.push({ path: `${path}/field`, message: `"${key}" is not a declared field (see GET /v1/fields)` });
        continue;
      }
      const rule = attributeRules[type as keyof typeof attributeRules];
      if (!rule) continue;
      if (!(rule.ops as readonly string[]).includes(condition.op)) {
        errors.push({ path: `${path}/op`, message: `does not apply to a ${type} field (use ${rule.ops.join(', ')})` });
      } else if (condition.op !== 'exists' && !valuesOf(condition).every((v) => typeof v === rule.value)) {
        errors.push({
          path: `${path}/value`,
          message: `must be a ${type === 'date' ? 'ISO-8601 date' : type} (${key} is a ${type} field)`,
        });
      }
    }
  }
  if (errors.length > 0) throw new DomainError('segment_invalid', errors.map((e) => `${e.path} ${e.message}`).join('; '), errors);
  return filter;
}

const valuesOf = (condition: FieldCondition): unknown[] => (Array.isArray(condition.value) ? condition.value : [condition.value]);

export async function listSegments(ctx: AppContext): Promise<Segment[]> {
  return (await listSegmentRows(ctx.db.kysely)).map(toSegment);
}

export async function getSegment(ctx: AppContext, key: string): Promise<Segment> {
  const row = await findSegmentRow(ctx.db.kysely, key);
  if (!row) throw new DomainError('segment_not_found', `There is no segment "${key}"`);
  return toSegment(row);
}

export async function createSegment(ctx: AppContext, input: SegmentInput & { key: string }): Promise<Segment> {
  const filter = await checkFilter(ctx, input.filter, '/filter');
  const now = iso(ctx.clock.now());
  const row: SegmentRow = { key: input.key, name: input.name, filter: JSON.stringify(filter), created_at: now, updated_at: now };
  if ((await insertSegmentRow(ctx.db.kysely, row)) === 0) {
    throw new DomainError('key_exists', `A segment "${input.key}" exists already: PUT /v1/segments/${input.key} changes it`, [
      { path: '/key', message: 'already taken' },
    ]);
  }
  return toSegment(row);
}

/** Replaces a segment's name and filter. */
export async function updateSegment(ctx: AppContext, key: string, input: SegmentInput & { key?: string }): Promise<Segment> {
  if (input.key !== undefined && input.key !== key) {
    throw new DomainError('validation_failed', 'The key in the body is not the key in the path', [
      { path: '/body/key', message: `must be "${key}"` },
    ]);
  }
  await getSegment(ctx, key);
  const filter = await checkFilter(ctx, input.filter, '/filter');
  const patch = { name: input.name, filter: JSON.stringify(filter), updated_at: iso(ctx.clock.now()) };
  if ((await updateSegmentRow(ctx.db.kysely, key, patch)) === 0) throw new DomainError('segment_not_found', `There is no segment "${key}"`);
  return getSegment(ctx, key);
}

export async function countSegment(ctx: AppContext, key: string): Promise<number> {
  const segment = await getSegment(ctx, key);
  return countMembers(ctx.db.kysely, segment.filter, segmentScope(ctx));
}

/** How many contacts a filter not yet saved selects. */
export async function previewSegment(ctx: AppContext, raw: unknown): Promise<number> {
  const filter = await checkFilter(ctx, raw, '/filter');
  return countMembers(ctx.db.kysely, filter, segmentScope(ctx));
}

const encodeCursor = (id: string) => Buffer.from(id).toString('base64url');
const decodeCursor = (cursor: string) => Buffer.from(cursor, 'base64url').toString();

/** A page of a segment's members in id order; `nextCursor` is null on the last page. */
export async function listSegmentContacts(
  ctx: AppContext,
  key: string,
  cursor?: string | null,
  limit = 50,
): Promise<{ items: Contact[]; nextCursor: string | null }> {
  const segment = await getSegment(ctx, key);
  const size = Math.max(1, Math.min(500, Math.floor(limit)));
  const after = cursor ? decodeCursor(cursor) : undefined;
  const rows = await listMemberRows(ctx.db.kysely, segment.filter, segmentScope(ctx), after, size + 1);
  const page = rows.slice(0, size);
  const last = page.at(-1);
  return {
    items: page.map((r) => toContact(ctx, r)),
    nextCursor: rows.length > size && last ? encodeCursor(last.id) : null,
  };
}

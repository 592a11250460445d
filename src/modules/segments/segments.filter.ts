// The segment filter: a JSON tree of conditions, and its validation, which names every fault by
// a JSON pointer into the tree. Pure: what needs the database (purposes, channels, declared
// fields) is checked by the service.
import { parseInstant } from '../../platform/clock.ts';
import { DomainError, type FieldError } from '../../platform/errors.ts';

export const MAX_DEPTH = 10;
export const MAX_NODES = 200;
const MAX_LIST = 500;
const MAX_TEXT = 500;
const MAX_ERRORS = 50;

const KEY = /^[a-z0-9][a-z0-9_-]*$/;
/** Declared attribute keys (the fields API's pattern). */
const ATTRIBUTE_KEY = /^[a-zA-Z][a-zA-Z0-9_]*$/;
const GRADE = /^[a-z0-9][a-z0-9_-]*$/;

export const operators = ['eq', 'neq', 'in', 'gt', 'lt', 'exists', 'contains'] as const;
export type Operator = (typeof operators)[number];

export const consentStatuses = ['granted', 'pending', 'refused', 'withdrawn', 'objected', 'expired', 'none'] as const;
export type ConsentStatus = (typeof consentStatuses)[number];

export const campaignEvents = ['received', 'clicked', 'confirmed', 'unsubscribed', 'bounced'] as const;
export type CampaignEvent = (typeof campaignEvents)[number];

/** How a contact field compares: a closed list of words, free text, or an instant. */
export type FieldKind = 'enum' | 'text' | 'date';

export const contactFields = {
  lifecycle: { kind: 'enum', values: ['prospect', 'customer', 'former_customer'] },
  kind: { kind: 'enum', values: ['person', 'professional'] },
  source: { kind: 'text' },
  email: { kind: 'text' },
  phone: { kind: 'text' },
  locale: { kind: 'text' },
  createdAt: { kind: 'date' },
  lastInteractionAt: { kind: 'date' },
  lastPurchaseAt: { kind: 'date' },
} as const satisfies Record<string, { kind: FieldKind; values?: readonly string[] }>;
export type ContactField = keyof typeof contactFields;

const opsByKind: Record<FieldKind, readonly Operator[]> = {
  enum: ['eq', 'neq', 'in', 'exists'],
  text: ['eq', 'neq', 'in', 'exists', 'contains'],
  date: ['eq', 'neq', 'gt', 'lt', 'exists'],
};

export type Scalar = string | number | boolean;

export type FieldCondition =
  | { field: string; op: 'eq' | 'neq'; value: Scalar }
  | { field: string; op: 'in'; value: string[] | number[] }
  | { field: string; op: 'gt' | 'lt'; value: string | number }
  | { field: string; op: 'exists'; value: boolean }
  | { field: string; op: 'contains'; value: string };

export interface ConsentCondition {
  consent: { purpose: string; channel: string; status?: ConsentStatus[]; proofGrade?: string[] };
}

export interface CampaignCondition {
  campaign: { key: string; event: CampaignEvent };
}

export type Filter = { all: Filter[] } | { any: Filter[] } | { not: Filter } | FieldCondition | ConsentCondition | CampaignCondition;

const ATTRIBUTES = 'attributes.';
/** The declared attribute a field names (`attributes.<key>`), if it names one. */
export const attributeKey = (field: string): string | undefined =>
  field.startsWith(ATTRIBUTES) ? field.slice(ATTRIBUTES.length) : undefined;

const isContactField = (field: string): field is ContactField => Object.hasOwn(contactFields, field);

/** JSON pointer token (RFC 6901). */
const token = (key: string | number) => String(key).replaceAll('~', '~0').replaceAll('/', '~1');
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isDate = (value: unknown): value is string => typeof value === 'string' && value.length <= 40 && parseInstant(value) !== undefined;
const describe = (value: unknown) => (value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`);
const list = (items: readonly string[]) => items.join(', ');

const nodeKinds = ['all', 'any', 'not', 'field', 'consent', 'campaign'] as const;
type NodeKind = (typeof nodeKinds)[number];
const keysOf: Record<NodeKind, readonly string[]> = {
  all: ['all'],
  any: ['any'],
  not: ['not'],
  field: ['field', 'op', 'value'],
  consent: ['consent'],
  campaign: ['campaign'],
};

class Walk {
  readonly errors: FieldError[] = [];
  nodes = 0;
  tooMany = false;
  constructor(readonly root: string) {}

  fail(path: string, message: string): undefined {
    if (this.errors.length < MAX_ERRORS) this.errors.push({ path: path || '/', message });
    return undefined;
  }

  /** Refuses keys a shape does not accept. */
  extraKeys(value: Record<string, unknown>, allowed: readonly string[], path: string): void {
    for (const key of Object.keys(value)) if (!allowed.includes(key)) this.fail(`${path}/${token(key)}`, 'is not an accepted field');
  }

  node(value: unknown, path: string, depth: number): Filter | undefined {
    this.nodes += 1;
    if (this.nodes > MAX_NODES) {
      if (!this.tooMany) this.fail(this.root, `holds more than ${MAX_NODES} conditions`);
      this.tooMany = true;
      return undefined;
    }
    if (depth > MAX_DEPTH) return this.fail(path, `nests deeper than ${MAX_DEPTH} levels`);
    if (!isObject(value)) return this.fail(path, `must be an object (a condition, or all / any / not), not ${describe(value)}`);
    const kinds = nodeKinds.filter((k) => Object.hasOwn(value, k));
    const kind = kinds[0];
    if (kind === undefined) return this.fail(path, `must hold one of: ${list(nodeKinds)}`);
    if (kinds.length > 1) return this.fail(path, `holds more than one condition (${list(kinds)}): combine them with "all" or "any"`);
    this.extraKeys(value, keysOf[kind], path);
    switch (kind) {
      case 'all':
      case 'any':
        return this.group(kind, value[kind], `${path}/${kind}`, depth);
      case 'not': {
        const inner = this.node(value.not, `${path}/not`, depth + 1);
        return inner && { not: inner };
      }
      case 'field':
        return this.field(value, path);
      case 'consent':
        return this.consent(value.consent, `${path}/consent`);
      case 'campaign':
        return this.campaign(value.campaign, `${path}/campaign`);
    }
  }

  group(kind: 'all' | 'any', items: unknown, path: string, depth: number): Filter | undefined {
    if (!Array.isArray(items)) return this.fail(path, `must be an array of conditions, not ${describe(items)}`);
    if (kind === 'any' && items.length === 0) return this.fail(path, 'must hold at least one condition (an empty "any" matches nobody)');
    const out: Filter[] = [];
    let ok = true;
    items.forEach((item, i) => {
      if (this.tooMany) return;
      const inner = this.node(item, `${path}/${i}`, depth + 1);
      if (inner) out.push(inner);
      else ok = false;
    });
    if (!ok) return undefined;
    return kind === 'all' ? { all: out } : { any: out };
  }

  field(value: Record<string, unknown>, path: string): Filter | undefined {
    const { field, op, value: operand } = value;
    let kind: FieldKind | 'attribute' | undefined;
    if (typeof field !== 'string') this.fail(`${path}/field`, `must be a string, not ${describe(field)}`);
    else if (isContactField(field)) kind = contactFields[field].kind;
    else {
      const key = attributeKey(field);
      if (key !== undefined && ATTRIBUTE_KEY.test(key) && key.length <= 64) kind = 'attribute';
      else this.fail(`${path}/field`, `is not a known field (one of ${list(Object.keys(contactFields))}, or attributes.<key>)`);
    }
    if (typeof op !== 'string' || !(operators as readonly string[]).includes(op)) {
      this.fail(`${path}/op`, `is not a known operator (one of ${list(operators)})`);
      return undefined;
    }
    if (kind === undefined) return undefined;
    if (kind !== 'attribute' && !opsByKind[kind].includes(op as Operator)) {
      return this.fail(`${path}/op`, `does not apply to ${String(field)} (use ${list(opsByKind[kind])})`);
    }
    if (!Object.hasOwn(value, 'value')) return this.fail(`${path}/value`, 'is required');
    const checked = this.operand(op as Operator, kind, field as string, operand, `${path}/value`);
    if (checked === undefined) return undefined;
    return { field, op, value: checked } as FieldCondition;
  }

  /** The value a field condition compares with, of the type its operator and field take. */
  operand(op: Operator, kind: FieldKind | 'attribute', field: string, value: unknown, path: string): FieldCondition['value'] | undefined {
    const enumValues =
      isContactField(field) && 'values' in contactFields[field]
        ? (contactFields[field] as { values: readonly string[] }).values
        : undefined;
    const scalar = (v: unknown, at: string): Scalar | undefined => {
      if (kind === 'enum') {
        if (typeof v === 'string' && enumValues?.includes(v)) return v;
        return this.fail(at, `must be one of ${list(enumValues ?? [])}`);
      }
      if (kind === 'text') {
        if (typeof v === 'string' && v.length <= MAX_TEXT) return v;
        return this.fail(at, typeof v === 'string' ? `must be at most ${MAX_TEXT} characters` : `must be a string, not ${describe(v)}`);
      }
      if (kind === 'date') return isDate(v) ? v : this.fail(at, 'must be an ISO-8601 date or date-time');
      if (typeof v === 'string' && v.length <= MAX_TEXT) return v;
      if (typeof v === 'number' && Number.isFinite(v)) return v;
      if (typeof v === 'boolean' && op !== 'in') return v;
      return this.fail(at, op === 'in' ? 'must be a string or a number' : 'must be a string, a number or a boolean');
    };
    switch (op) {
      case 'eq':
      case 'neq':
        return scalar(value, path);
      case 'in': {
        if (!Array.isArray(value) || value.length === 0 || value.length > MAX_LIST) {
          return this.fail(path, `must be an array of 1 to ${MAX_LIST} values`);
        }
        const items = value.map((v, i) => scalar(v, `${path}/${i}`));
        if (items.some((v) => v === undefined)) return undefined;
        if (new Set(items.map((v) => typeof v)).size > 1)
          return this.fail(path, 'must hold values of one type (all strings or all numbers)');
        return items as string[] | number[];
      }
      case 'gt':
      case 'lt':
        if (kind === 'date' || typeof value !== 'number') {
          return isDate(value)
            ? value
            : this.fail(path, kind === 'date' ? 'must be an ISO-8601 date or date-time' : 'must be a number or an ISO-8601 date');
        }
        return Number.isFinite(value) ? value : this.fail(path, 'must be a finite number');
      case 'exists':
        return typeof value === 'boolean' ? value : this.fail(path, `must be true or false, not ${describe(value)}`);
      case 'contains':
        if (typeof value !== 'string') return this.fail(path, `must be a string, not ${describe(value)}`);
        if (value.length === 0 || value.length > MAX_TEXT) return this.fail(path, `must be 1 to ${MAX_TEXT} characters`);
        return value;
    }
  }

  key(value: unknown, path: string, pattern: RegExp, what: string): string | undefined {
    if (typeof value === 'string' && pattern.test(value) && value.length <= 64) return value;
    return this.fail(path, value === undefined ? 'is required' : `must be a ${what} (${pattern.source})`);
  }

  consent(value: unknown, path: string): Filter | undefined {
    if (!isObject(value)) return this.fail(path, `must be an object { purpose, channel, status?, proofGrade? }, not ${describe(value)}`);
    this.extraKeys(value, ['purpose', 'channel', 'status', 'proofGrade'], path);
    const purpose = this.key(value.purpose, `${path}/purpose`, KEY, 'purpose key');
    const channel = this.key(value.channel, `${path}/channel`, KEY, 'channel key');
    const words = (name: 'status' | 'proofGrade', accept: (w: unknown) => boolean, expected: string): string[] | undefined => {
      const items = value[name];
      if (items === undefined) return undefined;
      if (!Array.isArray(items) || items.length === 0 || items.length > 20)
        return this.fail(`${path}/${name}`, 'must be an array of 1 to 20 values');
      items.forEach((w, i) => {
        if (!accept(w)) this.fail(`${path}/${name}/${i}`, `must be ${expected}`);
      });
      return items.every(accept) ? [...new Set(items as string[])] : undefined;
    };
    const status = words('status', (w) => (consentStatuses as readonly unknown[]).includes(w), `one of ${list(consentStatuses)}`);
    const proofGrade = words('proofGrade', (w) => typeof w === 'string' && GRADE.test(w) && w.length <= 32, 'a proof grade (e.g. weak)');
    if (value.status === undefined && value.proofGrade === undefined) {
      return this.fail(path, 'needs "status", "proofGrade" or both');
    }
    if (!purpose || !channel || (value.status !== undefined && !status) || (value.proofGrade !== undefined && !proofGrade))
      return undefined;
    return {
      consent: {
        purpose,
        channel,
        ...(status ? { status: status as ConsentStatus[] } : {}),
        ...(proofGrade ? { proofGrade } : {}),
      },
    };
  }

  campaign(value: unknown, path: string): Filter | undefined {
    if (!isObject(value)) return this.fail(path, `must be an object { key, event }, not ${describe(value)}`);
    this.extraKeys(value, ['key', 'event'], path);
    // Any key: a campaign that never sent anything simply matches nobody.
    const key =
      typeof value.key === 'string' && value.key.length > 0 && value.key.length <= 64
        ? value.key
        : this.fail(`${path}/key`, value.key === undefined ? 'is required' : 'must be a campaign key (a string of 1 to 64 characters)');
    const event = value.event;
    if (!(campaignEvents as readonly unknown[]).includes(event)) {
      return this.fail(`${path}/event`, event === undefined ? 'is required' : `must be one of ${list(campaignEvents)}`);
    }
    return key ? { campaign: { key, event: event as CampaignEvent } } : undefined;
  }
}

/**
 * Checks a filter's shape and returns a clean copy (only the accepted keys). Faults are reported
 * together, each with a JSON pointer under `base` (e.g. `/all/1/op`, or `/filter/all/1/op` with
 * base `/filter`).
 */
export function validateFilter(filter: unknown, base = ''): Filter {
  const walk = new Walk(base);
  const out = walk.node(filter, base, 1);
  if (walk.errors.length > 0 || !out) {
    const errors = walk.errors.length > 0 ? walk.errors : [{ path: base || '/', message: 'is not a valid filter' }];
    throw new DomainError('segment_invalid', errors.map((e) => `${e.path} ${e.message}`).join('; '), errors);
  }
  return out;
}

/** Calls `visit` on every condition of a (valid) filter, with its JSON pointer under `base`. */
export function visitConditions(
  filter: Filter,
  visit: (condition: FieldCondition | ConsentCondition | CampaignCondition, path: string) => void,
  base = '',
): void {
  if ('all' in filter) for (const [i, f] of filter.all.entries()) visitConditions(f, visit, `${base}/all/${i}`);
  else if ('any' in filter) for (const [i, f] of filter.any.entries()) visitConditions(f, visit, `${base}/any/${i}`);
  else if ('not' in filter) visitConditions(filter.not, visit, `${base}/not`);
  else visit(filter, base);
}

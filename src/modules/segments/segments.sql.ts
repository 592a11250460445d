// Compiles a segment filter to one SQL condition on contacts: plain comparisons on the contact's
// columns, EXISTS / NOT EXISTS on consent_states (PK contact_id, purpose_key, channel_key) and
// deliveries (index contact_id, campaign_key). No row is ever looked at in JavaScript, so the same
// condition serves a count, a page of contacts or an INSERT … SELECT of a million-contact audience.
import { type Expression, type ExpressionBuilder, expressionBuilder, type RawBuilder, type SqlBool, sql } from 'kysely';
import type { Database, Dialect } from '../../database.ts';
import { iso, parseInstant } from '../../platform/clock.ts';
import {
  attributeKey,
  type CampaignCondition,
  type CampaignEvent,
  type ConsentCondition,
  type ContactField,
  contactFields,
  type FieldCondition,
  type Filter,
  type Scalar,
} from './segments.filter.ts';

/**
 * What the SQL depends on beyond the filter: the store (JSON access differs) and the time, with
 * the setting that makes a customer a former customer (lifecycle is derived as contacts show it).
 */
export interface SegmentScope {
  dialect: Dialect;
  now: Date;
  formerCustomerAfterDays: number;
}

const columns: Record<ContactField, string> = {
  lifecycle: 'lifecycle',
  kind: 'kind',
  source: 'source',
  email: 'email',
  phone: 'phone',
  locale: 'locale',
  createdAt: 'created_at',
  lastInteractionAt: 'last_interaction_at',
  lastPurchaseAt: 'last_purchase_at',
};

const eventColumns = {
  received: 'sent_at',
  clicked: 'clicked_at',
  confirmed: 'confirmed_at',
  unsubscribed: 'unsubscribed_at',
  bounced: 'bounced_at',
} as const satisfies Record<CampaignEvent, string>;

const ALIAS = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Value = RawBuilder<unknown>;
const TRUE = sql<SqlBool>`1 = 1`;
const FALSE = sql<SqlBool>`1 = 0`;

/** `%text%` for LIKE, its wildcards escaped (with a backslash, declared by ESCAPE). */
const likePattern = (text: string) => `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/**
 * The condition "this contact is in the segment", for `.where(segmentWhere(filter))` on
 * `selectFrom('contacts as c')` (or another alias). Erased contacts are never in a segment.
 *
 * Give `scope` (see `segmentScope(ctx)`): attribute conditions need its dialect, and lifecycle is
 * then derived from the last purchase as of `scope.now`. Without it, lifecycle compares the
 * stored column and an attribute condition throws.
 *
 * Like any SQL comparison, the condition may be NULL (not false) for a contact outside the
 * segment: use it as a WHERE condition, and for the contacts outside, compile `{ not: filter }`
 * rather than wrapping this in NOT.
 */
export function segmentWhere(filter: Filter, alias = 'c', scope?: SegmentScope) {
  if (!ALIAS.test(alias)) throw new Error(`segmentWhere: "${alias}" is not a table alias`);
  const eb = expressionBuilder<Database>();
  const col = (name: string): Value => sql.ref(`${alias}.${name}`);
  const contactId = sql.ref<string>(`${alias}.id`);

  /** The value of a contact field as SQL, and the type the filter compares it as. */
  function operand(condition: FieldCondition): { value: Value; type: 'text' | 'number' | 'boolean' } {
    const key = attributeKey(condition.field);
    if (key === undefined) {
      const field = condition.field as ContactField;
      if (field === 'lifecycle' && scope) {
        const cutoff = iso(new Date(scope.now.getTime() - scope.formerCustomerAfterDays * 86_400_000));
        const purchase = col('last_purchase_at');
        return {
          value: sql`(case when ${purchase} is null then ${col('lifecycle')} when ${purchase} < ${cutoff} then 'former_customer' else 'customer' end)`,
          type: 'text',
        };
      }
      return { value: col(columns[field]), type: 'text' };
    }
    if (!scope) throw new Error(`segmentWhere: the condition on "${condition.field}" needs a scope (its dialect)`);
    // Attributes are JSON text of declared fields; the key was checked against a strict pattern.
    const attributes = col('attributes');
    const kind =
      condition.op === 'exists' || condition.op === 'contains'
        ? 'text'
        : typeof (Array.isArray(condition.value) ? condition.value[0] : condition.value);
    if (scope.dialect === 'sqlite') {
      const path = sql.lit(`$.${key}`);
      if (kind === 'number') {
        return {
          value: sql`(case when json_type(${attributes}, ${path}) in ('integer', 'real') then json_extract(${attributes}, ${path}) end)`,
          type: 'number',
        };
      }
      // json_type gives 'true' / 'false' for booleans, as PostgreSQL's ->> does.
      if (kind === 'boolean')
        return {
          value: sql`(case when json_type(${attributes}, ${path}) in ('true', 'false') then json_type(${attributes}, ${path}) end)`,
          type: 'boolean',
        };
      return { value: sql`json_extract(${attributes}, ${path})`, type: 'text' };
    }
    const name = sql.lit(key);
    if (kind === 'number') {
      return {
        value: sql`(case when jsonb_typeof(${attributes}::jsonb -> ${name}) = 'number' then (${attributes}::jsonb ->> ${name})::numeric end)`,
        type: 'number',
      };
    }
    if (kind === 'boolean') {
      return {
        value: sql`(case when jsonb_typeof(${attributes}::jsonb -> ${name}) = 'boolean' then ${attributes}::jsonb ->> ${name} end)`,
        type: 'boolean',
      };
    }
    return { value: sql`(${attributes}::jsonb ->> ${name})`, type: 'text' };
  }

  /** A parameter of the type the operand is compared as (dates as stored: fixed-width ISO text). */
  function param(condition: FieldCondition, v: string | number | boolean): unknown {
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (typeof v === 'number') return v;
    const field = condition.field as ContactField;
    if (Object.hasOwn(contactFields, field) && contactFields[field].kind === 'date') return iso(parseInstant(v) as Date);
    if (field === 'email') return v.trim().toLowerCase();
    return v;
  }

  /**
   * A field condition, or its complement when `negated`. SQL compares NULL to nothing, so a
   * contact without the value fails every comparison; its complement must then hold, which is
   * why the negated forms (and neq, the complement of eq) admit NULL explicitly.
   */
  function field(condition: FieldCondition, negated: boolean): Expression<SqlBool> {
    const { value: x, type } = operand(condition);
    // Text order is byte order on both stores (ISO timestamps sort as text).
    const ordered = type === 'text' && dialectIs('postgres') ? sql`${x} collate "C"` : x;
    const v = () => param(condition, condition.value as Scalar);
    const orMissing = (comparison: RawBuilder<unknown>) => sql<SqlBool>`(${x} is null or ${comparison})`;
    switch (condition.op) {
      case 'exists':
        return condition.value !== negated ? sql<SqlBool>`${x} is not null` : sql<SqlBool>`${x} is null`;
      case 'eq':
      case 'neq':
        return (condition.op === 'eq') !== negated ? sql<SqlBool>`${x} = ${v()}` : orMissing(sql`${x} <> ${v()}`);
      case 'in': {
        const values = sql.join((condition.value as Array<string | number>).map((item) => param(condition, item)));
        return negated ? orMissing(sql`${x} not in (${values})`) : sql<SqlBool>`${x} in (${values})`;
      }
      case 'gt':
        return negated ? orMissing(sql`${ordered} <= ${v()}`) : sql<SqlBool>`${ordered} > ${v()}`;
      case 'lt':
        return negated ? orMissing(sql`${ordered} >= ${v()}`) : sql<SqlBool>`${ordered} < ${v()}`;
      case 'contains': {
        const pattern = likePattern(condition.value);
        return negated
          ? orMissing(sql`lower(${x}) not like ${pattern} escape '\\'`)
          : sql<SqlBool>`lower(${x}) like ${pattern} escape '\\'`;
      }
    }
  }

  function dialectIs(dialect: Dialect) {
    return scope?.dialect === dialect;
  }

  /**
   * Statuses filter the pair's row; "none" is the absence of a row. A missing row has no proof
   * grade, so proofGrade narrows the rows only: `status: [none, granted], proofGrade: [weak]`
   * is "no consent, or a granted one with weak proof".
   *
   * A pair has at most one row (the primary key), so "no row, or a row that matches" is asked as
   * "no row that does not match": one NOT EXISTS, which both stores run as an anti-join.
   */
  function consent({ consent: c }: ConsentCondition): Expression<SqlBool> {
    const rows = eb
      .selectFrom('consent_states as seg_cs')
      .select(sql.lit(1).as('one'))
      .where('seg_cs.contact_id', '=', contactId)
      .where('seg_cs.purpose_key', '=', c.purpose)
      .where('seg_cs.channel_key', '=', c.channel);
    const statuses = c.status?.filter((s) => s !== 'none');
    const none = c.status?.includes('none') ?? false;
    const grades = c.proofGrade;
    if (!none) {
      let matching = rows;
      if (statuses !== undefined) matching = matching.where('seg_cs.status', 'in', statuses);
      if (grades !== undefined) matching = matching.where('seg_cs.proof_grade', 'in', grades);
      return eb.exists(matching);
    }
    if (statuses === undefined || statuses.length === 0) return eb.not(eb.exists(rows));
    return eb.not(
      eb.exists(
        rows.where((w) => {
          const misses = [w('seg_cs.status', 'not in', statuses)];
          if (grades !== undefined) misses.push(w('seg_cs.proof_grade', 'is', null), w('seg_cs.proof_grade', 'not in', grades));
          return w.or(misses);
        }),
      ),
    );
  }

  function campaign({ campaign: c }: CampaignCondition): Expression<SqlBool> {
    return eb.exists(
      eb
        .selectFrom('deliveries as seg_d')
        .select(sql.lit(1).as('one'))
        .where('seg_d.contact_id', '=', contactId)
        .where('seg_d.campaign_key', '=', c.key)
        .where(`seg_d.${eventColumns[c.event]}`, 'is not', null),
    );
  }

  /** The filter, or its complement when `negated`: "not" is pushed down to the conditions. */
  function compile(f: Filter, negated: boolean): Expression<SqlBool> {
    if ('all' in f || 'any' in f) {
      const items = 'all' in f ? f.all : f.any;
      const conjunction = 'all' in f !== negated;
      if (items.length === 0) return conjunction ? TRUE : FALSE;
      const parts = items.map((item) => compile(item, negated));
      return conjunction ? eb.and(parts) : eb.or(parts);
    }
    if ('not' in f) return compile(f.not, !negated);
    if ('field' in f) return field(f, negated);
    const exists = 'consent' in f ? consent(f) : campaign(f);
    return negated ? eb.not(exists) : exists;
  }

  const condition = eb.and([eb(col('erased_at'), 'is', null), compile(filter, false)]);
  return <DB, TB extends keyof DB>(_eb: ExpressionBuilder<DB, TB>): Expression<SqlBool> => condition;
}

// The queries behind exports. Bulk pages are compiled queries with a stable text (keyset cursors
// are parameters): each is prepared once and run page after page.
import { type Expression, type ExpressionBuilder, type SqlBool, sql } from 'kysely';
import type { Executor } from '../../database.ts';
import { type Filter, type SegmentScope, segmentWhere } from '../segments/index.ts';

/** Who is exported: a segment's members, or every contact not erased. */
export type Members = { filter: Filter; scope: SegmentScope } | undefined;

const notErased = sql<SqlBool>`${sql.ref('c.erased_at')} is null`;

/** The condition on the contact aliased `c`, usable in any query that joins it. */
function membersWhere(members: Members) {
  if (members) return segmentWhere(members.filter, 'c', members.scope);
  return <DB, TB extends keyof DB>(_eb: ExpressionBuilder<DB, TB>): Expression<SqlBool> => notErased;
}

/** One page of contacts in id order, after `after` (exclusive; '' for the first page). */
export const contactPageQuery = (db: Executor, members: Members, after: string, limit: number) =>
  db
    .selectFrom('contacts as c')
    .selectAll('c')
    .where(membersWhere(members))
    .where('c.id', '>', after)
    .orderBy('c.id')
    .limit(limit)
    .compile();

/**
 * The states of the exported contacts whose ids lie in [from, to], with the source and evidence
 * of the event that set each state. The contact condition keeps a page bounded when a sparse
 * segment spreads its members over a wide range of ids.
 */
export const statesInRangeQuery = (db: Executor, members: Members, from: string, to: string) =>
  db
    .selectFrom('consent_states as s')
    .innerJoin('contacts as c', 'c.id', 's.contact_id')
    .leftJoin('consent_events as e', 'e.id', 's.last_event_id')
    .select([
      's.contact_id',
      's.purpose_key',
      's.channel_key',
      's.status',
      's.since',
      's.confirmed',
      's.purpose_version',
      'e.source_type',
      'e.evidence',
    ])
    .where('s.contact_id', '>=', from)
    .where('s.contact_id', '<=', to)
    .where(membersWhere(members))
    .compile();

/** When each (contact, purpose, channel) in [from, to] was last confirmed (double opt-in, campaign link, renewal). */
export const confirmationsInRangeQuery = (db: Executor, members: Members, from: string, to: string) =>
  db
    .selectFrom('consent_events as e')
    .innerJoin('contacts as c', 'c.id', 'e.contact_id')
    .select(['e.contact_id', 'e.purpose_key', 'e.channel_key', (eb) => eb.fn.max('e.occurred_at').as('confirmed_at')])
    .where('e.contact_id', '>=', from)
    .where('e.contact_id', '<=', to)
    .where('e.status', '=', 'granted')
    .where((eb) => eb.or([eb('e.action', 'in', ['confirmed', 'renewed']), eb('e.source_type', 'in', ['double_opt_in', 'campaign'])]))
    .where(membersWhere(members))
    .groupBy(['e.contact_id', 'e.purpose_key', 'e.channel_key'])
    .compile();

/**
 * One page of consent states in primary-key order after the key `after`. Without a segment,
 * erased contacts' states are included: they hold no personal data, only the pseudonymous proof.
 */
export const statePageQuery = (db: Executor, members: Members, after: [string, string, string], limit: number) => {
  let query = db
    .selectFrom('consent_states as s')
    .innerJoin('contacts as c', 'c.id', 's.contact_id')
    .select([
      's.contact_id',
      'c.email',
      'c.phone',
      's.purpose_key',
      's.channel_key',
      's.status',
      's.since',
      's.expires_at',
      's.confirmed',
      's.purpose_version',
      's.proof_grade',
      's.last_event_id',
      's.updated_at',
    ])
    .where(({ eb, refTuple, tuple }) => eb(refTuple('s.contact_id', 's.purpose_key', 's.channel_key'), '>', tuple(...after)))
    .orderBy('s.contact_id')
    .orderBy('s.purpose_key')
    .orderBy('s.channel_key')
    .limit(limit);
  if (members) query = query.where(membersWhere(members));
  return query.compile();
};

/** One page of ledger events in chain order (contact, seq) after `after`. */
export const eventPageQuery = (db: Executor, members: Members, after: [string, number], limit: number) => {
  let query = db
    .selectFrom('consent_events as e')
    .select([
      'e.id',
      'e.contact_id',
      'e.seq',
      'e.purpose_key',
      'e.purpose_version',
      'e.channel_key',
      'e.action',
      'e.status',
      'e.legal_basis',
      'e.source_type',
      'e.source_ref',
      'e.evidence',
      'e.evidence_hash',
      'e.expires_at',
      'e.occurred_at',
      'e.recorded_at',
      'e.prev_hash',
      'e.hash',
    ])
    // The seq parameter is cast so PostgreSQL types it as the integer column it is compared with.
    .where(({ eb, refTuple, tuple }) =>
      eb(refTuple('e.contact_id', 'e.seq'), '>', tuple(after[0], sql<number>`cast(${after[1]} as integer)`)),
    )
    .orderBy('e.contact_id')
    .orderBy('e.seq')
    .limit(limit);
  if (members) query = query.innerJoin('contacts as c', 'c.id', 'e.contact_id').where(membersWhere(members));
  return query.compile();
};

export const listFieldRows = (db: Executor) => db.selectFrom('fields').selectAll().orderBy('key').execute();

export const listPurposeVersionRows = (db: Executor) => db.selectFrom('purpose_versions').selectAll().execute();

/** A person's campaign deliveries, with the campaign's name and channel. */
export const deliveriesOfContact = (db: Executor, contactId: string) =>
  db
    .selectFrom('deliveries as d')
    .leftJoin('campaigns as k', 'k.key', 'd.campaign_key')
    .select([
      'd.id',
      'd.campaign_key',
      'k.name as campaign_name',
      'k.channel_key',
      'd.step',
      'd.template',
      'd.status',
      'd.created_at',
      'd.sent_at',
      'd.clicked_at',
      'd.confirmed_at',
      'd.unsubscribed_at',
      'd.bounced_at',
    ])
    .where('d.contact_id', '=', contactId)
    .orderBy('d.id')
    .execute();

/** The messages sent (or kept) for a person: what and when, not their bodies. */
export const messagesOfContact = (db: Executor, contactId: string) =>
  db
    .selectFrom('messages')
    .select(['id', 'kind', 'channel_key', 'template_key', 'purpose_key', 'locale', 'status', 'created_at', 'sent_at'])
    .where('contact_id', '=', contactId)
    .orderBy('created_at')
    .orderBy('id')
    .execute();

export const suppressionsOfHashes = (db: Executor, hashes: string[]) =>
  hashes.length === 0
    ? Promise.resolve([])
    : db
        .selectFrom('suppressions')
        .select(['channel_key', 'address_hash', 'reason', 'created_at'])
        .where('address_hash', 'in', hashes)
        .orderBy('created_at')
        .execute();

// Whole-ledger work: verifying every chain and the checkpoints, taking a checkpoint, rebuilding
// the state projection, and expiring consents whose validity has run out.
import { iso } from '../../platform/clock.ts';
import { type AppContext, systemRequest } from '../../platform/context.ts';
import { sha256Hex } from '../../platform/crypto.ts';
import { type ChainBreak, type StoredEvent, verifyChain } from './consents.ledger.ts';
import { countEvents, eventsOfContacts, findOrphanEvent, pageHeads } from './consents.repository.ts';
import { recordConsents } from './consents.service.ts';
import { foldEvent, type State } from './consents.state.ts';

const PAGE = 500;

export interface VerifyResult {
  ok: boolean;
  contacts: number;
  events: number;
  checkpoints: number;
  firstBroken?: ChainBreak;
}

type Progress = (done: number) => void;

export async function verifyLedger(ctx: AppContext, onProgress?: Progress): Promise<VerifyResult> {
  const db = ctx.db.kysely;
  let contacts = 0;
  let events = 0;
  let after = '';
  for (;;) {
    const heads = await pageHeads(db, after, PAGE);
    if (heads.length === 0) break;
    const rows = (await eventsOfContacts(
      db,
      heads.map((h) => h.contact_id),
    )) as StoredEvent[];
    const byContact = new Map<string, StoredEvent[]>();
    for (const r of rows) {
      const list = byContact.get(r.contact_id);
      if (list) list.push(r);
      else byContact.set(r.contact_id, [r]);
    }
    for (const head of heads) {
      const chain = byContact.get(head.contact_id) ?? [];
      const broken = verifyChain(ctx.secret, head.contact_id, chain, head);
      contacts += 1;
      events += chain.length;
      if (broken) return { ok: false, contacts, events, checkpoints: 0, firstBroken: broken };
    }
    after = (heads.at(-1) as { contact_id: string }).contact_id;
    onProgress?.(contacts);
  }
  if ((await countEvents(db)) !== events) {
    const orphan = await findOrphanEvent(db);
    return {
      ok: false,
      contacts,
      events,
      checkpoints: 0,
      firstBroken: {
        contactId: orphan?.contact_id ?? '',
        eventId: orphan?.id ?? null,
        seq: orphan?.seq ?? null,
        reason: 'orphan_event',
      },
    };
  }
  const checkpoints = await verifyCheckpoints(ctx);
  if (checkpoints.broken) return { ok: false, contacts, events, checkpoints: checkpoints.count, firstBroken: checkpoints.broken };
  return { ok: true, contacts, events, checkpoints: checkpoints.count };
}

const digestOf = (prev: string, entries: Array<{ contact_id: string; seq: number; hash: string }>) =>
  sha256Hex(`${prev}\n${entries.map((e) => `${e.contact_id}:${e.seq}:${e.hash}`).join('\n')}`);

async function verifyCheckpoints(ctx: AppContext): Promise<{ count: number; broken?: ChainBreak }> {
  const db = ctx.db.kysely;
  const checkpoints = await db.selectFrom('ledger_checkpoints').selectAll().orderBy('created_at').orderBy('id').execute();
  let prev = '0'.repeat(64);
  for (const cp of checkpoints) {
    const entries = await db
      .selectFrom('ledger_checkpoint_entries')
      .select(['contact_id', 'seq', 'hash'])
      .where('checkpoint_id', '=', cp.id)
      .orderBy('contact_id')
      .execute();
    if (cp.prev_digest !== prev || digestOf(prev, entries) !== cp.digest) {
      return { count: checkpoints.length, broken: { contactId: '', eventId: null, seq: null, reason: 'checkpoint_digest_mismatch' } };
    }
    prev = cp.digest;
  }
  const mismatch = await db
    .selectFrom('ledger_checkpoint_entries as k')
    .leftJoin('consent_events as e', (j) => j.onRef('e.contact_id', '=', 'k.contact_id').onRef('e.seq', '=', 'k.seq'))
    .select(['k.contact_id', 'k.seq', 'e.id'])
    .where((eb) => eb.or([eb('e.id', 'is', null), eb('e.hash', '!=', eb.ref('k.hash'))]))
    .limit(1)
    .executeTakeFirst();
  if (mismatch) {
    return {
      count: checkpoints.length,
      broken: { contactId: mismatch.contact_id, eventId: mismatch.id ?? null, seq: mismatch.seq, reason: 'checkpoint_mismatch' },
    };
  }
  return { count: checkpoints.length };
}

export interface Checkpoint {
  id: string;
  createdAt: string;
  digest: string;
  heads: number;
}

/**
 * Seals the chain heads that moved since the last checkpoint into a digest that links to the
 * previous one: rewriting a whole chain, hashes and all, no longer matches. Publish the digest
 * (it is printed and logged) to make the seal independent of this database.
 */
export async function takeCheckpoint(ctx: AppContext): Promise<Checkpoint | undefined> {
  return ctx.db.kysely.transaction().execute(async (trx) => {
    const last = await trx
      .selectFrom('ledger_checkpoints')
      .selectAll()
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    const moved = await trx
      .selectFrom('chain_heads as h')
      .select(['h.contact_id', 'h.seq', 'h.hash'])
      .where('h.seq', '>', 0)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('ledger_checkpoint_entries as k')
              .select('k.seq')
              .whereRef('k.contact_id', '=', 'h.contact_id')
              .whereRef('k.seq', '=', 'h.seq'),
          ),
        ),
      )
      .orderBy('h.contact_id')
      .execute();
    if (moved.length === 0) return undefined;
    const prev = last?.digest ?? '0'.repeat(64);
    const checkpoint = {
      id: ctx.newId(),
      created_at: iso(ctx.clock.now()),
      prev_digest: prev,
      digest: digestOf(prev, moved),
      heads: moved.length,
    };
    await trx.insertInto('ledger_checkpoints').values(checkpoint).execute();
    for (let i = 0; i < moved.length; i += 500) {
      await trx
        .insertInto('ledger_checkpoint_entries')
        .values(moved.slice(i, i + 500).map((m) => ({ checkpoint_id: checkpoint.id, ...m })))
        .execute();
    }
    ctx.logger.info({ checkpoint: checkpoint.id, digest: checkpoint.digest, heads: checkpoint.heads }, 'ledger checkpoint');
    return { id: checkpoint.id, createdAt: checkpoint.created_at, digest: checkpoint.digest, heads: checkpoint.heads };
  });
}

/** Replays the ledger into a fresh state table (the projection is derived, the ledger is the truth). */
export async function rebuildState(ctx: AppContext, onProgress?: Progress): Promise<{ contacts: number; states: number }> {
  const db = ctx.db.kysely;
  let contacts = 0;
  let states = 0;
  await db.transaction().execute(async (trx) => {
    const grades = new Map(
      (
        await trx
          .selectFrom('consent_states')
          .select(['contact_id', 'purpose_key', 'channel_key', 'proof_grade'])
          .where('proof_grade', 'is not', null)
          .execute()
      ).map((g) => [`${g.contact_id}\u0000${g.purpose_key}\u0000${g.channel_key}`, g.proof_grade]),
    );
    await trx.deleteFrom('consent_states').execute();
    let after = '';
    for (;;) {
      const heads = await pageHeads(trx, after, PAGE);
      if (heads.length === 0) break;
      const rows = await eventsOfContacts(
        trx,
        heads.map((h) => h.contact_id),
      );
      const folded = new Map<string, { contact: string; purpose: string; channel: string; state: State }>();
      for (const r of rows) {
        const key = `${r.contact_id}\u0000${r.purpose_key}\u0000${r.channel_key}`;
        const prev = folded.get(key)?.state;
        const state = foldEvent(prev, {
          id: r.id,
          action: r.action,
          status: r.status,
          sourceType: r.source_type,
          occurredAt: r.occurred_at,
          expiresAt: r.expires_at,
          purposeVersion: r.purpose_version,
        });
        folded.set(key, { contact: r.contact_id, purpose: r.purpose_key, channel: r.channel_key, state });
      }
      const now = iso(ctx.clock.now());
      const values = [...folded.entries()].map(([key, f]) => ({
        contact_id: f.contact,
        purpose_key: f.purpose,
        channel_key: f.channel,
        status: f.state.status,
        since: f.state.since,
        expires_at: f.state.expiresAt,
        confirmed: f.state.confirmed ? 1 : 0,
        purpose_version: f.state.purposeVersion,
        last_event_id: f.state.lastEventId,
        proof_grade: grades.get(key) ?? null,
        updated_at: now,
      }));
      for (let i = 0; i < values.length; i += 400)
        await trx
          .insertInto('consent_states')
          .values(values.slice(i, i + 400))
          .execute();
      contacts += heads.length;
      states += values.length;
      after = (heads.at(-1) as { contact_id: string }).contact_id;
      onProgress?.(contacts);
    }
  });
  return { contacts, states };
}

interface Due {
  contact_id: string;
  purpose_key: string;
  channel_key: string;
  /** When it ran out: the `expired` event's time. */
  ended_at: string;
}

/** Records `expired`, page after page, for whatever `selectDue` finds until it finds nothing. */
async function expireAll(ctx: AppContext, ref: string, selectDue: () => Promise<Due[]>): Promise<number> {
  let total = 0;
  for (;;) {
    const due = await selectDue();
    if (due.length === 0) return total;
    await recordConsents(
      ctx,
      systemRequest(ref),
      due.map((d) => ({
        contactId: d.contact_id,
        purpose: d.purpose_key,
        channel: d.channel_key,
        action: 'expired' as const,
        source: { type: 'system', ref },
        occurredAt: d.ended_at,
      })),
      { internal: true },
    );
    total += due.length;
  }
}

/** Records `expired` for every granted consent whose validity ended by `at`. */
export const expireConsents = (ctx: AppContext, at: Date): Promise<number> =>
  expireAll(
    ctx,
    'expiry',
    () =>
      ctx.db.kysely
        .selectFrom('consent_states as s')
        .innerJoin('contacts as c', 'c.id', 's.contact_id')
        .select(['s.contact_id', 's.purpose_key', 's.channel_key', 's.expires_at as ended_at'])
        .where('s.status', '=', 'granted')
        .where('s.expires_at', '<=', iso(at))
        .where('c.erased_at', 'is', null)
        .orderBy('s.expires_at')
        .limit(PAGE)
        .execute() as Promise<Due[]>,
  );

/** Records `expired` for double opt-in requests still pending `days` after they were made. */
export const expirePending = (ctx: AppContext, at: Date, days: number): Promise<number> =>
  expireAll(ctx, 'double-opt-in-expiry', async () => {
    const rows = await ctx.db.kysely
      .selectFrom('consent_states as s')
      .innerJoin('contacts as c', 'c.id', 's.contact_id')
      .select(['s.contact_id', 's.purpose_key', 's.channel_key', 's.since'])
      .where('s.status', '=', 'pending')
      .where('s.since', '<=', iso(new Date(at.getTime() - days * 86_400_000)))
      .where('c.erased_at', 'is', null)
      .orderBy('s.since')
      .limit(PAGE)
      .execute();
    return rows.map(({ since, ...r }) => ({ ...r, ended_at: iso(new Date(new Date(since).getTime() + days * 86_400_000)) }));
  });

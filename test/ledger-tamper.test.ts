import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { takeCheckpoint, verifyLedger } from '../src/modules/consents/index.ts';
import { buildTestApp, TEST_SECRET, type TestApp } from './helpers/build-app.ts';
import { runCli } from './helpers/cli.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, record } from './helpers/factories.ts';

// Every stored column of an event, with a different value of the right type.
const alterations: Record<string, unknown> = {
  id: '01ZZZZZZZZZZZZZZZZZZZZZZZZ',
  seq: 7,
  purpose_key: 'commercial-sms',
  purpose_version: 9,
  channel_key: 'sms',
  action: 'refused',
  status: 'refused',
  legal_basis: 'legitimate_interest',
  source_type: 'import',
  source_ref: 'forged',
  evidence: JSON.stringify({ ip: '10.9.9.9', text: 'forged wording' }),
  evidence_hash: 'f'.repeat(64),
  expires_at: '2030-01-01T00:00:00.000Z',
  occurred_at: '2020-01-01T00:00:00.000Z',
  recorded_at: '2020-01-01T00:00:00.000Z',
  idempotency_key: 'forged-key',
  request_hash: 'e'.repeat(64),
  prev_hash: 'd'.repeat(64),
  hash: 'c'.repeat(64),
};

describe.each(dialects)('ledger verify on %s', (dialect) => {
  let t: TestApp;
  let contactId: string;
  let events: Array<{ id: string }>;

  beforeAll(async () => {
    t = await buildTestApp(dialect);
    const other = await createContact(t);
    await record(t, { contactId: other.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
    const contact = await createContact(t);
    contactId = contact.id;
    events = [];
    for (const action of ['grant', 'withdraw', 'grant', 'object']) {
      events.push(await record(t, { contactId, purpose: 'commercial-email', channel: 'email', action, evidence: { ip: '203.0.113.5' } }));
    }
  });
  afterAll(async () => t.close());

  it('passes on an untouched ledger', async () => {
    expect(await verifyLedger(t.ctx)).toMatchObject({ ok: true, events: 5 });
  });

  it.each(Object.keys(alterations))('detects a change to the %s column of a stored event, naming contact and event', async (column) => {
    const target = events[1] as { id: string };
    const db = t.ctx.db.kysely;
    const original = await db.selectFrom('consent_events').selectAll().where('id', '=', target.id).executeTakeFirstOrThrow();
    await sql`update consent_events set ${sql.ref(column)} = ${alterations[column]} where id = ${target.id}`.execute(db);
    try {
      const result = await verifyLedger(t.ctx);
      expect(result.ok).toBe(false);
      expect(result.firstBroken?.contactId).toBe(contactId);
      // A moved sequence number shows as a gap at the event that now follows the hole.
      const named = column === 'id' ? [alterations.id] : column === 'seq' ? [target.id, (events[2] as { id: string }).id] : [target.id];
      expect(named).toContain(result.firstBroken?.eventId);
    } finally {
      const restoreId = column === 'id' ? (alterations.id as string) : target.id;
      await sql`update consent_events set ${sql.ref(column)} = ${(original as Record<string, unknown>)[column]} where id = ${restoreId}`.execute(
        db,
      );
    }
    expect((await verifyLedger(t.ctx)).ok).toBe(true);
  });

  it('detects a rewritten whole chain through the checkpoint', async () => {
    const checkpoint = await takeCheckpoint(t.ctx);
    expect(checkpoint?.heads).toBe(2);
    // Forge: delete the chain and the head, as if the person had never consented.
    const db = t.ctx.db.kysely;
    const saved = await db.selectFrom('consent_events').selectAll().where('contact_id', '=', contactId).execute();
    const head = await db.selectFrom('chain_heads').selectAll().where('contact_id', '=', contactId).executeTakeFirstOrThrow();
    await db.deleteFrom('consent_events').where('contact_id', '=', contactId).execute();
    await db
      .updateTable('chain_heads')
      .set({ seq: 0, hash: '0'.repeat(64) })
      .where('contact_id', '=', contactId)
      .execute();
    try {
      const result = await verifyLedger(t.ctx);
      expect(result.ok).toBe(false);
      expect(result.firstBroken).toMatchObject({ contactId, reason: 'checkpoint_mismatch' });
    } finally {
      await db.insertInto('consent_events').values(saved).execute();
      await db.updateTable('chain_heads').set({ seq: head.seq, hash: head.hash }).where('contact_id', '=', contactId).execute();
    }
    expect((await verifyLedger(t.ctx)).ok).toBe(true);
  });

  describe('assent ledger verify', () => {
    const env = () => ({ DATABASE_URL: t.database.url, ASSENT_SECRET: TEST_SECRET });

    it('exits 0 on an intact ledger and prints JSON with --json', async () => {
      const run = await runCli(['ledger', 'verify', '--json'], env());
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ ok: true, events: 5 });
    });

    it('exits 1 naming the contact and event when an event was edited', async () => {
      const target = events[2] as { id: string };
      const db = t.ctx.db.kysely;
      await db.updateTable('consent_events').set({ occurred_at: '2019-05-01T00:00:00.000Z' }).where('id', '=', target.id).execute();
      const run = await runCli(['ledger', 'verify'], env());
      await db
        .updateTable('consent_events')
        .set({ occurred_at: (events[2] as unknown as { occurredAt: string }).occurredAt })
        .where('id', '=', target.id)
        .execute();
      expect(run.code).toBe(1);
      expect(run.stdout).toContain(contactId);
      expect(run.stdout).toContain(target.id);
    });

    it('exits 1 naming the contact and event when an event in the middle of a chain was deleted', async () => {
      const target = events[1] as { id: string };
      const db = t.ctx.db.kysely;
      const saved = await db.selectFrom('consent_events').selectAll().where('id', '=', target.id).executeTakeFirstOrThrow();
      await db.deleteFrom('consent_events').where('id', '=', target.id).execute();
      const run = await runCli(['ledger', 'verify', '--json'], env());
      await db.insertInto('consent_events').values(saved).execute();
      expect(run.code).toBe(1);
      const out = JSON.parse(run.stdout);
      expect(out.ok).toBe(false);
      expect(out.firstBroken.contactId).toBe(contactId);
      // The first event after the gap is the one named: its sequence number no longer follows.
      expect(out.firstBroken.eventId).toBe((events[2] as { id: string }).id);
      expect(out.firstBroken.reason).toBe('sequence_gap');
    });
  });
});

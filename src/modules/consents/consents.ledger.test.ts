// Unit tests of the ledger arithmetic (event and evidence hashes, chain checks) and of the
// decision rules' date switch, as pure functions: no store.
import { describe, expect, it } from 'vitest';
import type { Channel } from '../channels/index.ts';
import type { Purpose } from '../purposes/index.ts';
import { type DecisionFacts, decideFromFacts } from './consents.decisions.ts';
import {
  type Evidence,
  eraseEvidence,
  eventHash,
  evidenceHash,
  GENESIS_HASH,
  type HashedFields,
  type StoredEvent,
  verifyChain,
} from './consents.ledger.ts';

const SECRET = 'unit-secret-0123456789-abcdefghijklmnop';
const CONTACT = '01JCONTACT0000000000000000';

const baseFields = (): HashedFields => ({
  id: '01JEVENT00000000000000000A',
  contact_id: CONTACT,
  seq: 1,
  purpose_key: 'commercial-email',
  purpose_version: 1,
  channel_key: 'email',
  action: 'granted',
  status: 'granted',
  legal_basis: 'consent',
  source_type: 'form',
  source_ref: 'signup@1',
  evidence_hash: 'a'.repeat(64),
  expires_at: null,
  occurred_at: '2026-11-22T10:00:00.000Z',
  recorded_at: '2026-11-22T10:00:01.000Z',
  idempotency_key: null,
  request_hash: null,
  prev_hash: GENESIS_HASH,
});

// One change per hashed field. Typed over every key of HashedFields: a new field that is not
// listed here does not compile.
const changes: { [K in keyof HashedFields]-?: Array<HashedFields[K]> } = {
  id: ['01JEVENT00000000000000000B'],
  contact_id: ['01JCONTACT0000000000000001'],
  seq: [2, 0],
  purpose_key: ['commercial-sms'],
  purpose_version: [2],
  channel_key: ['sms'],
  action: ['confirmed'],
  status: ['pending'],
  legal_basis: ['legitimate_interest'],
  source_type: ['api'],
  source_ref: [null, 'signup@2', ''],
  evidence_hash: ['b'.repeat(64)],
  expires_at: ['2026-12-22T10:00:00.000Z', ''],
  occurred_at: ['2026-11-22T10:00:00.001Z', '2026-11-22T10:00:00Z'],
  recorded_at: ['2026-11-22T10:00:01.001Z'],
  idempotency_key: ['key-1', ''],
  request_hash: ['c'.repeat(64)],
  prev_hash: ['d'.repeat(64)],
};

describe('eventHash', () => {
  it('is a stable SHA-256 hex digest, independent of property order', () => {
    const fields = baseFields();
    const reversed = Object.fromEntries(Object.entries(fields).reverse()) as unknown as HashedFields;
    expect(eventHash(fields)).toMatch(/^[0-9a-f]{64}$/);
    expect(eventHash(fields)).toBe(eventHash(baseFields()));
    expect(eventHash(reversed)).toBe(eventHash(fields));
  });

  for (const [field, values] of Object.entries(changes) as Array<[keyof HashedFields, unknown[]]>) {
    for (const value of values) {
      it(`changes when ${field} becomes ${JSON.stringify(value)}`, () => {
        const changed = { ...baseFields(), [field]: value } as HashedFields;
        expect(changed[field]).not.toStrictEqual(baseFields()[field]);
        expect(eventHash(changed)).not.toBe(eventHash(baseFields()));
      });
    }
  }

  it('covers every field of a stored event but the hash itself and the evidence (covered by evidence_hash)', () => {
    const fields = Object.keys(baseFields()).sort();
    expect(Object.keys(changes).sort()).toEqual(fields);
    const stored: StoredEvent = { ...baseFields(), evidence: '{}', hash: 'x' };
    expect(eventHash({ ...stored, hash: 'y', evidence: '{"ip":"1.2.3.4"}' } as StoredEvent)).toBe(eventHash(stored));
  });
});

describe('evidenceHash and eraseEvidence', () => {
  const evidence: Evidence = {
    ip: '203.0.113.9',
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0',
    url: 'https://shop.example/signup?ref=camille.martin@example.com',
    method: 'form',
    locale: 'fr',
    text: 'Informations commerciales par email',
    textHash: 'e'.repeat(64),
    wordingHash: 'f'.repeat(64),
  };

  it('is unchanged when the personal fields are erased', () => {
    const erased = eraseEvidence(SECRET, evidence);
    expect(evidenceHash(SECRET, erased)).toBe(evidenceHash(SECRET, evidence));
    // Erasing twice changes nothing either.
    expect(evidenceHash(SECRET, eraseEvidence(SECRET, erased))).toBe(evidenceHash(SECRET, evidence));
    // The stored form (JSON text) verifies the same.
    expect(evidenceHash(SECRET, JSON.parse(JSON.stringify(erased)))).toBe(evidenceHash(SECRET, evidence));
  });

  it('removes every personal value and keeps the rest', () => {
    const erased = eraseEvidence(SECRET, evidence);
    const text = JSON.stringify(erased);
    for (const value of [evidence.ip, evidence.userAgent, evidence.url, 'camille.martin']) expect(text).not.toContain(value);
    expect(erased).toMatchObject({
      method: 'form',
      locale: 'fr',
      text: evidence.text,
      textHash: evidence.textHash,
      wordingHash: evidence.wordingHash,
    });
    expect(Object.keys(erased.erased ?? {}).sort()).toEqual(['ip', 'url', 'userAgent']);
    expect(erased).not.toHaveProperty('ip');
  });

  it('erases only the fields present, and an evidence without personal fields stays as it is', () => {
    const partial: Evidence = { ip: '198.51.100.1', text: 'x' };
    const erased = eraseEvidence(SECRET, partial);
    expect(Object.keys(erased.erased ?? {})).toEqual(['ip']);
    expect(evidenceHash(SECRET, erased)).toBe(evidenceHash(SECRET, partial));
    const plain: Evidence = { text: 'x', method: 'api' };
    expect(eraseEvidence(SECRET, plain)).toEqual(plain);
  });

  it('changes when any field changes, personal or not, before or after erasure', () => {
    const base = evidenceHash(SECRET, evidence);
    for (const field of Object.keys(evidence)) {
      const changed = { ...evidence, [field]: `${String(evidence[field])}!` };
      expect(evidenceHash(SECRET, changed), field).not.toBe(base);
      expect(evidenceHash(SECRET, eraseEvidence(SECRET, changed)), field).not.toBe(base);
      const { [field]: _removed, ...without } = evidence;
      expect(evidenceHash(SECRET, without), field).not.toBe(base);
    }
    expect(evidenceHash(SECRET, { ...evidence, extra: 'added' })).not.toBe(base);
  });

  it('keys the personal digests with the secret', () => {
    expect(evidenceHash('another-secret-0123456789-abcdefghijkl', evidence)).not.toBe(evidenceHash(SECRET, evidence));
    // Without personal fields there is nothing keyed.
    const plain: Evidence = { text: 'x' };
    expect(evidenceHash('another-secret-0123456789-abcdefghijkl', plain)).toBe(evidenceHash(SECRET, plain));
  });
});

/** A valid chain of n events for one contact, and its head. */
function buildChain(n: number): { events: StoredEvent[]; head: { seq: number; hash: string } } {
  const events: StoredEvent[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const evidence: Evidence = { ip: `192.0.2.${seq}`, text: `wording ${seq}` };
    const e: StoredEvent = {
      ...baseFields(),
      id: `01JEVENT0000000000000000${String(seq).padStart(2, '0')}`,
      seq,
      action: seq % 2 === 0 ? 'withdrawn' : 'granted',
      status: seq % 2 === 0 ? 'withdrawn' : 'granted',
      occurred_at: new Date(Date.UTC(2026, 10, 22, 10, seq)).toISOString(),
      recorded_at: new Date(Date.UTC(2026, 10, 22, 10, seq)).toISOString(),
      evidence: JSON.stringify(evidence),
      evidence_hash: evidenceHash(SECRET, evidence),
      prev_hash: prev,
      hash: '',
    };
    e.hash = eventHash(e);
    prev = e.hash;
    events.push(e);
  }
  const last = events.at(-1);
  return { events, head: { seq: last?.seq ?? 0, hash: last?.hash ?? GENESIS_HASH } };
}

/** Recomputes the event's hash (as a forger with write access would). */
const rehash = (e: StoredEvent): StoredEvent => ({ ...e, hash: eventHash(e) });

describe('verifyChain', () => {
  it('passes a valid chain, an empty one with a genesis head, and one whose evidence was erased', () => {
    const { events, head } = buildChain(4);
    expect(verifyChain(SECRET, CONTACT, events, head)).toBeUndefined();
    expect(verifyChain(SECRET, CONTACT, [], { seq: 0, hash: GENESIS_HASH })).toBeUndefined();
    const erased = events.map((e) => ({ ...e, evidence: JSON.stringify(eraseEvidence(SECRET, JSON.parse(e.evidence))) }));
    expect(erased[0]?.evidence).not.toContain('192.0.2.1');
    expect(verifyChain(SECRET, CONTACT, erased, head)).toBeUndefined();
  });

  it('detects a deleted event as a sequence gap at the event after it', () => {
    const { events, head } = buildChain(4);
    const without = events.filter((e) => e.seq !== 2);
    expect(verifyChain(SECRET, CONTACT, without, head)).toEqual({
      contactId: CONTACT,
      eventId: events[2]?.id,
      seq: 3,
      reason: 'sequence_gap',
    });
    const noFirst = events.slice(1);
    expect(verifyChain(SECRET, CONTACT, noFirst, head)).toMatchObject({ eventId: events[1]?.id, reason: 'sequence_gap' });
  });

  it('detects a deletion hidden by renumbering as a prev-hash mismatch', () => {
    const { events, head } = buildChain(4);
    const renumbered = events.filter((e) => e.seq !== 2).map((e, i) => rehash({ ...e, seq: i + 1 }));
    expect(verifyChain(SECRET, CONTACT, renumbered, head)).toMatchObject({ eventId: events[2]?.id, seq: 2, reason: 'prev_hash_mismatch' });
  });

  it('detects a prev-hash that does not link, even when the event hash was recomputed', () => {
    const { events, head } = buildChain(3);
    const forged = [...events];
    forged[1] = rehash({ ...(events[1] as StoredEvent), prev_hash: 'd'.repeat(64) });
    expect(verifyChain(SECRET, CONTACT, forged, head)).toMatchObject({ eventId: events[1]?.id, seq: 2, reason: 'prev_hash_mismatch' });
    const genesis = [...events];
    genesis[0] = rehash({ ...(events[0] as StoredEvent), prev_hash: 'd'.repeat(64) });
    expect(verifyChain(SECRET, CONTACT, genesis, head)).toMatchObject({ eventId: events[0]?.id, seq: 1, reason: 'prev_hash_mismatch' });
  });

  it('detects tampered evidence: a changed value, a removed field, unreadable JSON', () => {
    const { events, head } = buildChain(3);
    const e2 = events[1] as StoredEvent;
    const tampered = [
      { ...e2, evidence: JSON.stringify({ ...JSON.parse(e2.evidence), text: 'another wording' }) },
      { ...e2, evidence: JSON.stringify({ text: 'wording 2' }) },
      { ...e2, evidence: '{not json' },
      { ...e2, evidence_hash: 'b'.repeat(64) },
    ];
    for (const bad of tampered) {
      expect(verifyChain(SECRET, CONTACT, [events[0] as StoredEvent, bad, events[2] as StoredEvent], head)).toEqual({
        contactId: CONTACT,
        eventId: e2.id,
        seq: 2,
        reason: 'evidence_mismatch',
      });
    }
    // Evidence and its digest rewritten together: the event hash no longer matches.
    const evidence = { ...JSON.parse(e2.evidence), text: 'another wording' };
    const rewritten = { ...e2, evidence: JSON.stringify(evidence), evidence_hash: evidenceHash(SECRET, evidence) };
    expect(verifyChain(SECRET, CONTACT, [events[0] as StoredEvent, rewritten, events[2] as StoredEvent], head)).toMatchObject({
      eventId: e2.id,
      reason: 'hash_mismatch',
    });
  });

  it('names the changed event for a change to any column', () => {
    const { events, head } = buildChain(3);
    const target = events[1] as StoredEvent;
    const columns: Array<[keyof StoredEvent, unknown]> = [
      ...(Object.entries(changes) as Array<[keyof HashedFields, unknown[]]>).map(
        ([k, v]) => [k, v.find((x) => x !== target[k])] as [keyof StoredEvent, unknown],
      ),
      ['evidence', JSON.stringify({ ip: '192.0.2.99', text: 'wording 2' })],
      ['hash', 'f'.repeat(64)],
    ];
    for (const [column, value] of columns) {
      const changed = { ...target, [column]: value } as StoredEvent;
      expect(changed[column], column).not.toBe(target[column]);
      const broken = verifyChain(SECRET, CONTACT, [events[0] as StoredEvent, changed, events[2] as StoredEvent], head);
      expect(broken, column).toBeDefined();
      expect(broken?.eventId, column).toBe(changed.id);
    }
  });

  it('detects a head that does not match: truncated chain, other hash, missing head', () => {
    const { events, head } = buildChain(3);
    expect(verifyChain(SECRET, CONTACT, events.slice(0, 2), head)).toEqual({
      contactId: CONTACT,
      eventId: events[1]?.id,
      seq: 3,
      reason: 'head_mismatch',
    });
    expect(verifyChain(SECRET, CONTACT, events, { seq: 3, hash: 'b'.repeat(64) })).toMatchObject({
      eventId: events[2]?.id,
      reason: 'head_mismatch',
    });
    expect(verifyChain(SECRET, CONTACT, events, { seq: 4, hash: head.hash })).toMatchObject({ reason: 'head_mismatch' });
    expect(verifyChain(SECRET, CONTACT, events, undefined)).toMatchObject({ eventId: events[2]?.id, seq: null, reason: 'head_mismatch' });
    expect(verifyChain(SECRET, CONTACT, [], head)).toMatchObject({ eventId: null, reason: 'head_mismatch' });
  });
});

describe('decideFromFacts: the phone switch date (RULES 13, Loi 2025-594)', () => {
  const settings = { formerCustomerAfterDays: 365, phoneConsentRequiredFrom: '2026-08-11' };
  const phone: Channel = { key: 'phone', kind: 'phone', names: { fr: 'Téléphone' }, builtin: true } as Channel;
  const purpose = {
    key: 'commercial-phone',
    version: 1,
    title: { fr: 'Informations commerciales par téléphone' },
    description: {},
    infoUrl: null,
    channels: ['phone'],
    legalBasis: 'legitimate_interest',
    doubleOptIn: false,
    expiry: { afterDays: null },
    partner: null,
    retentionDays: null,
    recipients: [],
    builtin: true,
    wordingHash: '0'.repeat(64),
  } as Purpose;
  const facts = (overrides: Partial<DecisionFacts> = {}): DecisionFacts => ({
    id: CONTACT,
    kind: 'person',
    lifecycle: 'prospect',
    last_purchase_at: null,
    erased_at: null,
    has_address: 1,
    status: null,
    expires_at: null,
    confirmed: null,
    last_event_id: null,
    suppression: null,
    ...overrides,
  });
  const at = (s: string) => new Date(s);
  const decideAt = (f: DecisionFacts, when: string, s = settings) => decideFromFacts(f, purpose, phone, at(when), s);

  it('allows a person prospect up to the last millisecond before 2026-08-11 (UTC), not from then', () => {
    expect(decideAt(facts(), '2026-08-10T23:59:59.999Z')).toEqual({
      allowed: true,
      basis: 'legitimate_interest',
      reason: 'opt_out_channel',
      evidenceEventId: null,
      expiresAt: null,
    });
    expect(decideAt(facts(), '2026-08-11T00:00:00.000Z')).toEqual({
      allowed: false,
      basis: 'legitimate_interest',
      reason: 'phone_consent_required',
      evidenceEventId: null,
      expiresAt: null,
    });
    expect(decideAt(facts(), '2026-08-11T00:00:00.001Z').reason).toBe('phone_consent_required');
    expect(decideAt(facts(), '2030-01-01T00:00:00.000Z').reason).toBe('phone_consent_required');
    expect(decideAt(facts(), '2020-01-01T00:00:00.000Z').reason).toBe('opt_out_channel');
  });

  it('follows the configured switch date', () => {
    const later = { ...settings, phoneConsentRequiredFrom: '2027-01-01' };
    expect(decideAt(facts(), '2026-12-31T23:59:59.999Z', later).reason).toBe('opt_out_channel');
    expect(decideAt(facts(), '2027-01-01T00:00:00.000Z', later).reason).toBe('phone_consent_required');
  });

  it('still allows, from the switch, a professional and a customer with a purchase in the last year', () => {
    const when = '2026-08-11T00:00:00.000Z';
    expect(decideAt(facts({ kind: 'professional' }), when).reason).toBe('opt_out_channel');
    expect(decideAt(facts({ lifecycle: 'customer', last_purchase_at: '2026-08-01T00:00:00.000Z' }), when)).toMatchObject({
      allowed: true,
      reason: 'opt_out_channel',
    });
    // Exactly 365 days after the purchase the contact is still a customer, one millisecond later a former one.
    expect(decideAt(facts({ last_purchase_at: '2025-08-11T00:00:00.000Z' }), when)).toMatchObject({
      allowed: true,
      reason: 'opt_out_channel',
    });
    expect(decideAt(facts({ last_purchase_at: '2025-08-10T23:59:59.999Z' }), when)).toMatchObject({
      allowed: false,
      reason: 'phone_consent_required',
    });
    // "customer" without a purchase is an account, not a sale.
    expect(decideAt(facts({ lifecycle: 'customer' }), when)).toMatchObject({ allowed: false, reason: 'phone_consent_required' });
  });

  it('allows with a valid consent on either side of the switch, and an objection stops both sides', () => {
    const granted = facts({ status: 'granted', confirmed: 0, last_event_id: 'EV1' });
    for (const when of ['2026-08-10T23:59:59.999Z', '2026-08-11T00:00:00.000Z']) {
      expect(decideAt(granted, when)).toEqual({
        allowed: true,
        basis: 'consent',
        reason: 'consent',
        evidenceEventId: 'EV1',
        expiresAt: null,
      });
      for (const status of ['withdrawn', 'refused', 'objected']) {
        expect(decideAt(facts({ status, last_event_id: 'EV2' }), when)).toEqual({
          allowed: false,
          basis: 'legitimate_interest',
          reason: 'objected',
          evidenceEventId: 'EV2',
          expiresAt: null,
        });
      }
    }
    // An expired consent no longer carries the call after the switch.
    const expired = facts({ status: 'granted', expires_at: '2026-08-11T00:00:00.000Z', last_event_id: 'EV3' });
    expect(decideAt(expired, '2026-08-10T23:59:59.999Z')).toMatchObject({
      allowed: true,
      basis: 'consent',
      expiresAt: '2026-08-11T00:00:00.000Z',
    });
    expect(decideAt(expired, '2026-08-11T00:00:00.000Z')).toMatchObject({
      allowed: false,
      reason: 'phone_consent_required',
      evidenceEventId: 'EV3',
    });
  });

  it('puts erasure, suppression and a missing number before the date rule', () => {
    const before = '2026-08-10T12:00:00.000Z';
    expect(decideAt(facts({ erased_at: '2026-08-01T00:00:00.000Z' }), before).reason).toBe('erased');
    expect(decideAt(facts({ suppression: 'objected', status: 'granted' }), before).reason).toBe('suppressed');
    expect(decideAt(facts({ has_address: 0 }), before).reason).toBe('no_address');
    expect(decideFromFacts(undefined, purpose, phone, at(before), settings)).toMatchObject({ allowed: false, reason: 'unknown_contact' });
  });
});

// The proof ledger's arithmetic: canonical event serialisation, evidence digests and chain
// checks. Pure functions: the service, verification and the bench share them.
import { canonicalJson, hmacHex, sha256Hex } from '../../platform/crypto.ts';

export const GENESIS_HASH = '0'.repeat(64);

/** Evidence fields that identify a person: on erasure each is replaced by its keyed digest. */
export const personalEvidenceFields = ['ip', 'userAgent', 'url'] as const;

export interface Evidence {
  ip?: string;
  userAgent?: string;
  url?: string;
  method?: string;
  locale?: string;
  text?: string;
  textHash?: string;
  wordingHash?: string;
  /** Present after erasure: the keyed digests of the personal fields that were removed. */
  erased?: Partial<Record<(typeof personalEvidenceFields)[number], string>>;
  [extra: string]: unknown;
}

const fieldDigest = (secret: string, field: string, value: string) => hmacHex(secret, `evidence:${field}:${value}`);

/**
 * Digest of the evidence that the event hash covers. Personal fields enter only as keyed
 * digests, so removing them on erasure leaves the digest, and so the chain, unchanged.
 */
export function evidenceHash(secret: string, evidence: Evidence): string {
  const { erased, ...rest } = evidence;
  const digestable: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(rest)) {
    if (value === undefined) continue;
    if ((personalEvidenceFields as readonly string[]).includes(field)) {
      digestable[`${field}Digest`] = fieldDigest(secret, field, String(value));
    } else digestable[field] = value;
  }
  for (const [field, digest] of Object.entries(erased ?? {})) digestable[`${field}Digest`] = digest;
  return sha256Hex(canonicalJson(digestable));
}

/** The evidence with personal fields removed and their digests kept. */
export function eraseEvidence(secret: string, evidence: Evidence): Evidence {
  const out: Evidence = {};
  const erased: NonNullable<Evidence['erased']> = { ...(evidence.erased ?? {}) };
  for (const [field, value] of Object.entries(evidence)) {
    if (field === 'erased' || value === undefined) continue;
    if ((personalEvidenceFields as readonly string[]).includes(field)) {
      erased[field as keyof typeof erased] = fieldDigest(secret, field, String(value));
    } else out[field] = value;
  }
  if (Object.keys(erased).length > 0) out.erased = erased;
  return out;
}

export interface HashedFields {
  id: string;
  contact_id: string;
  seq: number;
  purpose_key: string;
  purpose_version: number;
  channel_key: string;
  action: string;
  status: string;
  legal_basis: string;
  source_type: string;
  source_ref: string | null;
  evidence_hash: string;
  expires_at: string | null;
  occurred_at: string;
  recorded_at: string;
  idempotency_key: string | null;
  request_hash: string | null;
  prev_hash: string;
}

/** SHA-256 over the RFC 8785 serialisation of every stored column but the hash itself. */
export function eventHash(e: HashedFields): string {
  return sha256Hex(
    canonicalJson({
      v: 1,
      id: e.id,
      contactId: e.contact_id,
      seq: e.seq,
      purpose: e.purpose_key,
      purposeVersion: e.purpose_version,
      channel: e.channel_key,
      action: e.action,
      status: e.status,
      legalBasis: e.legal_basis,
      sourceType: e.source_type,
      sourceRef: e.source_ref,
      evidenceHash: e.evidence_hash,
      expiresAt: e.expires_at,
      occurredAt: e.occurred_at,
      recordedAt: e.recorded_at,
      idempotencyKey: e.idempotency_key,
      requestHash: e.request_hash,
      prevHash: e.prev_hash,
    }),
  );
}

export interface ChainBreak {
  contactId: string;
  eventId: string | null;
  seq: number | null;
  reason:
    | 'hash_mismatch'
    | 'evidence_mismatch'
    | 'prev_hash_mismatch'
    | 'sequence_gap'
    | 'head_mismatch'
    | 'orphan_event'
    | 'checkpoint_mismatch'
    | 'checkpoint_digest_mismatch';
}

export interface StoredEvent extends HashedFields {
  evidence: string;
  hash: string;
}

/** Checks one contact's chain, oldest first, against its head. Returns the first break. */
export function verifyChain(
  secret: string,
  contactId: string,
  events: StoredEvent[],
  head: { seq: number; hash: string } | undefined,
): ChainBreak | undefined {
  let prev = GENESIS_HASH;
  let expectedSeq = 1;
  for (const e of events) {
    const at = { contactId, eventId: e.id, seq: e.seq };
    if (e.seq !== expectedSeq) return { ...at, reason: 'sequence_gap' };
    if (e.prev_hash !== prev) return { ...at, reason: 'prev_hash_mismatch' };
    let evidence: Evidence;
    try {
      evidence = JSON.parse(e.evidence) as Evidence;
    } catch {
      return { ...at, reason: 'evidence_mismatch' };
    }
    if (evidenceHash(secret, evidence) !== e.evidence_hash) return { ...at, reason: 'evidence_mismatch' };
    if (eventHash(e) !== e.hash) return { ...at, reason: 'hash_mismatch' };
    prev = e.hash;
    expectedSeq += 1;
  }
  const last = events.at(-1);
  if (!head || head.seq !== expectedSeq - 1 || head.hash !== prev) {
    return { contactId, eventId: last?.id ?? null, seq: head?.seq ?? null, reason: 'head_mismatch' };
  }
  return undefined;
}

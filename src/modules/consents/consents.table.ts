export interface ConsentEventsTable {
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
  evidence: string; // JSON; personal fields replaced by their keyed digests on erasure
  evidence_hash: string;
  expires_at: string | null;
  occurred_at: string;
  recorded_at: string;
  idempotency_key: string | null;
  request_hash: string | null;
  prev_hash: string;
  hash: string;
}

export interface ConsentStatesTable {
  contact_id: string;
  purpose_key: string;
  channel_key: string;
  status: string;
  since: string;
  expires_at: string | null;
  confirmed: number;
  purpose_version: number;
  last_event_id: string;
  proof_grade: string | null;
  updated_at: string;
}

export interface ChainHeadsTable {
  contact_id: string;
  seq: number;
  hash: string;
}

export interface LedgerCheckpointsTable {
  id: string;
  created_at: string;
  prev_digest: string;
  digest: string;
  heads: number;
}

export interface LedgerCheckpointEntriesTable {
  checkpoint_id: string;
  contact_id: string;
  seq: number;
  hash: string;
}

/** The columns of each ledger table, in table order: what the multi-row writers and the benches bind. */
export const EVENT_COLUMNS = [
  'id',
  'contact_id',
  'seq',
  'purpose_key',
  'purpose_version',
  'channel_key',
  'action',
  'status',
  'legal_basis',
  'source_type',
  'source_ref',
  'evidence',
  'evidence_hash',
  'expires_at',
  'occurred_at',
  'recorded_at',
  'idempotency_key',
  'request_hash',
  'prev_hash',
  'hash',
] as const satisfies ReadonlyArray<keyof ConsentEventsTable>;
export const STATE_COLUMNS = [
  'contact_id',
  'purpose_key',
  'channel_key',
  'status',
  'since',
  'expires_at',
  'confirmed',
  'purpose_version',
  'last_event_id',
  'proof_grade',
  'updated_at',
] as const satisfies ReadonlyArray<keyof ConsentStatesTable>;
export const HEAD_COLUMNS = ['contact_id', 'seq', 'hash'] as const satisfies ReadonlyArray<keyof ChainHeadsTable>;

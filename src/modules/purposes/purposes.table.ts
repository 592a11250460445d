export interface PurposesTable {
  key: string;
  version: number;
  legal_basis: string;
  channels: string; // JSON string[]
  double_opt_in: number;
  expiry_after_days: number | null;
  info_url: string | null;
  partner: string | null; // JSON { name, url? }
  retention_days: number | null;
  recipients: string; // JSON string[]
  builtin: number;
  created_at: string;
  updated_at: string;
}

/** The wording of each version of a purpose, kept forever: events cite (purpose, version). */
export interface PurposeVersionsTable {
  purpose_key: string;
  version: number;
  title: string; // JSON { fr, en }
  description: string; // JSON { fr, en }
  info_url: string | null;
  wording_hash: string;
  created_at: string;
}

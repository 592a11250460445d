export interface ApiKeysTable {
  id: string;
  name: string;
  scope: string;
  key_hash: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

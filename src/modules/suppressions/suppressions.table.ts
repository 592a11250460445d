export interface SuppressionsTable {
  channel_key: string;
  address_hash: string; // HMAC-SHA256 of the normalised address with the server secret
  reason: string;
  source: string | null;
  created_at: string;
}

export interface FormsTable {
  key: string;
  version: number;
  definition: string; // JSON: title, locale, fields, purposes, termsUrl, redirectUrl, allowedOrigins
  created_at: string;
  updated_at: string;
}

/** The exact HTML of a form as shown, by its hash: what a consent event's evidence points to. */
export interface FormRendersTable {
  hash: string;
  form_key: string;
  form_version: number;
  html: string;
  created_at: string;
}

/** Single-use link tokens already spent (confirmations). */
export interface UsedTokensTable {
  jti: string;
  used_at: string;
}

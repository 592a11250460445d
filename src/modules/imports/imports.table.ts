export interface ImportsTable {
  id: string;
  /** sha256 of the file: the same file again is a no-op unless forced. */
  file_hash: string;
  status: string; // running | completed | failed
  dry_run: number;
  options: string; // JSON
  read: number;
  written: number;
  updated: number;
  rejected: number;
  skipped: number;
  consents: number;
  report: string | null; // JSON
  error: string | null;
  created_at: string;
  completed_at: string | null;
}

/** One rejected cell or row: line numbers count the header as line 1. */
export interface ImportRejectsTable {
  import_id: string;
  seq: number;
  line: number;
  column: string;
  reason: string;
}

export interface ImportsTable {
  id: string;
  /** sha256 of the file: the same file again is a no-op unless forced. */
  file_hash: string;
  status: string; // running | completed | failed | interrupted
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
  /** `host:pid` of the process running it (while `running`). */
  owner: string | null;
  /** Renewed with every committed batch: a running import whose owner is gone, or silent past the lease, is stale. */
  heartbeat_at: string | null;
  /** The file it reads (the CLI's path, or the API's spool file): what a resume reads again. */
  source_path: string | null;
  /** Last line of the file the committed batches cover: a resume goes on after it. */
  resume_line: number;
  /** Rejected cells recorded so far (their `seq`). */
  reject_seq: number;
}

/** One rejected cell or row: line numbers count the header as line 1. */
export interface ImportRejectsTable {
  import_id: string;
  seq: number;
  line: number;
  column: string;
  reason: string;
}

export interface SettingsTable {
  key: string;
  value: string;
}

export interface JobRunsTable {
  job: string;
  last_run_at: string;
  last_result: string | null;
}

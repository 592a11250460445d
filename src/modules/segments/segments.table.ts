export interface SegmentsTable {
  key: string;
  name: string;
  filter: string; // JSON: the filter tree
  created_at: string;
  updated_at: string;
}

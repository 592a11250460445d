export interface ChannelsTable {
  key: string;
  kind: string;
  names: string; // JSON { fr, en }
  builtin: number;
  created_at: string;
  updated_at: string;
}

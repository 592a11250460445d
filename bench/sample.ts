// Random existing contacts of the bench database, read by rowid (contacts were inserted in order).
import SqliteDatabase from 'better-sqlite3';
import { rng } from './common.ts';

export interface SampleContact {
  id: string;
  email: string;
  locale: string | null;
}

export function sampleContacts(file: string, size: number, seed = 42): SampleContact[] {
  const db = new SqliteDatabase(file, { readonly: true });
  try {
    const max = (db.prepare('select max(rowid) as m from contacts').get() as { m: number }).m;
    const at = db.prepare('select id, email, locale from contacts where rowid = ?');
    const random = rng(seed);
    const out: SampleContact[] = [];
    for (let k = 0; k < size; k += 1) {
      const row = at.get(1 + Math.floor(random() * max)) as SampleContact | undefined;
      if (row) out.push(row);
    }
    return out;
  } finally {
    db.close();
  }
}

/** The (purpose, channel) pairs the decision benches rotate over. */
export const decisionPairs = [
  { purpose: 'commercial-email', channel: 'email' },
  { purpose: 'commercial-sms', channel: 'sms' },
  { purpose: 'commercial-phone', channel: 'phone' },
] as const;

export const pairAt = (i: number) => decisionPairs[i % decisionPairs.length] as (typeof decisionPairs)[number];

// What a dry run would have written so far, kept in a scratch SQLite file: a real import finds the
// file's own duplicates in the store (earlier batches are written), a dry run writes nothing there,
// and keeping a million would-be contacts in memory would cost gigabytes. On disk, with a small
// page cache, the dry run's memory stays that of a real import; the file goes when the run ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';

/** A contact as the dry run left it, under the keys it is found by (`e:<email>`, `p:<phone>`). */
export interface RememberedContact {
  id: string;
  keys: string[];
  /** The contact as its owner serialised it. */
  data: string;
}

/** The scratch file's page cache, in KiB: enough for the index pages a batch touches. */
const CACHE_KIB = 8 * 1024;

export class DryRunMemory {
  readonly #dir: string;
  readonly #db: SqliteDatabase.Database;
  readonly #find: SqliteDatabase.Statement<[string], { id: string; data: string }>;
  readonly #remember: (contacts: RememberedContact[]) => void;

  /** `label` names the scratch directory (an import id), so a leftover one can be traced. */
  constructor(label: string) {
    this.#dir = mkdtempSync(join(tmpdir(), `assent-dry-run-${label}-`));
    try {
      this.#db = new SqliteDatabase(join(this.#dir, 'would-be.db'));
      // Nothing here outlives the run: no journal, no fsync.
      this.#db.pragma('journal_mode = OFF');
      this.#db.pragma('synchronous = OFF');
      this.#db.pragma('locking_mode = EXCLUSIVE');
      this.#db.pragma(`cache_size = -${CACHE_KIB}`);
      this.#db.exec(
        'create table contacts (id text primary key, data text not null);' +
          'create table addresses (key text primary key, id text not null) without rowid;',
      );
    } catch (error) {
      rmSync(this.#dir, { recursive: true, force: true });
      throw error;
    }
    this.#find = this.#db.prepare<[string], { id: string; data: string }>(
      'select c.id, c.data from addresses a join contacts c on c.id = a.id where a.key = ?',
    );
    const putContact = this.#db.prepare<[string, string]>(
      'insert into contacts (id, data) values (?, ?) on conflict (id) do update set data = excluded.data',
    );
    // A key moves to the contact remembered last under it, as a map's `set` would.
    const putKey = this.#db.prepare<[string, string]>('insert or replace into addresses (key, id) values (?, ?)');
    this.#remember = this.#db.transaction((contacts: RememberedContact[]) => {
      for (const c of contacts) {
        putContact.run(c.id, c.data);
        for (const key of c.keys) putKey.run(key, c.id);
      }
    });
  }

  /** The remembered contacts found under these keys, by key. */
  find(keys: Iterable<string>): Map<string, { id: string; data: string }> {
    const found = new Map<string, { id: string; data: string }>();
    for (const key of keys) {
      if (found.has(key)) continue;
      const hit = this.#find.get(key);
      if (hit) found.set(key, hit);
    }
    return found;
  }

  /** Remembers contacts (replacing what was remembered of them), in one transaction. */
  remember(contacts: RememberedContact[]): void {
    if (contacts.length > 0) this.#remember(contacts);
  }

  /** Closes and removes the scratch file. */
  close(): void {
    try {
      if (this.#db.open) this.#db.close();
    } finally {
      rmSync(this.#dir, { recursive: true, force: true });
    }
  }
}

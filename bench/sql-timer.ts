// Times every better-sqlite3 statement the process runs while it is on (the app's Kysely
// connection and the bench's own alike): the set-based benches spend their time inside SQLite,
// where a CPU profile sees one native frame, so the split per statement is their profile.
import SqliteDatabase from 'better-sqlite3';

export interface StatementTime {
  sql: string;
  args: unknown[];
  ms: number;
}

type Method = (...args: unknown[]) => unknown;

/** Wraps Statement#run/#all/#get until stop(), which gives back the statements run, in order. */
export function timeStatements(): { stop(): StatementTime[] } {
  const probe = new SqliteDatabase(':memory:');
  const proto = Object.getPrototypeOf(probe.prepare('select 1')) as Record<'run' | 'all' | 'get', Method>;
  probe.close();
  const originals = { run: proto.run, all: proto.all, get: proto.get };
  const times: StatementTime[] = [];
  for (const name of ['run', 'all', 'get'] as const) {
    const original = originals[name];
    proto[name] = function (this: { source: string }, ...args: unknown[]) {
      const started = performance.now();
      try {
        return original.apply(this, args);
      } finally {
        times.push({ sql: this.source, args, ms: performance.now() - started });
      }
    };
  }
  return {
    stop() {
      Object.assign(proto, originals);
      return times;
    },
  };
}

/** SQLite's plan of a statement, one line per step, indented by depth. */
export function queryPlan(db: SqliteDatabase.Database, sql: string, args: unknown[] = []): string[] {
  const rows = db.prepare(`explain query plan ${sql}`).all(...args) as Array<{ id: number; parent: number; detail: string }>;
  const depth = new Map<number, number>([[0, 0]]);
  return rows.map((r) => {
    const d = (depth.get(r.parent) ?? 0) + 1;
    depth.set(r.id, d);
    return `${'  '.repeat(d)}${r.detail}`;
  });
}

/** The first words of a statement, for a log line. */
export const sqlHead = (sql: string, length = 90): string => {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length > length ? `${flat.slice(0, length)}…` : flat;
};

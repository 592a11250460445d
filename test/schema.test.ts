// Migrations give the same schema on both stores: same tables, same columns, same nullability.
import { describe, expect, it } from 'vitest';
import { parseDatabaseUrl } from '../src/config.ts';
import { createDb } from '../src/database.ts';
import { migrateToLatest } from '../src/migrations/index.ts';
import { createTestDatabase, dialects } from './helpers/dialects.ts';

async function shapeOf(dialect: (typeof dialects)[number]) {
  const database = await createTestDatabase(dialect);
  const db = createDb(parseDatabaseUrl(database.url) as Parameters<typeof createDb>[0]);
  try {
    expect(await migrateToLatest(db.kysely)).toEqual([
      '20261122120000_consent_core',
      '20261122180000_collection',
      '20261123090000_campaigns',
      '20261123150000_data_exchange',
      '20261124110000_import_recovery',
      '20261124120000_ledger_append',
    ]);
    expect(await migrateToLatest(db.kysely)).toEqual([]);
    const tables = await db.kysely.introspection.getTables();
    return Object.fromEntries(
      tables
        .filter((t) => !t.name.startsWith('kysely_'))
        .map((t) => [t.name, t.columns.map((c) => `${c.name}${c.isNullable ? '?' : ''}`).sort()])
        .sort(([a], [b]) => String(a).localeCompare(String(b))),
    );
  } finally {
    await db.close();
    await database.drop();
  }
}

describe('migrations', () => {
  it.runIf(dialects.length > 1)('produce the same tables and columns on SQLite and PostgreSQL', async () => {
    const [first, ...others] = await Promise.all(dialects.map(shapeOf));
    for (const other of others) expect(other).toEqual(first);
    expect(Object.keys(first as object)).toContain('consent_events');
  });

  it.each(dialects)('run once and then have nothing left to do on %s', async (dialect) => {
    const shape = await shapeOf(dialect);
    expect(shape.consent_events).toContain('hash');
    expect(shape.consent_events).toContain('prev_hash');
  });
});

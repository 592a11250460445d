// Which stores the suite runs on (TEST_DIALECTS=sqlite,postgres) and a fresh database for each.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Dialect } from '../../src/database.ts';

export const dialects: Dialect[] = (process.env.TEST_DIALECTS ?? 'sqlite')
  .split(',')
  .map((d) => d.trim())
  .filter(Boolean)
  .map((d) => {
    if (d !== 'sqlite' && d !== 'postgres') throw new Error(`TEST_DIALECTS: unknown dialect "${d}"`);
    return d;
  });

const pgBase = () => process.env.TEST_DATABASE_URL ?? `postgres://${userInfo().username}@127.0.0.1:5432/test`;

export interface TestDatabase {
  url: string;
  dialect: Dialect;
  drop(): Promise<void>;
}

/** A new empty database: a temporary SQLite file, or a new PostgreSQL database on the test server. */
export async function createTestDatabase(dialect: Dialect): Promise<TestDatabase> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'assent-test-'));
    return {
      url: `sqlite:${join(dir, 'assent.db')}`,
      dialect,
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const name = `assent_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: pgBase() });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(pgBase());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    dialect,
    drop: async () => {
      const client = new pg.Client({ connectionString: pgBase() });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
    },
  };
}

// Kysely on either store: better-sqlite3 (WAL, one writer, a separate reader for hot reads)
// or a pg pool. `interface Database` is assembled from the module tables.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  type SqliteDatabase as KyselySqliteDatabase,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
} from 'kysely';
import pg from 'pg';
import type { Config } from './config.ts';
import type { ApiKeysTable } from './modules/auth/auth.table.ts';
import type {
  CampaignAudienceTable,
  CampaignPurgesTable,
  CampaignStepsTable,
  CampaignsTable,
  DeliveriesTable,
} from './modules/campaigns/campaigns.table.ts';
import type { ChannelsTable } from './modules/channels/channels.table.ts';
import type { FormRendersTable, FormsTable, UsedTokensTable } from './modules/collection/collection.table.ts';
import type {
  ChainHeadsTable,
  ConsentEventsTable,
  ConsentStatesTable,
  LedgerCheckpointEntriesTable,
  LedgerCheckpointsTable,
} from './modules/consents/consents.table.ts';
import type { ContactsTable, FieldsTable } from './modules/contacts/contacts.table.ts';
import type { ImportRejectsTable, ImportsTable } from './modules/imports/imports.table.ts';
import type { MessagesTable, TemplatesTable } from './modules/messaging/messaging.table.ts';
import type { PurposesTable, PurposeVersionsTable } from './modules/purposes/purposes.table.ts';
import type { JobRunsTable, SettingsTable } from './modules/scheduler/scheduler.table.ts';
import type { SegmentsTable } from './modules/segments/segments.table.ts';
import type { SuppressionsTable } from './modules/suppressions/suppressions.table.ts';
import type { WebhookDeliveriesTable, WebhooksTable } from './modules/webhooks/webhooks.table.ts';

export interface Database {
  settings: SettingsTable;
  job_runs: JobRunsTable;
  channels: ChannelsTable;
  purposes: PurposesTable;
  purpose_versions: PurposeVersionsTable;
  fields: FieldsTable;
  contacts: ContactsTable;
  suppressions: SuppressionsTable;
  consent_events: ConsentEventsTable;
  consent_states: ConsentStatesTable;
  chain_heads: ChainHeadsTable;
  ledger_checkpoints: LedgerCheckpointsTable;
  ledger_checkpoint_entries: LedgerCheckpointEntriesTable;
  api_keys: ApiKeysTable;
  messages: MessagesTable;
  templates: TemplatesTable;
  forms: FormsTable;
  form_renders: FormRendersTable;
  used_tokens: UsedTokensTable;
  segments: SegmentsTable;
  campaigns: CampaignsTable;
  campaign_audience: CampaignAudienceTable;
  campaign_steps: CampaignStepsTable;
  deliveries: DeliveriesTable;
  campaign_purges: CampaignPurgesTable;
  imports: ImportsTable;
  import_rejects: ImportRejectsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
}

export type Dialect = 'sqlite' | 'postgres';
export type Executor = Kysely<Database>;

export interface Db {
  kysely: Kysely<Database>;
  dialect: Dialect;
  /**
   * Runs a read on the hot path (decisions, key checks). On SQLite it uses a second, read-only
   * connection with cached prepared statements, so it sees only committed data and skips the
   * writer's queue; on PostgreSQL it is the pool.
   */
  read<R>(query: CompiledQuery<R>): Promise<R[]>;
  /**
   * The same read answered at once, where the store can (SQLite: better-sqlite3 is synchronous),
   * so a hot path pays no promise; absent on PostgreSQL.
   */
  readNow?: <R>(query: CompiledQuery<R>) => R[];
  close(): Promise<void>;
}

/**
 * Transactions take the write lock up front (BEGIN IMMEDIATE): a CLI command and the server may
 * share one file, and a deferred transaction that reads then writes could fail to upgrade.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #database: KyselySqliteDatabase;
  constructor(database: KyselySqliteDatabase) {
    super({ database });
    this.#database = database;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver({ database: this.#database });
  }
}

/**
 * Settings of the read-only hot-path connection (decisions, key checks): pages are read through
 * a memory map instead of a read() call each (SQLite caps the map at its compile-time limit,
 * 2 GiB in better-sqlite3's build) and kept in a page cache of up to 256 MiB (filled only as
 * pages are read). Safe with WAL: the map covers the main file only and this connection never
 * writes. Measured on 1M contacts: a decision's query runs 20–30% faster (bench/RESULTS.md).
 */
export const SQLITE_READER_PRAGMAS = ['mmap_size = 17179869184', 'cache_size = -262144'] as const;

type RowBuilder = (row: unknown[]) => Record<string, unknown>;

/** `(row) => ({ "a": row[0], "b": row[1], … })` for these column names (a later duplicate wins, as in a loop). */
function rowBuilder(columns: string[]): RowBuilder {
  const fields = columns.map((name, k) => `${JSON.stringify(name)}: row[${k}]`).join(', ');
  return new Function('row', `return { ${fields} };`) as RowBuilder;
}

const STATEMENT_CACHE_SIZE = 64;

/**
 * The writer as Kysely sees it, each statement prepared once and reused: Kysely prepares on
 * every query, and re-preparing the same multi-row INSERTs cost batches of consent events about
 * a third of their time (appends ran 1.4× faster with this cache, bench/RESULTS.md). Past 64
 * statements the least recently used goes; one still being iterated (a stream) is never handed
 * out twice.
 */
function withStatementCache(db: SqliteDatabase.Database): KyselySqliteDatabase {
  const cache = new Map<string, SqliteDatabase.Statement>();
  return {
    prepare(sql: string) {
      const hit = cache.get(sql);
      if (hit && !hit.busy) {
        cache.delete(sql);
        cache.set(sql, hit);
        return hit;
      }
      const statement = db.prepare(sql);
      if (!hit) {
        cache.set(sql, statement);
        if (cache.size > STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      }
      return statement;
    },
    close() {
      cache.clear();
      db.close();
    },
  };
}

function openSqlite(file: string): SqliteDatabase.Database {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const sqlite = new SqliteDatabase(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  return sqlite;
}

export function createDb(database: Config['database'], options: { pgPoolSize?: number; onIdleError?: (error: Error) => void } = {}): Db {
  if (database.dialect === 'sqlite') {
    const writer = openSqlite(database.file);
    const kysely = new Kysely<Database>({ dialect: new ImmediateSqliteDialect(withStatementCache(writer)) });
    let reader: SqliteDatabase.Database | undefined;
    // Each hot-path statement is prepared once; rows come back as arrays (raw mode) and are keyed
    // here, which costs less than better-sqlite3 building each row object (~10% of a decision),
    // by a function made once per column list: an object literal of one fixed shape instead of a
    // key written at a time.
    const statements = new Map<string, { statement: SqliteDatabase.Statement; columns: string[] | null; toRow: RowBuilder }>();
    const readerFor = (): SqliteDatabase.Database => {
      if (!reader) {
        reader = database.file === ':memory:' ? writer : new SqliteDatabase(database.file, { readonly: true, fileMustExist: true });
        reader.pragma('busy_timeout = 5000');
        if (reader !== writer) for (const pragma of SQLITE_READER_PRAGMAS) reader.pragma(pragma);
      }
      return reader;
    };
    const readNow = <R>(query: CompiledQuery<R>): R[] => {
      let entry = statements.get(query.sql);
      if (!entry) {
        const statement = readerFor().prepare(query.sql);
        const columns = statement.reader ? statement.columns().map((c) => c.name) : null;
        if (columns) statement.raw(true);
        entry = { statement, columns, toRow: rowBuilder(columns ?? []) };
        statements.set(query.sql, entry);
      }
      const { statement } = entry;
      if (!entry.columns) return statement.all(...(query.parameters as unknown[])) as R[];
      const rows = statement.all(...(query.parameters as unknown[])) as unknown[][];
      // SQLite re-prepares a statement whose tables changed (a migration by another process):
      // take the columns again then.
      if (rows.length > 0 && (rows[0] as unknown[]).length !== entry.columns.length) {
        entry.columns = statement.columns().map((c) => c.name);
        entry.toRow = rowBuilder(entry.columns);
      }
      const { toRow } = entry;
      const out: Record<string, unknown>[] = new Array(rows.length);
      for (let r = 0; r < rows.length; r += 1) out[r] = toRow(rows[r] as unknown[]);
      return out as R[];
    };
    return {
      kysely,
      dialect: 'sqlite',
      readNow,
      async read<R>(query: CompiledQuery<R>): Promise<R[]> {
        return readNow(query);
      },
      async close() {
        await kysely.destroy();
        if (reader && reader !== writer) reader.close();
      },
    };
  }

  const pool = new pg.Pool({ connectionString: database.url, max: options.pgPoolSize ?? 10 });
  // An idle connection the server ends (restart, failover, pg_terminate_backend) is an 'error'
  // event on the pool: unheard, it would crash the process. The pool drops that client already.
  pool.on('error', (error) => options.onIdleError?.(error));
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    kysely,
    dialect: 'postgres',
    async read<R>(query: CompiledQuery<R>): Promise<R[]> {
      const result = await pool.query({ text: query.sql, values: query.parameters as unknown[] });
      return result.rows as R[];
    },
    async close() {
      await kysely.destroy();
    },
  };
}

/** Counts come back as bigint strings from PostgreSQL and numbers from SQLite. */
export const toNumber = (value: unknown): number => (value === null || value === undefined ? 0 : Number(value));

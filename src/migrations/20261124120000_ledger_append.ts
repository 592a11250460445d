// Appending to the ledger touches fewer pages. Same tables, columns, keys and index names on both
// stores; what differs is SQLite's storage only:
// - consent_states and chain_heads become WITHOUT ROWID tables on SQLite: the row lives in its
//   primary key's B-tree, so reading or moving a state or a head is one B-tree (it was the key's
//   index, then the table). PostgreSQL has no such option (its tables are heaps): nothing to do.
// - consent_states_expiry_idx holds only the states that can expire (expires_at set): a state
//   changing status no longer moves an entry of it. The expiry job's query (status 'granted',
//   expires_at <= now) implies the condition, so it still uses the index.
// - consent_states_pending_idx: the pending states by age, for the double opt-in expiry job (it
//   used the status prefix of the old expiry index).
// - consent_states_purpose_idx (purpose, channel, status) goes: every status change moved one of
//   its entries and every new state added one, each a random page of a large index (a quarter of
//   the pages an append wrote). Its one reader asks, when a purpose's legal basis leaves
//   "consent", whether anyone withdrew, refused or objected to it (purposes.hasWithdrawals): a
//   rare admin step that now reads the states table (about a second on 3,000,000 states), and
//   still stops at the first match.
// Frozen: later changes go in later migrations.
import { type Kysely, SqliteAdapter, sql } from 'kysely';

const STATE_COLUMNS = [
  'contact_id',
  'purpose_key',
  'channel_key',
  'status',
  'since',
  'expires_at',
  'confirmed',
  'purpose_version',
  'last_event_id',
  'proof_grade',
  'updated_at',
];

async function stateIndexes(db: Kysely<any>): Promise<void> {
  await db.schema
    .createIndex('consent_states_expiry_idx')
    .on('consent_states')
    .columns(['status', 'expires_at'])
    .where(sql.ref('expires_at'), 'is not', null)
    .execute();
  await db.schema
    .createIndex('consent_states_pending_idx')
    .on('consent_states')
    .column('since')
    .where(sql.ref('status'), '=', sql.lit('pending'))
    .execute();
}

/** SQLite: the table rebuilt WITHOUT ROWID (same DDL as consent_core otherwise), rows copied in key order. */
async function rebuildSqlite(trx: Kysely<any>): Promise<void> {
  await trx.schema
    .createTable('consent_states_next')
    .addColumn('contact_id', 'text', (c) => c.notNull().references('contacts.id'))
    .addColumn('purpose_key', 'text', (c) => c.notNull())
    .addColumn('channel_key', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('since', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text')
    .addColumn('confirmed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('purpose_version', 'integer', (c) => c.notNull())
    .addColumn('last_event_id', 'text', (c) => c.notNull())
    .addColumn('proof_grade', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('consent_states_pk', ['contact_id', 'purpose_key', 'channel_key'])
    .modifyEnd(sql`without rowid`)
    .execute();
  const columns = sql.join(STATE_COLUMNS.map((c) => sql.ref(c)));
  await sql`insert into consent_states_next (${columns}) select ${columns} from consent_states order by contact_id, purpose_key, channel_key`.execute(
    trx,
  );
  await trx.schema.dropTable('consent_states').execute();
  await trx.schema.alterTable('consent_states_next').renameTo('consent_states').execute();
  await stateIndexes(trx);

  await trx.schema
    .createTable('chain_heads_next')
    .addColumn('contact_id', 'text', (c) => c.primaryKey().notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .modifyEnd(sql`without rowid`)
    .execute();
  await sql`insert into chain_heads_next (contact_id, seq, hash) select contact_id, seq, hash from chain_heads order by contact_id`.execute(
    trx,
  );
  await trx.schema.dropTable('chain_heads').execute();
  await trx.schema.alterTable('chain_heads_next').renameTo('chain_heads').execute();
}

const isSqlite = (db: Kysely<any>) => db.getExecutor().adapter instanceof SqliteAdapter;

export async function up(db: Kysely<any>): Promise<void> {
  if (isSqlite(db)) {
    // Kysely runs SQLite migrations outside a transaction: the rebuild is one, all or nothing.
    await db.transaction().execute(rebuildSqlite);
    return;
  }
  await db.schema.dropIndex('consent_states_purpose_idx').execute();
  await db.schema.dropIndex('consent_states_expiry_idx').execute();
  await stateIndexes(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('consent_states_pending_idx').execute();
  await db.schema.dropIndex('consent_states_expiry_idx').execute();
  await db.schema.createIndex('consent_states_expiry_idx').on('consent_states').columns(['status', 'expires_at']).execute();
  await db.schema
    .createIndex('consent_states_purpose_idx')
    .on('consent_states')
    .columns(['purpose_key', 'channel_key', 'status'])
    .execute();
}

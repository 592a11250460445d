// The consent core: configuration, contacts, the ledger and its state projection, suppressions
// and API keys. Frozen: later changes go in later migrations.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('settings')
    .addColumn('key', 'text', (c) => c.primaryKey().notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('job_runs')
    .addColumn('job', 'text', (c) => c.primaryKey().notNull())
    .addColumn('last_run_at', 'text', (c) => c.notNull())
    .addColumn('last_result', 'text')
    .execute();

  await db.schema
    .createTable('channels')
    .addColumn('key', 'text', (c) => c.primaryKey().notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('names', 'text', (c) => c.notNull())
    .addColumn('builtin', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('purposes')
    .addColumn('key', 'text', (c) => c.primaryKey().notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('legal_basis', 'text', (c) => c.notNull())
    .addColumn('channels', 'text', (c) => c.notNull())
    .addColumn('double_opt_in', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('expiry_after_days', 'integer')
    .addColumn('info_url', 'text')
    .addColumn('partner', 'text')
    .addColumn('retention_days', 'integer')
    .addColumn('recipients', 'text', (c) => c.notNull())
    .addColumn('builtin', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('purpose_versions')
    .addColumn('purpose_key', 'text', (c) => c.notNull().references('purposes.key'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('info_url', 'text')
    .addColumn('wording_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('purpose_versions_pk', ['purpose_key', 'version'])
    .execute();

  await db.schema
    .createTable('fields')
    .addColumn('key', 'text', (c) => c.primaryKey().notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('purpose_key', 'text', (c) => c.notNull().references('purposes.key'))
    .addColumn('retention_days', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('contacts')
    .addColumn('id', 'text', (c) => c.primaryKey().notNull())
    .addColumn('email', 'text', (c) => c.unique())
    .addColumn('email_hash', 'text')
    .addColumn('phone', 'text', (c) => c.unique())
    .addColumn('phone_hash', 'text')
    .addColumn('first_name', 'text')
    .addColumn('last_name', 'text')
    .addColumn('locale', 'text')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('lifecycle', 'text', (c) => c.notNull())
    .addColumn('last_purchase_at', 'text')
    .addColumn('source', 'text')
    .addColumn('attributes', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('last_interaction_at', 'text')
    .addColumn('erased_at', 'text')
    .execute();
  await db.schema.createIndex('contacts_email_hash_idx').on('contacts').column('email_hash').execute();
  await db.schema.createIndex('contacts_phone_hash_idx').on('contacts').column('phone_hash').execute();

  await db.schema
    .createTable('suppressions')
    .addColumn('channel_key', 'text', (c) => c.notNull())
    .addColumn('address_hash', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('source', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('suppressions_pk', ['channel_key', 'address_hash', 'reason'])
    .execute();

  await db.schema
    .createTable('consent_events')
    .addColumn('id', 'text', (c) => c.primaryKey().notNull())
    .addColumn('contact_id', 'text', (c) => c.notNull().references('contacts.id'))
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('purpose_key', 'text', (c) => c.notNull())
    .addColumn('purpose_version', 'integer', (c) => c.notNull())
    .addColumn('channel_key', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('legal_basis', 'text', (c) => c.notNull())
    .addColumn('source_type', 'text', (c) => c.notNull())
    .addColumn('source_ref', 'text')
    .addColumn('evidence', 'text', (c) => c.notNull())
    .addColumn('evidence_hash', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text')
    .addColumn('occurred_at', 'text', (c) => c.notNull())
    .addColumn('recorded_at', 'text', (c) => c.notNull())
    .addColumn('idempotency_key', 'text', (c) => c.unique())
    .addColumn('request_hash', 'text')
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addUniqueConstraint('consent_events_chain_uq', ['contact_id', 'seq'])
    .execute();

  await db.schema
    .createTable('consent_states')
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
    .execute();
  await db.schema
    .createIndex('consent_states_purpose_idx')
    .on('consent_states')
    .columns(['purpose_key', 'channel_key', 'status'])
    .execute();
  await db.schema.createIndex('consent_states_expiry_idx').on('consent_states').columns(['status', 'expires_at']).execute();

  await db.schema
    .createTable('chain_heads')
    .addColumn('contact_id', 'text', (c) => c.primaryKey().notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('ledger_checkpoints')
    .addColumn('id', 'text', (c) => c.primaryKey().notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('prev_digest', 'text', (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('heads', 'integer', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('ledger_checkpoint_entries')
    .addColumn('checkpoint_id', 'text', (c) => c.notNull())
    .addColumn('contact_id', 'text', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('ledger_checkpoint_entries_pk', ['checkpoint_id', 'contact_id'])
    .execute();
  await db.schema
    .createIndex('ledger_checkpoint_entries_contact_idx')
    .on('ledger_checkpoint_entries')
    .columns(['contact_id', 'seq'])
    .execute();

  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'text', (c) => c.primaryKey().notNull())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('key_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('last_used_at', 'text')
    .addColumn('revoked_at', 'text')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'api_keys',
    'ledger_checkpoint_entries',
    'ledger_checkpoints',
    'chain_heads',
    'consent_states',
    'consent_events',
    'suppressions',
    'contacts',
    'fields',
    'purpose_versions',
    'purposes',
    'channels',
    'job_runs',
    'settings',
  ]) {
    await db.schema.dropTable(table).execute();
  }
}

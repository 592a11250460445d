// Collecting consent: messages (the outbox), templates, forms and the HTML they showed, and
// single-use link tokens. Frozen: later changes go in later migrations.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('messages')
    .addColumn('id', 'text', (c) => c.primaryKey().notNull())
    .addColumn('contact_id', 'text')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('channel_key', 'text', (c) => c.notNull())
    .addColumn('to_address', 'text')
    .addColumn('template_key', 'text', (c) => c.notNull())
    .addColumn('purpose_key', 'text')
    .addColumn('locale', 'text', (c) => c.notNull())
    .addColumn('subject', 'text')
    .addColumn('html', 'text')
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('headers', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .addColumn('message_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('send_after', 'text', (c) => c.notNull())
    .addColumn('sent_at', 'text')
    .execute();
  await db.schema.createIndex('messages_due_idx').on('messages').columns(['status', 'send_after']).execute();
  await db.schema.createIndex('messages_contact_idx').on('messages').columns(['contact_id', 'kind', 'created_at']).execute();

  await db.schema
    .createTable('templates')
    .addColumn('key', 'text', (c) => c.primaryKey().notNull())
    .addColumn('channel_kind', 'text', (c) => c.notNull())
    .addColumn('category', 'text', (c) => c.notNull())
    .addColumn('variants', 'text', (c) => c.notNull())
    .addColumn('builtin', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('forms')
    .addColumn('key', 'text', (c) => c.primaryKey().notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('definition', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('form_renders')
    .addColumn('hash', 'text', (c) => c.primaryKey().notNull())
    .addColumn('form_key', 'text', (c) => c.notNull())
    .addColumn('form_version', 'integer', (c) => c.notNull())
    .addColumn('html', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('used_tokens')
    .addColumn('jti', 'text', (c) => c.primaryKey().notNull())
    .addColumn('used_at', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['used_tokens', 'form_renders', 'forms', 'templates', 'messages']) {
    await db.schema.dropTable(table).execute();
  }
}

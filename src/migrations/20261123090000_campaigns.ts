// Re-permission campaigns: saved segments, campaigns and their frozen audience, steps, one
// delivery per (campaign, step, contact), and purges. Frozen: later changes go in later migrations.
import { type Kysely, PostgresAdapter } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;

  await db.schema
    .createTable('segments')
    .addColumn('key', 'text', (c) => c.primaryKey().notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('filter', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('campaigns')
    .addColumn('key', 'text', (c) => c.primaryKey().notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('segment_key', 'text', (c) => c.notNull().references('segments.key'))
    .addColumn('purposes', 'text', (c) => c.notNull())
    .addColumn('channel_key', 'text', (c) => c.notNull())
    .addColumn('templates', 'text', (c) => c.notNull())
    .addColumn('start_at', 'text', (c) => c.notNull())
    .addColumn('cadence_days', 'integer', (c) => c.notNull())
    .addColumn('deadline', 'text', (c) => c.notNull())
    .addColumn('max_sends', 'integer')
    .addColumn('confirmation', 'text', (c) => c.notNull())
    .addColumn('at_deadline', 'text', (c) => c.notNull())
    .addColumn('add_newcomers', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('launch_report', 'text')
    .addColumn('launched_at', 'text')
    .addColumn('closed_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  // Who the campaign is for, frozen at launch: included (reason null) or excluded with a reason.
  await db.schema
    .createTable('campaign_audience')
    .addColumn('campaign_key', 'text', (c) => c.notNull())
    .addColumn('contact_id', 'text', (c) => c.notNull())
    .addColumn('excluded_reason', 'text')
    .addColumn('added_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('campaign_audience_pk', ['campaign_key', 'contact_id'])
    .execute();

  await db.schema
    .createTable('campaign_steps')
    .addColumn('campaign_key', 'text', (c) => c.notNull())
    .addColumn('step', 'integer', (c) => c.notNull())
    .addColumn('due_at', 'text', (c) => c.notNull())
    .addColumn('enqueued_at', 'text', (c) => c.notNull())
    .addColumn('queued', 'integer', (c) => c.notNull())
    .addColumn('completed_at', 'text')
    .addPrimaryKeyConstraint('campaign_steps_pk', ['campaign_key', 'step'])
    .execute();

  // The delivery queue. Ids come from the store (set-based enqueue), so they are integers.
  await db.schema
    .createTable('deliveries')
    .addColumn('id', postgres ? 'bigserial' : 'integer', (c) => c.primaryKey().notNull())
    .addColumn('campaign_key', 'text', (c) => c.notNull())
    .addColumn('step', 'integer', (c) => c.notNull())
    .addColumn('contact_id', 'text', (c) => c.notNull())
    .addColumn('template', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('send_after', 'text', (c) => c.notNull())
    .addColumn('claimed_by', 'text')
    .addColumn('claimed_until', 'text')
    .addColumn('sent_at', 'text')
    .addColumn('provider_ref', 'text')
    .addColumn('last_error', 'text')
    .addColumn('clicked_at', 'text')
    .addColumn('confirmed_at', 'text')
    .addColumn('unsubscribed_at', 'text')
    .addColumn('bounced_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('deliveries_once_uq', ['campaign_key', 'step', 'contact_id'])
    .execute();
  await db.schema.createIndex('deliveries_due_idx').on('deliveries').columns(['status', 'send_after']).execute();
  await db.schema.createIndex('deliveries_contact_idx').on('deliveries').columns(['contact_id', 'campaign_key']).execute();
  await db.schema.createIndex('deliveries_provider_idx').on('deliveries').column('provider_ref').execute();

  await db.schema
    .createTable('campaign_purges')
    .addColumn('id', 'text', (c) => c.primaryKey().notNull())
    .addColumn('campaign_key', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('counts', 'text', (c) => c.notNull())
    .addColumn('erased', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('completed_at', 'text')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['campaign_purges', 'deliveries', 'campaign_steps', 'campaign_audience', 'campaigns', 'segments']) {
    await db.schema.dropTable(table).execute();
  }
}

// Imports cut off by a crash: who runs an import and when it last showed life (its lease), where
// its file is, and how far its committed batches reached, so a later start can resume it or mark it
// `interrupted`. Frozen: later changes go in later migrations.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('imports').addColumn('owner', 'text').execute();
  await db.schema.alterTable('imports').addColumn('heartbeat_at', 'text').execute();
  await db.schema.alterTable('imports').addColumn('source_path', 'text').execute();
  await db.schema
    .alterTable('imports')
    .addColumn('resume_line', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable('imports')
    .addColumn('reject_seq', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const column of ['reject_seq', 'resume_line', 'source_path', 'heartbeat_at', 'owner']) {
    await db.schema.alterTable('imports').dropColumn(column).execute();
  }
}

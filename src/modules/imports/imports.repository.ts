import type { Executor } from '../../database.ts';
import type { ContactsTable } from '../contacts/index.ts';
import type { ImportRejectsTable, ImportsTable } from './imports.table.ts';

const CHUNK = 500;

async function inChunks<T>(items: T[], work: (chunk: T[]) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += CHUNK) await work(items.slice(i, i + CHUNK));
}

export const insertImportRow = (db: Executor, row: ImportsTable) => db.insertInto('imports').values(row).execute();

export const findImportRow = (db: Executor, id: string) => db.selectFrom('imports').selectAll().where('id', '=', id).executeTakeFirst();

/** The first completed, real (not dry-run) import of a file: the one a re-run would repeat. */
export const findCompletedImportOfFile = (db: Executor, fileHash: string) =>
  db
    .selectFrom('imports')
    .select(['id', 'completed_at'])
    .where('file_hash', '=', fileHash)
    .where('status', '=', 'completed')
    .where('dry_run', '=', 0)
    .orderBy('created_at')
    .orderBy('id')
    .limit(1)
    .executeTakeFirst();

export const updateImportRow = (db: Executor, id: string, patch: Partial<ImportsTable>) =>
  db.updateTable('imports').set(patch).where('id', '=', id).execute();

export const insertRejectRows = (db: Executor, rows: ImportRejectsTable[]) =>
  inChunks(rows, (chunk) => db.insertInto('import_rejects').values(chunk).execute());

export const pageRejectRows = (db: Executor, importId: string, afterSeq: number, limit: number) =>
  db
    .selectFrom('import_rejects')
    .select(['seq', 'line', 'column', 'reason'])
    .where('import_id', '=', importId)
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)
    .execute();

/** Declared attribute fields (key and type): which columns may fill attributes. */
export const listFieldTypes = (db: Executor) => db.selectFrom('fields').select(['key', 'type']).orderBy('key').execute();

/** Contacts already holding one of these normalised emails or phones (erased ones hold none). */
export async function findContactsByAddresses(db: Executor, emails: string[], phones: string[]): Promise<ContactsTable[]> {
  const out: ContactsTable[] = [];
  await inChunks(emails, async (chunk) => out.push(...(await db.selectFrom('contacts').selectAll().where('email', 'in', chunk).execute())));
  await inChunks(phones, async (chunk) => out.push(...(await db.selectFrom('contacts').selectAll().where('phone', 'in', chunk).execute())));
  return out;
}

/** Current consent states of these contacts: what an import may not override. */
export async function findStatesOfContacts(db: Executor, contactIds: string[]) {
  const out: Array<{ contact_id: string; purpose_key: string; channel_key: string; status: string; since: string }> = [];
  await inChunks(contactIds, async (chunk) =>
    out.push(
      ...(await db
        .selectFrom('consent_states')
        .select(['contact_id', 'purpose_key', 'channel_key', 'status', 'since'])
        .where('contact_id', 'in', chunk)
        .execute()),
    ),
  );
  return out;
}

/** Which of these address hashes are on the suppression list of these channels (the key's order: channel first). */
export async function findSuppressedHashes(db: Executor, channels: string[], hashes: string[]) {
  const out: Array<{ channel_key: string; address_hash: string }> = [];
  if (channels.length === 0) return out;
  await inChunks(hashes, async (chunk) =>
    out.push(
      ...(await db
        .selectFrom('suppressions')
        .select(['channel_key', 'address_hash'])
        .where('channel_key', 'in', channels)
        .where('address_hash', 'in', chunk)
        .execute()),
    ),
  );
  return out;
}

/**
 * Sets the proof grade on the states the import's own events now lead (the state projection
 * carries it; the events carry it in their evidence).
 */
export const updateProofGrades = (
  db: Executor,
  grade: string,
  purpose: string,
  channel: string,
  entries: Array<{ contactId: string; eventId: string }>,
) =>
  inChunks(entries, (chunk) =>
    db
      .updateTable('consent_states')
      .set({ proof_grade: grade })
      .where('purpose_key', '=', purpose)
      .where('channel_key', '=', channel)
      .where(
        'contact_id',
        'in',
        chunk.map((e) => e.contactId),
      )
      .where(
        'last_event_id',
        'in',
        chunk.map((e) => e.eventId),
      )
      .execute(),
  );

// The server secret keys address hashes, evidence digests and (later) link tokens. It comes from
// ASSENT_SECRET, or is generated once and kept in the database; it must never change after.
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import { hmacHex, randomToken } from './crypto.ts';

const fingerprint = (secret: string) => hmacHex(secret, 'assent-secret-fingerprint');

export async function resolveSecret(db: Kysely<Database>, configured: string | undefined): Promise<string> {
  const rows = await db.selectFrom('settings').selectAll().where('key', 'in', ['secret', 'secret_fingerprint']).execute();
  const byKey = new Map(rows.map((r) => [r.key, r.value]));
  if (configured) {
    const known = byKey.get('secret_fingerprint');
    if (known && known !== fingerprint(configured)) {
      throw new Error(
        'ASSENT_SECRET differs from the secret this database was set up with: suppression hashes and proofs would no longer match. Restore the original secret.',
      );
    }
    if (!known) {
      await db
        .insertInto('settings')
        .values({ key: 'secret_fingerprint', value: fingerprint(configured) })
        .onConflict((oc) => oc.column('key').doNothing())
        .execute();
    }
    return configured;
  }
  const existing = byKey.get('secret');
  if (existing) return existing;
  const generated = randomToken(48);
  await db
    .insertInto('settings')
    .values({ key: 'secret', value: generated })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  await db
    .insertInto('settings')
    .values({ key: 'secret_fingerprint', value: fingerprint(generated) })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  // Another process may have won the race: use whatever is stored.
  const row = await db.selectFrom('settings').select('value').where('key', '=', 'secret').executeTakeFirstOrThrow();
  return row.value;
}

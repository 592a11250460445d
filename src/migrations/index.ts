// Runs the migrations (listed here, in order) on either store.
import { type Kysely, type Migration, Migrator } from 'kysely';
import * as consentCore from './20261122120000_consent_core.ts';
import * as collection from './20261122180000_collection.ts';
import * as campaigns from './20261123090000_campaigns.ts';
import * as dataExchange from './20261123150000_data_exchange.ts';
import * as importRecovery from './20261124110000_import_recovery.ts';
import * as ledgerAppend from './20261124120000_ledger_append.ts';

const migrations: Record<string, Migration> = {
  '20261122120000_consent_core': consentCore,
  '20261122180000_collection': collection,
  '20261123090000_campaigns': campaigns,
  '20261123150000_data_exchange': dataExchange,
  '20261124110000_import_recovery': importRecovery,
  '20261124120000_ledger_append': ledgerAppend,
};

export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

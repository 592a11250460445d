// Factories: valid inputs with unique addresses, overridable field by field.
import { randomBytes } from 'node:crypto';
import { normalizePhone } from '../../src/platform/addresses.ts';
import type { TestApp } from './build-app.ts';

let counter = 0;
const unique = () => `${Date.now().toString(36)}${(counter++).toString(36)}${randomBytes(2).toString('hex')}`;

export function buildContact(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { email: `person-${unique()}@example.com`, firstName: 'Camille', lastName: 'Martin', locale: 'fr', ...overrides };
}

/** A valid French mobile number, different each call (some 06 ranges are unallocated: retry). */
export function frenchMobile(): string {
  for (;;) {
    const n = `+336${String(Math.floor(Math.random() * 100_000_000)).padStart(8, '0')}`;
    if (normalizePhone(n, 'FR') === n) return n;
  }
}

export async function createContact(
  t: TestApp,
  overrides: Record<string, unknown> = {},
): Promise<{ id: string } & Record<string, unknown>> {
  const res = await t.call('POST', '/v1/contacts', { body: buildContact(overrides) });
  if (res.statusCode !== 201) throw new Error(`createContact: ${res.statusCode} ${res.body}`);
  return res.json();
}

export async function record(t: TestApp, body: Record<string, unknown>) {
  const res = await t.call('POST', '/v1/consents', { body });
  if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`record: ${res.statusCode} ${res.body}`);
  return res.json();
}

export async function decision(t: TestApp, query: Record<string, string>) {
  const res = await t.call('GET', `/v1/decisions?${new URLSearchParams(query)}`);
  if (res.statusCode !== 200) throw new Error(`decision: ${res.statusCode} ${res.body}`);
  return res.json() as { allowed: boolean; basis: string | null; reason: string; evidenceEventId: string | null; expiresAt: string | null };
}

/** Row counts of every table: what a failed request must leave untouched. */
export async function rowCounts(t: TestApp): Promise<Record<string, number>> {
  const tables = [
    'settings',
    'channels',
    'purposes',
    'purpose_versions',
    'fields',
    'contacts',
    'suppressions',
    'consent_events',
    'consent_states',
    'chain_heads',
    'ledger_checkpoints',
    'ledger_checkpoint_entries',
    'api_keys',
  ] as const;
  const out: Record<string, number> = {};
  for (const table of tables) {
    const row = await t.ctx.db.kysely
      .selectFrom(table)
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    out[table] = Number(row.n);
  }
  return out;
}

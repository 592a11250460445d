import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, TEST_SECRET, type TestApp } from './helpers/build-app.ts';
import { runCli } from './helpers/cli.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, decision, record } from './helpers/factories.ts';

describe.each(dialects)('assent CLI on %s', (dialect) => {
  let t: TestApp;
  let env: Record<string, string>;
  beforeAll(async () => {
    t = await buildTestApp(dialect);
    env = { DATABASE_URL: t.database.url, ASSENT_SECRET: TEST_SECRET };
  });
  afterAll(async () => t.close());

  it('creates a key shown once, stores it hashed, lists and revokes it', async () => {
    const created = await runCli(['keys', 'create', '--name', 'crm-sync', '--scope', 'write', '--json'], env);
    expect(created.code).toBe(0);
    const { name, scope, key } = JSON.parse(created.stdout);
    expect({ name, scope }).toEqual({ name: 'crm-sync', scope: 'write' });
    expect(key).toMatch(/^ak_/);

    // The key works on the API…
    const contact = await t.call('POST', '/v1/contacts', { body: { email: 'cli-key@example.com' }, key });
    expect(contact.statusCode).toBe(201);

    const listed = await runCli(['keys', 'list', '--json'], env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain(key);
    expect(JSON.parse(listed.stdout).items.map((k: { name: string }) => k.name)).toContain('crm-sync');

    const revoked = await runCli(['keys', 'revoke', 'crm-sync', '--json'], env);
    expect(revoked.code).toBe(0);
    expect(JSON.parse(revoked.stdout).revokedAt).toBeTruthy();
    // …and not once revoked (other processes see it within the key cache's two seconds).
    await new Promise((r) => setTimeout(r, 2_100));
    expect((await t.call('GET', '/v1/purposes', { key })).statusCode).toBe(401);
  });

  it('refuses a bad scope and a duplicate name with a clear message', async () => {
    const bad = await runCli(['keys', 'create', '--name', 'x', '--scope', 'root'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/scope/);
    await runCli(['keys', 'create', '--name', 'twice', '--scope', 'read'], env);
    const dup = await runCli(['keys', 'create', '--name', 'twice', '--scope', 'read'], env);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toContain('twice');
  });

  it('scheduler run --at 31 days later records expired consents', async () => {
    await t.call('POST', '/v1/purposes', {
      body: { key: 'cli-expiry', title: { fr: 'Essai' }, channels: ['email'], expiry: { afterDays: 30 } },
    });
    const contact = await createContact(t);
    await record(t, { contactId: contact.id, purpose: 'cli-expiry', channel: 'email', action: 'grant' });
    const at = new Date(t.clock.now().getTime() + 31 * 86_400_000).toISOString();
    const run = await runCli(['scheduler', 'run', '--at', at, '--json'], env);
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.jobs.find((j: { job: string }) => j.job === 'expire-consents').result.expired).toBeGreaterThanOrEqual(1);
    expect(await decision(t, { contactId: contact.id, purpose: 'cli-expiry', channel: 'email' })).toMatchObject({
      allowed: false,
      reason: 'consent_expired',
    });
    const history = (await t.call('GET', `/v1/contacts/${contact.id}/consents/history`)).json();
    expect(history.items.at(-1)).toMatchObject({ action: 'expired', status: 'expired', source: { type: 'system', ref: 'expiry' } });
  });

  it('scheduler run refuses a time that is not ISO-8601', async () => {
    const run = await runCli(['scheduler', 'run', '--at', 'next tuesday'], env);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('ISO-8601');
  });

  it('rebuilds the state table from the ledger to the same states', async () => {
    const contact = await createContact(t);
    await record(t, { contactId: contact.id, purpose: 'commercial-sms', channel: 'sms', action: 'grant' });
    await record(t, { contactId: contact.id, purpose: 'commercial-sms', channel: 'sms', action: 'withdraw' });
    const before = (await t.call('GET', `/v1/contacts/${contact.id}/consents`)).json();
    await t.ctx.db.kysely.updateTable('consent_states').set({ status: 'granted' }).where('contact_id', '=', contact.id).execute();
    const run = await runCli(['ledger', 'rebuild-state', '--json'], env);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).states).toBeGreaterThan(0);
    expect((await t.call('GET', `/v1/contacts/${contact.id}/consents`)).json()).toEqual(before);
  });

  it('migrate is idempotent and says so', async () => {
    const run = await runCli(['migrate', '--json'], env);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ applied: [], store: dialect });
  });

  it('ledger checkpoint prints a digest, then says nothing moved', async () => {
    const first = await runCli(['ledger', 'checkpoint', '--json'], env);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout).digest).toMatch(/^[0-9a-f]{64}$/);
    const second = await runCli(['ledger', 'checkpoint', '--json'], env);
    expect(JSON.parse(second.stdout)).toBeNull();
  });
});

describe('assent CLI without a store', () => {
  it('has --help on every command', async () => {
    const commands = [
      [],
      ['serve'],
      ['migrate'],
      ['keys'],
      ['keys', 'create'],
      ['keys', 'list'],
      ['keys', 'revoke'],
      ['ledger', 'verify'],
      ['ledger', 'rebuild-state'],
      ['ledger', 'checkpoint'],
      ['scheduler', 'run'],
    ];
    const runs = await Promise.all(commands.map((command) => runCli([...command, '--help'])));
    for (const [i, run] of runs.entries()) {
      expect(run.code, commands[i]?.join(' ')).toBe(0);
      expect(run.stdout).toContain('Usage: assent');
    }
  });

  it('stops with a message naming each bad setting', async () => {
    const run = await runCli(['keys', 'list'], { DATABASE_URL: 'mysql://x', PORT: 'abc', ASSENT_SECRET: 'short' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('DATABASE_URL');
    expect(run.stderr).toContain('PORT');
    expect(run.stderr).toContain('ASSENT_SECRET');
  });
});

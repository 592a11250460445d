// The embedded default: with no SMTP_URL, mail stays in the database (the outbox transport) and a
// user reads it through GET /v1/outbox and the real `assent outbox list|show` commands.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchDue } from '../src/modules/messaging/index.ts';
import { buildTestApp, TEST_SECRET, type TestApp } from './helpers/build-app.ts';
import { runCli } from './helpers/cli.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, record } from './helpers/factories.ts';

const PUBLIC_URL = 'https://consent.example';

describe.each(dialects)('outbox transport on %s', (dialect) => {
  let t: TestApp;
  let env: Record<string, string>;
  let contact: { id: string } & Record<string, unknown>;
  let messageId: string;

  beforeAll(async () => {
    t = await buildTestApp(dialect, { env: { PUBLIC_URL } });
    env = { DATABASE_URL: t.database.url, ASSENT_SECRET: TEST_SECRET, PUBLIC_URL };
    expect(t.ctx.mailer.kind).toBe('outbox');
    const purpose = await t.call('POST', '/v1/purposes', {
      body: { key: 'newsletter', title: { fr: 'Lettre d’information', en: 'Newsletter' }, channels: ['email'], doubleOptIn: true },
    });
    expect(purpose.statusCode).toBe(201);
    contact = await createContact(t, { locale: 'en', firstName: 'Sacha' });
    const grant = await record(t, { contactId: contact.id, purpose: 'newsletter', channel: 'email', action: 'grant' });
    expect(grant.status).toBe('pending');
    // The grant kicked a dispatch in the background; let it finish (and send anything left).
    await Promise.allSettled([...t.ctx.background]);
    await dispatchDue(t.ctx);
  });
  afterAll(async () => t?.close());

  it('keeps the double opt-in confirmation in GET /v1/outbox with status stored, readable in full', async () => {
    const list = await t.call('GET', `/v1/outbox?contactId=${contact.id}`, { key: t.keys.read });
    expect(list.statusCode).toBe(200);
    const { items, nextCursor } = list.json();
    expect(nextCursor).toBeNull();
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({
      contactId: contact.id,
      kind: 'double_opt_in',
      channel: 'email',
      to: contact.email,
      templateKey: 'double-opt-in',
      locale: 'en',
      status: 'stored',
      attempts: 1,
      lastError: null,
    });
    expect(items[0].subject).toBe('Please confirm your subscription — Assent');
    expect(items[0].sentAt).toBe(t.clock.now().toISOString());
    expect(items[0].messageId).toBe(`<${items[0].id.toLowerCase()}@localhost>`);
    messageId = items[0].id;

    const byStatus = (await t.call('GET', '/v1/outbox?status=stored')).json();
    expect(byStatus.items.map((m: { id: string }) => m.id)).toContain(messageId);
    expect((await t.call('GET', '/v1/outbox?status=queued')).json().items).toHaveLength(0);

    const detail = await t.call('GET', `/v1/outbox/${messageId}`);
    expect(detail.statusCode).toBe(200);
    const message = detail.json();
    expect(message.subject).toBe('Please confirm your subscription — Assent');
    expect(message.text).toContain('You asked to receive “Newsletter”');
    expect(message.text).toMatch(new RegExp(`${PUBLIC_URL}/c/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+`));
    expect(message.html).toContain('<html lang="en">');
    expect(message.html).toMatch(new RegExp(`href="${PUBLIC_URL}/c/[^"]+"`));
    // A transactional mail: no one-click unsubscribe headers.
    expect(message.headers).toEqual({});

    // The stored link works: a GET shows the page, a POST confirms.
    const link = new RegExp(`${PUBLIC_URL}(/c/[A-Za-z0-9_.-]+)`).exec(message.text)?.[1] as string;
    expect((await t.app.inject({ method: 'GET', url: link })).statusCode).toBe(200);
    const states = async () =>
      (await t.call('GET', `/v1/contacts/${contact.id}/consents`)).json().items.find((s: { purpose: string }) => s.purpose === 'newsletter')
        .status;
    expect(await states()).toBe('pending');

    const missing = await t.call('GET', '/v1/outbox/01ARZ3NDEKTSV4RRFFQ69G5FAV');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('message_not_found');
    expect((await t.call('GET', '/v1/outbox', { key: null })).statusCode).toBe(401);
  });

  it('prints it with `assent outbox list --json` and `assent outbox show ID --json`', async () => {
    // Each is a real `assent` process on the same database; they only read, so they run side by side.
    const [list, limited, show, human, shown, missing, badLimit] = await Promise.all([
      runCli(['outbox', 'list', '--json'], env),
      runCli(['outbox', 'list', '--limit', '1', '--json'], env),
      runCli(['outbox', 'show', messageId, '--json'], env),
      runCli(['outbox', 'list'], env),
      runCli(['outbox', 'show', messageId], env),
      runCli(['outbox', 'show', '01ARZ3NDEKTSV4RRFFQ69G5FAV', '--json'], env),
      runCli(['outbox', 'list', '--limit', '0'], env),
    ]);

    expect(list.stderr).toBe('');
    expect(list.code).toBe(0);
    const page = JSON.parse(list.stdout);
    expect(Array.isArray(page.items)).toBe(true);
    const item = page.items.find((m: { id: string }) => m.id === messageId);
    expect(item).toMatchObject({
      kind: 'double_opt_in',
      status: 'stored',
      to: contact.email,
      subject: 'Please confirm your subscription — Assent',
    });

    expect(limited.code).toBe(0);
    expect(JSON.parse(limited.stdout).items).toHaveLength(1);

    expect(show.code).toBe(0);
    const message = JSON.parse(show.stdout);
    expect(message).toMatchObject({
      id: messageId,
      status: 'stored',
      subject: 'Please confirm your subscription — Assent',
      to: contact.email,
    });
    expect(message.text).toContain(`${PUBLIC_URL}/c/`);
    expect(message.html).toContain('I confirm');

    // Without --json: a table, and the message as headers then text.
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(messageId);
    expect(human.stdout).toContain('stored');
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('Subject: Please confirm your subscription — Assent');
    expect(shown.stdout).toContain(`${PUBLIC_URL}/c/`);

    // Clear errors for a message that does not exist and a bad --limit.
    expect(missing.code).not.toBe(0);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toContain('01ARZ3NDEKTSV4RRFFQ69G5FAV');
    expect(badLimit.code).not.toBe(0);
    expect(badLimit.stderr).toMatch(/limit/);
  });
});

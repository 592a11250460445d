// DKIM signing of outgoing mail (covering the one-click unsubscribe headers), and the limit on
// double opt-in resends.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchDue } from '../src/modules/messaging/index.ts';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, record } from './helpers/factories.ts';
import { type SmtpSink, startSmtpSink } from './helpers/smtp-sink.ts';

describe.each(dialects)('outgoing mail on %s', (dialect) => {
  let t: TestApp;
  let sink: SmtpSink;
  const dir = mkdtempSync(join(tmpdir(), 'assent-dkim-'));

  beforeAll(async () => {
    sink = await startSmtpSink();
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keyFile = join(dir, 'dkim.pem');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    t = await buildTestApp(dialect, {
      env: {
        SMTP_URL: sink.url,
        MAIL_FROM: 'Boutique <news@shop.example>',
        DKIM_DOMAIN: 'shop.example',
        DKIM_SELECTOR: 's2026',
        DKIM_PRIVATE_KEY_FILE: keyFile,
      },
    });
    await t.call('POST', '/v1/templates', {
      body: {
        key: 'promo',
        channel: 'email',
        category: 'marketing',
        variants: {
          fr: {
            subject: 'Soldes',
            html: '<p>Soldes ! <a href="{{ links.unsubscribe }}">stop</a></p>',
            text: 'Soldes ! {{ links.unsubscribe }}',
          },
        },
      },
    });
    await t.call('POST', '/v1/purposes', { body: { key: 'letter', title: { fr: 'La lettre' }, channels: ['email'], doubleOptIn: true } });
  });
  afterAll(async () => {
    await t.close();
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('signs marketing mail with DKIM, the signature covering both List-Unsubscribe headers', async () => {
    const contact = await createContact(t, { email: `dkim-${dialect}@example.com` });
    await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
    const sent = await t.call('POST', '/v1/messages', { body: { contactId: contact.id, template: 'promo', purpose: 'commercial-email' } });
    expect(sent.statusCode).toBe(202);
    await dispatchDue(t.ctx);
    const [mail] = await sink.waitFor(1);
    // The header as it came over the wire, unfolded.
    const head = (mail?.raw ?? '').split(/\r?\n\r?\n/)[0]?.replace(/\r?\n[ \t]+/g, ' ') ?? '';
    const signature = /^DKIM-Signature:(.*)$/im.exec(head)?.[1] ?? '';
    expect(signature).toContain('d=shop.example');
    expect(signature).toContain('s=s2026');
    const signed = /(?:^|;)h=([^;]+)/.exec(signature.replace(/\s+/g, ''))?.[1]?.toLowerCase().split(':') ?? [];
    expect(signed).toContain('list-unsubscribe');
    expect(signed).toContain('list-unsubscribe-post');
    expect(head).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click$/im);
  });

  it('sends at most one double opt-in mail every ten minutes to the same person', async () => {
    const email = `resend-${dialect}@example.com`;
    const contact = await createContact(t, { email });
    const before = sink.to(email).length;
    await record(t, { contactId: contact.id, purpose: 'letter', channel: 'email', action: 'grant', source: { type: 'form', ref: 'a' } });
    await record(t, { contactId: contact.id, purpose: 'letter', channel: 'email', action: 'grant', source: { type: 'form', ref: 'b' } });
    await dispatchDue(t.ctx);
    await new Promise((r) => setTimeout(r, 300));
    expect(sink.to(email).length - before).toBe(1);
    t.clock.set(new Date(t.clock.now().getTime() + 11 * 60_000));
    await record(t, { contactId: contact.id, purpose: 'letter', channel: 'email', action: 'grant', source: { type: 'form', ref: 'c' } });
    await dispatchDue(t.ctx);
    await sink.waitFor(sink.messages.length);
    await expect.poll(() => sink.to(email).length - before).toBe(2);
  });
});

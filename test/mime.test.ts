// The message the SMTP transport sends is composed by nodemailer's MailComposer and written out
// at once (src/platform/mime.ts) instead of streamed: the bytes must be the very ones nodemailer's
// own MimeNode#build() gives for the same message, whatever the content (ASCII, accents, scripts
// that go out in base64, long lines, trailing whitespace, bare CR or LF, empty parts, Buffers).
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import MailComposer from 'nodemailer/lib/mail-composer';
import type Mail from 'nodemailer/lib/mailer';
import { describe, expect, it } from 'vitest';
import { buildMessage, composeMessage } from '../src/platform/mime.ts';

const DATE = new Date('2026-03-04T05:06:07Z');

/** Both ways from two trees compiled alike (same boundary, same date). */
async function both(mail: Mail.Options): Promise<[string, string]> {
  const fixed = { messageId: '<fixed@example.com>', ...mail, baseBoundary: '0123456789abcdef', date: DATE } as Mail.Options;
  const ours = await buildMessage(new MailComposer(fixed).compile());
  const theirs = await new MailComposer(fixed).compile().build();
  return [ours.toString('latin1'), theirs.toString('latin1')];
}

const campaignMail = (n: number): Mail.Options => ({
  messageId: `<d${n}.repermission-2026@shop.example>`,
  from: 'Maison Test <news@shop.example>',
  to: `reader${n}@example.com`,
  subject: `Reader${n}, souhaitez-vous continuer à recevoir nos nouvelles ?`,
  html: `<!doctype html><html lang="fr"><body><p>Bonjour Reader${n},</p><p>Nous aimerions continuer à vous écrire — le confirmez-vous ?</p><p><a href="https://consent.example/c/${'x'.repeat(140)}">Je confirme</a></p></body></html>`,
  text: `Bonjour Reader${n},\n\nNous aimerions continuer à vous écrire — le confirmez-vous ?\n\nJe confirme : https://consent.example/c/${'x'.repeat(140)}\n`,
  headers: {
    'List-Unsubscribe': `<https://consent.example/u/${'y'.repeat(120)}>, <mailto:unsubscribe@shop.example?subject=unsubscribe>`,
    'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
  },
});

describe('messages written out at once', () => {
  it('are byte for byte what nodemailer streams: a campaign message', async () => {
    const [ours, theirs] = await both(campaignMail(7));
    expect(ours).toBe(theirs);
    expect(ours).toContain('List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    expect(ours).toContain('Message-ID: <d7.repermission-2026@shop.example>');
    expect(ours).toContain('Content-Type: multipart/alternative');
  });

  it('are byte for byte what nodemailer streams: edge cases', async () => {
    const cases: Mail.Options[] = [
      { from: 'a@example.com', to: 'b@example.com', subject: 'plain', text: 'short ASCII text' },
      { from: 'a@example.com', to: 'b@example.com', subject: 'long', text: `${'word '.repeat(60)}end` },
      { from: 'a@example.com', to: 'b@example.com', subject: 'trailing', text: 'ends with spaces   \nand tab\t' },
      { from: 'a@example.com', to: 'b@example.com', subject: 'cr lf', text: 'bare\rcr and bare\nlf and\r\ncrlf\r' },
      { from: 'a@example.com', to: 'b@example.com', subject: 'кириллица', text: 'Привет, это письмо почти целиком не в ASCII.' },
      { from: 'a@example.com', to: 'b@example.com', subject: '日本語', html: '<p>これは日本語のメールです。</p>'.repeat(20) },
      { from: 'a@example.com', to: 'b@example.com', subject: 'empty', text: '', html: '' },
      { from: 'a@example.com', to: 'b@example.com', subject: 'no body' },
      { from: 'a@example.com', to: 'b@example.com', subject: 'buffer', text: Buffer.from('é'.repeat(300)), html: Buffer.from('<b>x</b>') },
      {
        from: '"Dupont, Jean" <jean@example.com>',
        to: ['x@example.com', 'Ÿ <y@exämple.com>'],
        cc: 'z@example.com',
        subject: 'addresses',
        text: 'x',
      },
      {
        from: 'a@example.com',
        to: 'b@example.com',
        subject: 'attachment',
        text: 'see attached',
        attachments: [{ filename: 'a.txt', content: 'attached text' }],
      },
    ];
    for (const mail of cases) {
      const [ours, theirs] = await both(mail);
      expect(ours, String(mail.subject)).toBe(theirs);
    }
  });

  it('are byte for byte what nodemailer streams: any text and HTML', async () => {
    const text = fc.oneof(
      fc.string({ maxLength: 400 }),
      fc.string({ unit: 'grapheme', maxLength: 400 }),
      fc
        .array(fc.constantFrom('a', 'é', ' ', '\t', '\r', '\n', '\r\n', '=', '.', '—', '😀', 'x'.repeat(90)), { maxLength: 120 })
        .map((parts) => parts.join('')),
    );
    await fc.assert(
      fc.asyncProperty(text, text, fc.string({ unit: 'grapheme', maxLength: 120 }), async (plain, html, subject) => {
        const [ours, theirs] = await both({ from: 'a@example.com', to: 'b@example.com', subject, text: plain, html });
        expect(ours).toBe(theirs);
      }),
      { numRuns: 300 },
    );
  });

  it('leave what they cannot write at once (a stream) to nodemailer', async () => {
    const stream = new PassThrough();
    stream.end('streamed body');
    const ours = await buildMessage(
      new MailComposer({ from: 'a@example.com', to: 'b@example.com', text: stream, baseBoundary: 'x', date: DATE }).compile(),
    );
    expect(ours.toString()).toContain('streamed body');
  });

  it('carry the envelope nodemailer would use and a fresh boundary each', async () => {
    const a = await composeMessage(campaignMail(1));
    const b = await composeMessage(campaignMail(1));
    expect(a.envelope).toEqual({ from: 'news@shop.example', to: ['reader1@example.com'] });
    const boundary = (raw: Buffer) => /boundary="([^"]+)"/.exec(raw.toString())?.[1];
    expect(boundary(a.raw)).toMatch(/^--_NmP-[0-9a-f]{16}-Part_1$/);
    expect(boundary(a.raw)).not.toBe(boundary(b.raw));
  });
});

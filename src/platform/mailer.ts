// How email leaves: a pooled SMTP transport (nodemailer), or the outbox transport that keeps each
// message in the database for reading (the embedded default when SMTP_URL is not set).
import { readFileSync } from 'node:fs';
import nodemailer from 'nodemailer';
import type { Config } from '../config.ts';
import { composeMessage } from './mime.ts';

export interface OutgoingEmail {
  messageId: string;
  from: string;
  to: string;
  subject: string;
  html: string;
  text: string;
  headers: Record<string, string>;
}

export interface Mailer {
  /** 'outbox' keeps the message where it is (the messages table); 'smtp' hands it to the server. */
  readonly kind: 'smtp' | 'outbox';
  send(mail: OutgoingEmail): Promise<{ response: string }>;
  close(): Promise<void>;
}

export const outboxMailer: Mailer = {
  kind: 'outbox',
  send: async () => ({ response: 'stored in the outbox' }),
  close: async () => {},
};

export function createMailer(config: Config['mail']): Mailer {
  if (!config.smtpUrl) return outboxMailer;
  const dkim = config.dkim
    ? {
        domainName: config.dkim.domain,
        keySelector: config.dkim.selector,
        privateKey: readFileSync(config.dkim.privateKeyFile, 'utf8'),
        // The one-click unsubscribe headers must be covered by the signature (RFC 8058 §4).
        headerFieldNames:
          'From:Sender:Reply-To:Subject:Date:Message-ID:To:Cc:MIME-Version:Content-Type:Content-Transfer-Encoding:List-Unsubscribe:List-Unsubscribe-Post',
      }
    : undefined;
  const transport = nodemailer.createTransport({
    url: config.smtpUrl,
    pool: true,
    maxConnections: config.smtpPoolSize,
    maxMessages: Number.POSITIVE_INFINITY,
    ...(dkim ? { dkim } : {}),
  } as Parameters<typeof nodemailer.createTransport>[0]);
  return {
    kind: 'smtp',
    async send(mail) {
      // Composed here by nodemailer's MailComposer and written out at once (src/platform/mime.ts):
      // the pool then sends the bytes, not a tree of streams.
      const { raw, envelope } = await composeMessage({
        messageId: mail.messageId,
        from: mail.from,
        to: mail.to,
        subject: mail.subject,
        html: mail.html,
        text: mail.text,
        headers: mail.headers,
      });
      const info = await transport.sendMail({ envelope, raw, messageId: mail.messageId });
      return { response: String(info.response ?? '') };
    },
    async close() {
      transport.close();
    },
  };
}

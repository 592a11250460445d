// A real SMTP server in the test process (smtp-server): every message it accepts is parsed back
// with mailparser, so tests read what a mailbox would receive, headers included.
import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  /** The parsed message (mailparser): subject, text, html, messageId, headers… */
  parsed: ParsedMail;
  /** SMTP envelope recipients (RCPT TO). */
  to: string[];
  /** SMTP envelope sender (MAIL FROM). */
  from: string | null;
  /** The raw message as it came over the wire. */
  raw: string;
  /** When the sink had the whole message (Date.now(), taken before parsing it). */
  receivedAt: number;
}

export interface SmtpSink {
  /** `smtp://127.0.0.1:PORT`: give it to Assent as SMTP_URL. */
  url: string;
  port: number;
  /** Every message received so far, in arrival order. */
  messages: ReceivedMail[];
  /** Resolves once at least `n` messages arrived in total; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  /** The messages sent to this address (envelope or To header), case-insensitive. */
  to(address: string): ReceivedMail[];
  close(): Promise<void>;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const messages: ReceivedMail[] = [];
  const waiters = new Set<() => void>();
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    closeTimeout: 2_000,
    size: 10 * 1024 * 1024,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', callback);
      stream.on('end', () => {
        const receivedAt = Date.now();
        const raw = Buffer.concat(chunks);
        simpleParser(raw)
          .then((parsed) => {
            messages.push({
              parsed,
              to: session.envelope.rcptTo.map((r) => r.address),
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : null,
              raw: raw.toString('utf8'),
              receivedAt,
            });
            for (const wake of waiters) wake();
            callback();
          })
          .catch((error: Error) => callback(error));
      });
    },
  });
  // A client that dies mid-session (a worker killed by a test) resets its connection: not an error
  // of the sink's.
  server.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') throw error;
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;

  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    messages,
    waitFor(n, timeoutMs = 5_000) {
      if (messages.length >= n) return Promise.resolve(messages);
      return new Promise((resolve, reject) => {
        const check = () => {
          if (messages.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(messages);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`smtp sink: expected ${n} message(s) within ${timeoutMs} ms, got ${messages.length}`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    to(address) {
      const wanted = address.toLowerCase();
      return messages.filter(
        (m) =>
          m.to.some((a) => a.toLowerCase() === wanted) ||
          [m.parsed.to].flat().some((group) => group?.value.some((a) => a.address?.toLowerCase() === wanted)),
      );
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

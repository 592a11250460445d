// A message composed by nodemailer's MailComposer (headers, MIME tree, boundaries, transfer
// encodings: all nodemailer's decisions), written out at once instead of through its chain of
// streams. Streaming a small message cost more than the rest of sending it: a PassThrough, a
// pipeline, an encoder stream and several setImmediate hops per part, and one socket write per
// piece. The bytes are the ones MimeNode#build() gives for the same tree (test/mime.test.ts
// compares them); anything but plain string or Buffer parts (streams, files, URLs, raw parts,
// transforms) is left to nodemailer's own build().
import { randomBytes } from 'node:crypto';
import * as base64 from 'nodemailer/lib/base64';
import MailComposer from 'nodemailer/lib/mail-composer';
import type Mail from 'nodemailer/lib/mailer';
import type MimeNode from 'nodemailer/lib/mime-node';
import * as qp from 'nodemailer/lib/qp';

/** What a MimeNode holds that its typings do not show (nodemailer's own fields). */
interface NodeInternals {
  content?: unknown;
  contentType?: string;
  multipart?: string | false;
  boundary?: string;
  childNodes: MimeNode[];
  newline?: string;
  _raw?: unknown;
  _transforms: unknown[];
  _processFuncs: unknown[];
}

/** A transform stream's push, collected instead of streamed. */
type Collecting = { push(chunk: unknown, encoding?: BufferEncoding): boolean };

/**
 * Runs one of nodemailer's encoders (qp or base64) over the whole content in one call of its own
 * _transform and _flush, which is what the stream does for content given as one string or
 * Buffer (one chunk): the same code, without the stream around it.
 */
function encodeWhole(encoder: qp.Encoder | base64.Encoder, content: Buffer): Buffer[] {
  const out: Buffer[] = [];
  (encoder as unknown as Collecting).push = (chunk, encoding) => {
    out.push(typeof chunk === 'string' ? Buffer.from(chunk, encoding ?? 'utf8') : (chunk as Buffer));
    return true;
  };
  const stream = encoder as unknown as {
    _transform(chunk: Buffer, encoding: string, done: (error?: Error | null) => void): void;
    _flush(done: (error?: Error | null) => void): void;
  };
  let failure: Error | null | undefined;
  stream._transform(content, 'buffer', (error) => {
    failure = error;
  });
  if (!failure)
    stream._flush((error) => {
      failure = error;
    });
  if (failure) throw failure;
  return out;
}

/** The node written out as MimeNode#stream() writes it, or false if it holds something else. */
function writeNode(node: MimeNode, out: Buffer[]): boolean {
  const n = node as unknown as NodeInternals;
  if (n._raw || n._transforms.length > 0 || n._processFuncs.length > 0 || n.newline) return false;
  const content = n.content;
  if (content && typeof content !== 'string' && !Buffer.isBuffer(content)) return false;
  // buildHeaders() sets Content-Transfer-Encoding from getTransferEncoding(), as stream() reads it.
  out.push(Buffer.from(`${node.buildHeaders()}\r\n\r\n`, 'utf8'));
  if (content) {
    const body: Buffer = typeof content === 'string' ? Buffer.from(content, 'utf8') : (content as Buffer);
    const encoding = String(node.getHeader('Content-Transfer-Encoding') ?? '')
      .toLowerCase()
      .trim();
    if (encoding === 'quoted-printable') {
      out.push(...encodeWhole(new qp.Encoder({ binary: !/^text\//i.test(n.contentType || '') } as qp.EncoderOptions), body));
    } else if (encoding === 'base64') {
      out.push(...encodeWhole(new base64.Encoder({}), body));
    } else {
      out.push(body);
    }
  }
  if (n.multipart) {
    let index = 0;
    for (const child of n.childNodes) {
      out.push(Buffer.from(`${index > 0 ? '\r\n' : ''}--${n.boundary}\r\n`, 'utf8'));
      index += 1;
      if (!writeNode(child, out)) return false;
    }
    out.push(Buffer.from(`\r\n--${n.boundary}--\r\n`, 'utf8'));
  }
  return true;
}

/**
 * The message of a compiled tree as bytes: written out at once when every part is a string or
 * a Buffer, else through MimeNode#build(). Ends with a line break, as the stream's LastNewline
 * makes it.
 */
export async function buildMessage(root: MimeNode): Promise<Buffer> {
  const out: Buffer[] = [];
  if (!writeNode(root, out)) return root.build();
  const last = out.at(-1);
  const lastByte = last && last.length > 0 ? last[last.length - 1] : undefined;
  if (lastByte === 0x0d) out.push(Buffer.from('\n'));
  else if (lastByte !== 0x0a) out.push(Buffer.from('\r\n'));
  return Buffer.concat(out);
}

// Boundaries: nodemailer draws 8 random bytes per MIME node (three per message); drawn here
// from a pooled block instead, the same 16 hex characters.
let pool = Buffer.alloc(0);
let poolAt = 0;
function baseBoundary(): string {
  if (poolAt + 8 > pool.length) {
    pool = randomBytes(8 * 256);
    poolAt = 0;
  }
  const hex = pool.toString('hex', poolAt, poolAt + 8);
  poolAt += 8;
  return hex;
}

/**
 * Composes a message as nodemailer's sendMail() would (MailComposer on the same fields) and
 * returns its bytes and its SMTP envelope, for sendMail({ envelope, raw }).
 */
export async function composeMessage(mail: Mail.Options): Promise<{ raw: Buffer; envelope: { from: string; to: string[] } }> {
  const root = new MailComposer({ ...mail, baseBoundary: baseBoundary() } as Mail.Options).compile();
  const envelope = root.getEnvelope() as { from: string | false; to: string[] };
  const raw = await buildMessage(root);
  return { raw, envelope: { from: envelope.from || '', to: envelope.to } };
}

// The check every file passes before anything is written: one streaming pass over the bytes that
// hashes them (the batch id), tells the encoding and the delimiter, reads the header, counts the
// records and refuses what cannot be imported whole (binary, UTF-16, a record over 1 MiB, a quote
// that never closes, an empty or header-only file). Memory stays constant whatever the size.
import { isUtf8 } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { Transform } from 'node:stream';
import { parse } from 'csv-parse/sync';
import { DomainError } from '../../platform/errors.ts';

export type Encoding = 'utf-8' | 'windows-1252';
export type EncodingChoice = Encoding | 'auto';
export type Delimiter = ',' | ';' | '\t';

/** What the check learnt about a file: the import reads it again knowing all this. */
export interface FileFacts {
  /** sha256 of the bytes: the same file again is the same batch. */
  hash: string;
  bytes: number;
  encoding: Encoding;
  delimiter: Delimiter;
  header: string[];
  /** Data records holding something (the header and blank lines excluded). */
  rows: number;
}

/** A longer record is refused: no CRM row needs it, and it bounds the memory a row takes. */
export const MAX_RECORD_BYTES = 1 << 20;

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;

// Lexer states: at the start of a field, in an unquoted field, in a quoted one, just after a
// quote inside a quoted field (a second quote escapes it, anything else closes the field).
const FIELD_START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
const QUOTE_IN_QUOTED = 3;

/** Bytes Windows-1252 leaves undefined: a file holding them is in neither encoding we read. */
const UNDEFINED_1252 = new Set([0x81, 0x8d, 0x8f, 0x90, 0x9d]);

const refuse = (detail: string) => new DomainError('import_file_invalid', detail);

/**
 * Windows-1252 differs from Latin-1 in 0x80–0x9F (€, ’, —, œ…). Decoded here rather than by
 * TextDecoder('windows-1252'), which reads those bytes as Latin-1 in Node 20.18.3+ and 22.13+
 * (nodejs/node#60888).
 */
const CP1252_HIGH = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f, 0x90, 0x2018, 0x2019,
  0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
].map((code) => String.fromCharCode(code));

export function decodeWindows1252(bytes: Buffer): string {
  return bytes.toString('latin1').replace(/[\u0080-\u009f]/g, (ch) => CP1252_HIGH[ch.charCodeAt(0) - 0x80] as string);
}

/** Decodes in the file's encoding (a UTF-8 BOM is dropped). */
export const decodeText = (bytes: Buffer, encoding: Encoding): string =>
  encoding === 'windows-1252' ? decodeWindows1252(bytes) : new TextDecoder('utf-8').decode(bytes);

/** The delimiter the header uses most (outside quotes): `;` wins a tie, as French exports use it. */
export function detectDelimiter(headerLine: string): Delimiter {
  const counts = { ';': 0, ',': 0, '\t': 0 };
  let quoted = false;
  for (const ch of headerLine) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && (ch === ';' || ch === ',' || ch === '\t')) counts[ch] += 1;
  }
  const best = (Object.entries(counts) as Array<[Delimiter, number]>).reduce((a, b) => (b[1] > a[1] ? b : a));
  return best[1] === 0 ? ',' : best[0];
}

/** The first line holding something, once its end is in `buf` (undefined until then). */
function firstLine(buf: Buffer): Buffer | undefined {
  let start = 0;
  while (start < buf.length && (buf[start] === LF || buf[start] === CR || buf[start] === 0x20 || buf[start] === 0x09)) start += 1;
  const lf = buf.indexOf(LF, start);
  const cr = buf.indexOf(CR, start);
  const end = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
  return end < 0 ? undefined : buf.subarray(start, end);
}

/** Offset of the first byte that breaks UTF-8 in `buf` (which isUtf8 said is not valid). */
function firstInvalidUtf8(buf: Uint8Array): number {
  let i = 0;
  while (i < buf.length) {
    const b = buf[i] as number;
    const need = b < 0x80 ? 0 : b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
    if (need < 0) return i;
    for (let k = 1; k <= need; k += 1) if (((buf[i + k] ?? 0) & 0xc0) !== 0x80) return i;
    i += need + 1;
  }
  return buf.length;
}

export class FileScanner {
  readonly #choice: EncodingChoice;
  readonly #maxBytes: number;
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;
  /** Bytes before the delimiter is known (the first line): lexed once it is. */
  #pending: Buffer[] | null = [];
  #pendingBytes = 0;
  #delimiter = 0;
  #state = FIELD_START;
  #prevCR = false;
  #line = 1;
  #recordStartLine = 1;
  #recordBytes = 0;
  #recordHasContent = false;
  #headerDone = false;
  #header: Buffer[] = [];
  #rows = 0;
  #started = false;
  // Encoding evidence.
  #utf8Carry: Buffer | null = null;
  #utf8BadLine = 0;
  #undefined1252Line = 0;

  constructor(options: { encoding?: EncodingChoice; maxBytes?: number } = {}) {
    this.#choice = options.encoding ?? 'auto';
    this.#maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
  }

  /** Takes the next chunk; throws `import_file_invalid` (or `payload_too_large`) as soon as the file cannot be imported. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#bytes += chunk.length;
    if (this.#bytes > this.#maxBytes) {
      throw new DomainError('payload_too_large', `The file is larger than ${Math.round(this.#maxBytes / 2 ** 20)} MiB`);
    }
    this.#hash.update(chunk);
    let data = chunk;
    if (!this.#started) {
      this.#started = true;
      if ((data[0] === 0xff && data[1] === 0xfe) || (data[0] === 0xfe && data[1] === 0xff)) {
        throw refuse('The file is UTF-16 (Excel’s “Unicode text”): save it as “CSV UTF-8” or as “CSV (semicolon)” instead');
      }
      if (data[0] === 0x50 && data[1] === 0x4b && data[2] === 0x03 && data[3] === 0x04) {
        throw refuse('The file is a ZIP archive (an .xlsx workbook?), not CSV text: export the sheet as CSV first');
      }
      if (data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) {
        data = data.subarray(3);
      }
    }
    const nul = data.indexOf(0);
    if (nul >= 0) {
      throw refuse(
        `The file holds NUL bytes (the first at byte ${this.#bytes - data.length + nul + 1}): it is binary or UTF-16, not CSV text`,
      );
    }
    if (this.#pending) {
      this.#pending.push(data);
      this.#pendingBytes += data.length;
      const buffered = Buffer.concat(this.#pending);
      const first = firstLine(buffered);
      if (!first && this.#pendingBytes <= MAX_RECORD_BYTES) {
        this.#pending = [buffered];
        return;
      }
      this.#pending = null;
      this.#delimiter = detectDelimiter((first ?? buffered.subarray(0, MAX_RECORD_BYTES)).toString('latin1')).charCodeAt(0);
      this.#lex(buffered);
      return;
    }
    this.#lex(data);
  }

  #checkUtf8(data: Buffer): void {
    if (this.#utf8BadLine || this.#choice === 'windows-1252') return;
    const joined = this.#utf8Carry ? Buffer.concat([this.#utf8Carry, data]) : data;
    // A character may straddle two chunks: keep its first bytes for the next one.
    let cut = joined.length;
    for (let k = 1; k <= Math.min(3, joined.length); k += 1) {
      const b = joined[joined.length - k] as number;
      if ((b & 0xc0) === 0x80) continue;
      const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
      if (need > k) cut = joined.length - k;
      break;
    }
    const body = joined.subarray(0, cut);
    this.#utf8Carry = cut < joined.length ? Buffer.from(joined.subarray(cut)) : null;
    if (isUtf8(body)) return;
    const at = firstInvalidUtf8(body);
    // Line of the bad byte: lines before this chunk, plus the line ends before it in the chunk.
    const upto = at - (joined.length - data.length);
    let line = this.#line;
    for (let i = 0; i < upto; i += 1) if (data[i] === LF) line += 1;
    this.#utf8BadLine = line;
  }

  #lex(data: Buffer): void {
    this.#checkUtf8(data);
    const delimiter = this.#delimiter;
    let state = this.#state;
    let prevCR = this.#prevCR;
    let line = this.#line;
    let recordBytes = this.#recordBytes;
    let hasContent = this.#recordHasContent;
    let headerStart = this.#headerDone ? -1 : 0;
    const n = data.length;
    for (let i = 0; i < n; i += 1) {
      const b = data[i] as number;
      recordBytes += 1;
      if (b === LF || b === CR) {
        const newLine = !(b === LF && prevCR);
        prevCR = b === CR;
        if (newLine) line += 1;
        if (state === QUOTED) continue;
        // End of a record (a CRLF's LF ends nothing more).
        if (newLine) {
          if (!this.#headerDone) {
            // Blank lines before the header are passed over; the first line holding something names the columns.
            if (hasContent) {
              if (headerStart >= 0) this.#header.push(data.subarray(headerStart, i));
              this.#headerDone = true;
              headerStart = -1;
            } else {
              this.#header = [];
              headerStart = i + 1;
            }
          } else if (hasContent) this.#rows += 1;
          state = FIELD_START;
          recordBytes = 0;
          hasContent = false;
          this.#recordStartLine = line;
        }
        continue;
      }
      prevCR = false;
      if (recordBytes > MAX_RECORD_BYTES) {
        this.#line = line;
        throw refuse(
          state === QUOTED
            ? `A quoted field opened on line ${this.#recordStartLine} is still open after 1 MiB: a quote is missing, or a record is too long`
            : `Line ${this.#recordStartLine} is longer than 1 MiB: this is not a CRM export row`,
        );
      }
      if (b < 0x20) {
        if (b !== 0x09 && b !== 0x0b && b !== 0x0c && b !== 0x1a) {
          throw refuse(
            `Line ${line} holds a control character (0x${b.toString(16).padStart(2, '0')}): the file looks binary, not CSV text`,
          );
        }
      } else if (b >= 0x80 && !this.#undefined1252Line && UNDEFINED_1252.has(b)) this.#undefined1252Line = line;
      if (b !== delimiter && b !== QUOTE && b !== 0x20 && b !== 0x09) hasContent = true;
      switch (state) {
        case FIELD_START:
          state = b === QUOTE ? QUOTED : b === delimiter ? FIELD_START : UNQUOTED;
          break;
        case UNQUOTED:
          if (b === delimiter) state = FIELD_START;
          break;
        case QUOTED:
          if (b === QUOTE) state = QUOTE_IN_QUOTED;
          else hasContent = true;
          break;
        default:
          state = b === QUOTE ? QUOTED : b === delimiter ? FIELD_START : UNQUOTED;
          if (b === QUOTE) hasContent = true;
      }
    }
    if (!this.#headerDone && headerStart >= 0) {
      this.#header.push(Buffer.from(data.subarray(headerStart)));
    }
    this.#state = state;
    this.#prevCR = prevCR;
    this.#line = line;
    this.#recordBytes = recordBytes;
    this.#recordHasContent = hasContent;
  }

  /** After the last chunk: the facts, or why the file cannot be imported. */
  finish(): FileFacts {
    if (this.#pending) {
      const buffered = Buffer.concat(this.#pending);
      this.#pending = null;
      this.#delimiter = detectDelimiter(buffered.toString('latin1')).charCodeAt(0);
      this.#lex(buffered);
    }
    if (this.#utf8Carry && !this.#utf8BadLine && this.#choice !== 'windows-1252') this.#utf8BadLine = this.#line;
    if (this.#state === QUOTED) {
      throw refuse(`The quoted field opened on line ${this.#recordStartLine} never closes: a quote is missing`);
    }
    // The last record may end without a line break.
    if (!this.#headerDone) {
      if (!this.#recordHasContent) throw refuse('The file is empty: there is not even a header');
      this.#headerDone = true;
    } else if (this.#recordHasContent) this.#rows += 1;
    if (this.#rows === 0) throw refuse('The file has a header but no rows: there is nothing to import');

    const encoding = this.#encoding();
    const headerBytes = Buffer.concat(this.#header);
    const delimiter = String.fromCharCode(this.#delimiter) as Delimiter;
    const headerText = decodeText(headerBytes, encoding).replace(/^[\r\n]+/, '');
    let header: string[];
    try {
      header = (parse(headerText, { delimiter, relax_quotes: true, relax_column_count: true }) as string[][])[0] ?? [];
    } catch (error) {
      throw refuse(`The header cannot be read as CSV: ${(error as Error).message}`);
    }
    return {
      hash: this.#hash.digest('hex'),
      bytes: this.#bytes,
      encoding,
      delimiter,
      header: header.map((h) => h.trim()),
      rows: this.#rows,
    };
  }

  #encoding(): Encoding {
    const utf8 = this.#utf8BadLine === 0;
    if (this.#choice === 'utf-8') {
      if (!utf8) {
        throw refuse(
          `The file is not valid UTF-8 (line ${this.#utf8BadLine}): it is probably Windows-1252 — import it with encoding windows-1252, or leave the encoding to be detected`,
        );
      }
      return 'utf-8';
    }
    if (this.#choice === 'windows-1252' || !utf8) {
      if (this.#undefined1252Line) {
        throw refuse(
          `The file is neither UTF-8 nor Windows-1252 (line ${this.#undefined1252Line} holds a byte Windows-1252 does not define): save it as “CSV UTF-8”`,
        );
      }
      return 'windows-1252';
    }
    return 'utf-8';
  }
}

/** Scans a stream to the end (copying each chunk to `copy` first, e.g. an upload's spool file). */
export async function scanFile(
  source: AsyncIterable<Buffer | string>,
  options: { encoding?: EncodingChoice; maxBytes?: number } = {},
  copy?: (chunk: Buffer) => Promise<void> | void,
): Promise<FileFacts> {
  const scanner = new FileScanner(options);
  for await (const raw of source) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    scanner.push(chunk);
    if (copy) await copy(chunk);
  }
  return scanner.finish();
}

/**
 * The file as UTF-8 text with every line break a LF, for the CSV parser: Windows-1252 is decoded
 * (Node has no Buffer encoding for it), a UTF-8 BOM dropped, CRLF and CR made LF — so the parser's
 * line count is the file's (it miscounts blank CRLF lines otherwise).
 */
export function toUtf8Lines(encoding: Encoding): Transform {
  // Windows-1252 has one byte a character: chunks decode on their own.
  const decoder = encoding === 'utf-8' ? new TextDecoder('utf-8') : undefined;
  const decode = (chunk?: Buffer) =>
    decoder ? (chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode()) : chunk ? decodeWindows1252(chunk) : '';
  let carryCR = false;
  const lines = (text: string) => text.replace(/\r\n?/g, '\n');
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      let text = (carryCR ? '\r' : '') + decode(chunk);
      // A CR closing the chunk may open a CRLF: keep it until the next chunk says.
      carryCR = text.endsWith('\r');
      if (carryCR) text = text.slice(0, -1);
      done(null, lines(text));
    },
    flush(done) {
      done(null, lines((carryCR ? '\r' : '') + decode()));
    },
  });
}

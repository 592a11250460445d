// The file check and the decoding stream give the same answer however the bytes are cut into
// chunks: a character, a CRLF or a quote may straddle two.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../platform/errors.ts';
import { decodeWindows1252, detectDelimiter, type FileFacts, FileScanner, toUtf8Lines } from './imports.scan.ts';

function scanInChunks(bytes: Buffer, size: number): FileFacts {
  const scanner = new FileScanner();
  // The first chunk holds the BOM / magic bytes, as any real read does.
  scanner.push(bytes.subarray(0, 4));
  for (let i = 4; i < bytes.length; i += size) scanner.push(bytes.subarray(i, i + size));
  return scanner.finish();
}

async function decodeInChunks(bytes: Buffer, size: number, encoding: 'utf-8' | 'windows-1252'): Promise<string> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  let out = '';
  for await (const piece of Readable.from(chunks).pipe(toUtf8Lines(encoding))) out += String(piece);
  return out;
}

const utf8 = Buffer.from('\ufeffCourriel;Prénom;Note\r\nzoe@exemple.fr;Zoé;"dit ""oui""\r\nà 14 h"\r\n\r\nlea@exemple.fr;Léa;€\r\n');
const cp1252 = Buffer.concat([
  Buffer.from('email,nom\r\na@exemple.fr,C'),
  Buffer.from([0x9c]), // œ
  Buffer.from('ur\r\nb@exemple.fr,'),
  Buffer.from([0x80, 0x92]), // €’
  Buffer.from('\r\n'),
]);

describe('FileScanner', () => {
  it('finds the same facts whatever the chunk size', () => {
    const whole = scanInChunks(utf8, utf8.length);
    expect(whole).toMatchObject({ encoding: 'utf-8', delimiter: ';', header: ['Courriel', 'Prénom', 'Note'], rows: 2 });
    for (const size of [1, 2, 3, 7]) expect(scanInChunks(utf8, size)).toEqual(whole);
    const latin = scanInChunks(cp1252, cp1252.length);
    expect(latin).toMatchObject({ encoding: 'windows-1252', delimiter: ',', rows: 2 });
    for (const size of [1, 2, 5]) expect(scanInChunks(cp1252, size)).toEqual(latin);
  });

  it('names the line of the first byte that is not UTF-8, even split across chunks', () => {
    const scanner = new FileScanner({ encoding: 'utf-8' });
    scanner.push(Buffer.from('email\nok@exemple.fr\nbad'));
    scanner.push(Buffer.from([0xe9, 0x0a]));
    expect(() => scanner.finish()).toThrow(/line 3/);
  });

  it('refuses a record longer than 1 MiB as soon as it passes the limit', () => {
    const scanner = new FileScanner();
    scanner.push(Buffer.from('email;nom\n'));
    let error: unknown;
    try {
      for (let i = 0; i < 3; i += 1) scanner.push(Buffer.alloc(600_000, 'x'));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).message).toMatch(/Line 2 is longer than 1 MiB/);
  });
});

describe('reading text for the parser', () => {
  it('decodes UTF-8 split inside a character and CRLF split between chunks, as LF', async () => {
    const expected = 'Courriel;Prénom;Note\nzoe@exemple.fr;Zoé;"dit ""oui""\nà 14 h"\n\nlea@exemple.fr;Léa;€\n';
    for (const size of [1, 2, 3, 64]) expect(await decodeInChunks(utf8, size, 'utf-8')).toBe(expected);
  });

  it('decodes Windows-1252 with its own characters in 0x80–0x9F, not Latin-1', async () => {
    expect(decodeWindows1252(Buffer.from([0x80, 0x92, 0x97, 0x9c, 0xe9]))).toBe('€’—œé');
    expect(await decodeInChunks(cp1252, 3, 'windows-1252')).toBe('email,nom\na@exemple.fr,Cœur\nb@exemple.fr,€’\n');
  });

  it('tells the delimiter from the header, outside quotes', () => {
    expect(detectDelimiter('a;b;c')).toBe(';');
    expect(detectDelimiter('"a;b",c,d')).toBe(',');
    expect(detectDelimiter('a\tb\tc')).toBe('\t');
    expect(detectDelimiter('email')).toBe(',');
  });
});

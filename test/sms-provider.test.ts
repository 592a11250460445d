// The generic HTTP SMS provider against a real local HTTP server: the contract in the README.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseQuietHours, type QuietHours } from '../src/config.ts';
import { createSmsProvider } from '../src/platform/sms.ts';

interface Received {
  method: string | undefined;
  url: string | undefined;
  headers: IncomingMessage['headers'];
  body: string;
}

let server: Server;
let url: string;
const received: Received[] = [];
let answer: { status: number; body: string; type?: string } = { status: 200, body: '{"id":"msg-1"}' };

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(answer.status, { 'content-type': answer.type ?? 'application/json' });
      res.end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/send`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  received.length = 0;
  answer = { status: 200, body: '{"id":"msg-1"}' };
});

const quietHours = parseQuietHours('Mon-Sat 08:00-20:00', 'Europe/Paris') as QuietHours;
const provider = (token?: string) => createSmsProvider({ providerUrl: url, providerToken: token, stopNumber: '36180', quietHours });
const sms = { to: '+33612345678', body: 'Bonjour ! STOP au 36180', reference: '42' };

describe('generic HTTP SMS provider', () => {
  it('keeps SMS in the outbox when no provider URL is set', async () => {
    const outbox = createSmsProvider({ providerUrl: undefined, providerToken: undefined, stopNumber: '36180', quietHours });
    expect(outbox.kind).toBe('outbox');
    expect(await outbox.send(sms)).toEqual({ providerRef: 'outbox:42' });
    expect(received).toHaveLength(0);
  });

  it('posts { to, body, reference } as JSON with the bearer token and returns the provider id', async () => {
    const p = provider('sms-token-123');
    expect(p.kind).toBe('http');
    expect(await p.send(sms)).toEqual({ providerRef: 'msg-1' });
    expect(received).toHaveLength(1);
    const [request] = received as [Received];
    expect(request.method).toBe('POST');
    expect(request.url).toBe('/send');
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.headers.authorization).toBe('Bearer sms-token-123');
    expect(JSON.parse(request.body)).toEqual({ to: '+33612345678', body: 'Bonjour ! STOP au 36180', reference: '42' });
  });

  it('sends no authorization header without a token', async () => {
    await provider().send(sms);
    expect(received[0]?.headers.authorization).toBeUndefined();
  });

  it('takes a numeric id as text', async () => {
    answer = { status: 201, body: '{"id":98765}' };
    expect(await provider('t').send(sms)).toEqual({ providerRef: '98765' });
  });

  it('falls back to our reference when a 2xx answer carries no id (the SMS left: no retry)', async () => {
    answer = { status: 202, body: 'accepted', type: 'text/plain' };
    expect(await provider('t').send(sms)).toEqual({ providerRef: 'http:42' });
  });

  it('throws on a non-2xx answer, naming the status', async () => {
    answer = { status: 500, body: '{"error":"down"}' };
    await expect(provider('t').send(sms)).rejects.toThrow(/500/);
    answer = { status: 401, body: '{"error":"bad token"}' };
    await expect(provider('wrong').send(sms)).rejects.toThrow(/401/);
  });

  it('throws when the provider cannot be reached', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const p = createSmsProvider({ providerUrl: `http://127.0.0.1:${port}/send`, providerToken: 't', stopNumber: '36180', quietHours });
    await expect(p.send(sms)).rejects.toThrow();
  });
});

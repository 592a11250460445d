// Logs never carry personal data: no email, phone, name or IP in any line the app writes
// (issue 3, point 12), whatever route, query string, error or failure carried them.
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/platform/logger.ts';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';

// Distinctive values: if any of them shows up in a log line, it came from these requests.
const EMAIL = 'zoelinde.quilliamsky@logprobe-example.org';
const EMAIL_UPPER = 'ZoeLinde.Quilliamsky@LogProbe-Example.org';
const PHONE_E164 = '+33647258139';
const PHONE_NATIONAL = '06 47 25 81 39';
const FIRST = 'Zoelinde';
const LAST = 'Quilliamsky';
const IP = '198.51.100.213';
const FORWARDED_IP = '203.0.113.187';
const SECOND_EMAIL = 'bartholomea.vexworth@logprobe-example.org';
const SECOND_PHONE = '+33758316402';

const personal = [
  EMAIL,
  EMAIL_UPPER.toLowerCase(),
  'zoelinde.quilliamsky',
  'logprobe-example',
  PHONE_E164,
  '647258139',
  '06 47 25',
  FIRST,
  LAST,
  IP,
  FORWARDED_IP,
  SECOND_EMAIL,
  'bartholomea',
  '758316402',
];

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error('waitFor: timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function leaks(lines: string[], values: string[]): string[] {
  const found: string[] = [];
  for (const line of lines) {
    const lower = line.toLowerCase();
    for (const v of values) if (lower.includes(v.toLowerCase())) found.push(`${v} in ${line.slice(0, 300)}`);
  }
  return found;
}

describe.each(dialects)('logs on %s', (dialect) => {
  let t: TestApp;
  let contactId: string;
  const headers = { 'x-forwarded-for': FORWARDED_IP, 'x-real-ip': FORWARDED_IP, 'user-agent': `LogProbe/1.0 (${EMAIL})` };

  beforeAll(async () => {
    t = await buildTestApp(dialect);
  });
  afterAll(async () => t?.close());

  it('writes request lines, none with an email, phone, name or IP, whatever the request carried', async () => {
    const seen: string[] = [];
    const call = async (
      method: string,
      url: string,
      options: { body?: unknown; key?: string | null; headers?: Record<string, string> } = {},
    ) => {
      const res = await t.call(method, url, { ...options, headers: { ...headers, ...options.headers } });
      seen.push(`${method} ${url.split('?')[0]} ${res.statusCode}`);
      return res;
    };

    const created = await call('POST', '/v1/contacts', {
      body: { email: EMAIL_UPPER, phone: PHONE_NATIONAL, firstName: FIRST, lastName: LAST, locale: 'fr' },
    });
    expect(created.statusCode).toBe(201);
    contactId = created.json().id;
    // The values did go through the app (so a leak would be seen): the API hands them back.
    expect(created.json()).toMatchObject({ email: EMAIL, phone: PHONE_E164, firstName: FIRST, lastName: LAST });

    const q = encodeURIComponent;
    expect((await call('GET', `/v1/contacts?email=${q(EMAIL)}`)).json().items).toHaveLength(1);
    expect((await call('GET', `/v1/contacts?phone=${q(PHONE_E164)}`)).json().items).toHaveLength(1);
    expect((await call('GET', `/v1/contacts/${contactId}`)).statusCode).toBe(200);
    expect((await call('PATCH', `/v1/contacts/${contactId}`, { body: { lastName: `${LAST}-Martin`, firstName: FIRST } })).statusCode).toBe(
      200,
    );

    const consent = await call('POST', '/v1/consents', {
      body: {
        email: EMAIL,
        purpose: 'commercial-email',
        channel: 'email',
        action: 'grant',
        source: { type: 'form', ref: 'signup@1' },
        evidence: {
          ip: IP,
          userAgent: `Mozilla/5.0 (${FIRST} ${LAST})`,
          url: `https://shop.example/signup?email=${q(EMAIL)}`,
          text: `Oui, ${FIRST}`,
        },
      },
    });
    expect(consent.statusCode).toBe(201);
    expect(consent.json().evidence.ip).toBe(IP);
    const sms = await call('POST', '/v1/consents', {
      body: { contactId, purpose: 'commercial-sms', channel: 'sms', action: 'grant', evidence: { ip: IP } },
    });
    expect(sms.statusCode).toBe(201);

    const proof = await call('GET', `/v1/contacts/${contactId}/proof`);
    expect(proof.body).toContain(IP);
    expect((await call('GET', `/v1/contacts/${contactId}/consents/history`)).statusCode).toBe(200);

    expect((await call('GET', `/v1/decisions?email=${q(EMAIL)}&purpose=commercial-email&channel=email`)).json()).toMatchObject({
      allowed: true,
    });
    expect((await call('GET', `/v1/decisions?phone=${q(PHONE_E164)}&purpose=commercial-sms&channel=sms`)).json()).toMatchObject({
      allowed: true,
    });
    const batch = await call('POST', '/v1/decisions', {
      body: {
        items: [
          { email: EMAIL, purpose: 'commercial-email', channel: 'email' },
          { phone: PHONE_NATIONAL, purpose: 'commercial-sms', channel: 'sms' },
        ],
      },
    });
    expect(batch.statusCode).toBe(200);

    // Errors that carry the values: 404 route with the email in the path, 400 params, bad JSON,
    // 409 duplicates, invalid addresses, 401 with a query string, suppressions.
    expect((await call('GET', `/v1/people/${q(EMAIL)}/${q(PHONE_E164)}?name=${FIRST}`)).statusCode).toBe(404);
    expect((await call('GET', `/v1/contacts/${q(EMAIL)}`)).statusCode).toBe(400);
    expect(
      (
        await call('POST', '/v1/contacts', {
          body: `{"email": "${EMAIL}", "firstName": "${FIRST}"`,
          headers: { 'content-type': 'application/json' },
        })
      ).statusCode,
    ).toBe(400);
    expect((await call('POST', '/v1/contacts', { body: { email: EMAIL, firstName: FIRST } })).statusCode).toBe(409);
    expect((await call('POST', '/v1/contacts', { body: { email: SECOND_EMAIL, phone: PHONE_E164 } })).statusCode).toBe(409);
    expect((await call('POST', '/v1/contacts', { body: { email: `${FIRST}@@${LAST}.org`, lastName: LAST } })).statusCode).toBe(422);
    expect((await call('POST', '/v1/contacts', { body: { email: SECOND_EMAIL, phone: `${SECOND_PHONE}99999` } })).statusCode).toBe(422);
    expect((await call('POST', '/v1/contacts', { body: { email: SECOND_EMAIL, nickname: LAST } })).statusCode).toBe(400);
    expect((await call('GET', `/v1/decisions?email=${q(EMAIL)}&purpose=commercial-email&channel=email`, { key: null })).statusCode).toBe(
      401,
    );
    expect(
      (
        await call('POST', '/v1/suppressions', {
          body: { channel: 'sms', phone: SECOND_PHONE, reason: 'unsubscribed', source: `${FIRST} asked` },
        })
      ).statusCode,
    ).toBe(201);
    expect((await call('GET', `/v1/suppressions/check?channel=email&email=${q(SECOND_EMAIL)}`)).statusCode).toBe(200);
    expect(
      (
        await call('POST', '/v1/consents', {
          body: { email: SECOND_EMAIL, purpose: 'commercial-email', channel: 'email', action: 'confirm' },
        })
      ).statusCode,
    ).toBe(409);

    // Erasure: the last thing we do with this person.
    expect((await call('DELETE', `/v1/contacts/${contactId}`)).statusCode).toBe(204);

    // There are log lines (one per request at least), so a leak would have shown.
    const requestLines = t.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');
    expect(requestLines.length).toBeGreaterThanOrEqual(seen.length);
    expect(requestLines.some((l) => l.route === '/v1/contacts' && l.status === 201)).toBe(true);
    expect(requestLines.some((l) => l.status === 404)).toBe(true);
    expect(leaks(t.logs, personal)).toEqual([]);
  });

  it('keeps the values out of the logs when many requests for one new person race', async () => {
    const email = 'raceperson.vexworth@logprobe-example.org';
    const send = () =>
      Promise.all(
        Array.from({ length: 8 }, () =>
          t.call('POST', '/v1/consents', {
            body: { email, purpose: 'commercial-email', channel: 'email', action: 'grant', evidence: { ip: IP } },
          }),
        ),
      );
    let results: Awaited<ReturnType<typeof send>>;
    if (dialect === 'postgres') {
      // Make the race certain: hold inserts into contacts until all eight have looked the email up
      // and found nobody; then every one of them tries to create the same person.
      const blocker = new pg.Client({ connectionString: t.database.url });
      await blocker.connect();
      let pending: ReturnType<typeof send> | undefined;
      try {
        await blocker.query('begin');
        await blocker.query('lock table contacts in share mode');
        pending = send();
        await waitFor(async () => {
          // pg_stat_activity is a per-transaction snapshot: clear it to see the requests arrive.
          await blocker.query('select pg_stat_clear_snapshot()');
          const { rows } = await blocker.query(
            "select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()",
          );
          return rows[0].n >= 8;
        });
      } finally {
        await blocker.query('commit');
        await blocker.end();
      }
      results = await (pending as ReturnType<typeof send>);
    } else {
      results = await send();
    }
    // Every request records its grant (one contact, eight chained events): none fails.
    expect(results.map((r) => r.statusCode)).toEqual(Array(8).fill(201));
    const found = (await t.call('GET', `/v1/contacts?email=${encodeURIComponent(email)}`)).json();
    expect(found.items).toHaveLength(1);
    const history = (await t.call('GET', `/v1/contacts/${found.items[0].id}/consents/history`)).json();
    expect(history.items).toHaveLength(8);
    expect((await t.call('GET', '/v1/ledger/verify')).json().ok).toBe(true);
    expect(leaks(t.logs, [email, 'raceperson', IP])).toEqual([]);
  });

  it.runIf(dialect === 'postgres')('survives the store ending its idle connections, and says so without personal data', async () => {
    const email = 'terminated.connection@logprobe-example.org';
    expect((await t.call('POST', '/v1/contacts', { body: { email, firstName: 'Ottoline' } })).statusCode).toBe(201);
    const before = t.logs.length;
    // What a PostgreSQL restart or failover does to a pool: every idle connection is ended.
    const admin = new pg.Client({ connectionString: t.database.url });
    await admin.connect();
    let terminated = 0;
    try {
      const { rows } = await admin.query(
        'select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
      );
      terminated = rows[0].n;
      expect(terminated).toBeGreaterThan(0);
    } finally {
      await admin.end();
    }
    // Every ended connection is noticed (and dropped from the pool) before the next request.
    await waitFor(async () => t.logs.slice(before).filter((l) => JSON.parse(l).level === 40).length >= terminated);
    // The process is still up, the next request opens a new connection.
    const again = await t.call('GET', `/v1/contacts?email=${encodeURIComponent(email)}`);
    expect(again.statusCode).toBe(200);
    expect(again.json().items).toHaveLength(1);
    expect(leaks(t.logs.slice(before), [email, 'terminated.connection', 'Ottoline'])).toEqual([]);
  });

  it('logs a 500 without the personal data the failing statement held', async () => {
    // Make the store itself refuse one insert, as a broken migration or a full disk would: the
    // driver's error then describes the row (PostgreSQL: "Failing row contains (…)").
    if (dialect === 'postgres') {
      await sql`alter table contacts add constraint log_probe_refuse check (last_name is null or last_name <> 'Explosivsky')`.execute(
        t.ctx.db.kysely,
      );
    } else {
      await sql`create trigger log_probe_refuse before insert on contacts when new.last_name = 'Explosivsky' begin select raise(abort, 'log_probe refused the row'); end`.execute(
        t.ctx.db.kysely,
      );
    }
    const email = 'explosive.contact@logprobe-example.org';
    const before = t.logs.length;
    const res = await t.call('POST', '/v1/contacts', {
      body: { email, phone: SECOND_PHONE, firstName: 'Anselmina', lastName: 'Explosivsky' },
      headers: { 'x-forwarded-for': FORWARDED_IP },
    });
    expect(res.statusCode).toBe(500);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ status: 500, code: 'internal' });
    // The answer hides the cause…
    expect(res.body).not.toContain('Explosivsky');
    expect(res.body).not.toContain('log_probe');
    // …the log has it (an error line was written for this request)…
    const lines = t.logs.slice(before).map((l) => JSON.parse(l));
    const error = lines.find((l) => l.level >= 50);
    expect(error).toBeDefined();
    expect(JSON.stringify(error)).toContain('log_probe');
    // …but not the person.
    expect(
      leaks(t.logs.slice(before), [email, 'explosive.contact', SECOND_PHONE, '758316402', 'Anselmina', 'Explosivsky', FORWARDED_IP]),
    ).toEqual([]);
  });
});

describe('createLogger redaction', () => {
  function capture(): { lines: string[]; stream: Writable } {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    return { lines, stream };
  }

  it('censors personal fields at the top level and two levels down', () => {
    const { lines, stream } = capture();
    const logger = createLogger('info', stream);
    logger.info(
      {
        email: EMAIL,
        phone: PHONE_E164,
        ip: IP,
        firstName: FIRST,
        lastName: LAST,
        contact: { email: SECOND_EMAIL, phone: SECOND_PHONE, first_name: FIRST, last_name: LAST, userAgent: 'UA-probe', id: 'kept-1' },
        batch: { first: { email: EMAIL, ip: FORWARDED_IP, remoteAddress: IP, firstName: FIRST, id: 'kept-2' } },
        req: { headers: { authorization: 'Bearer ak_secret', 'x-forwarded-for': FORWARDED_IP } },
        route: '/v1/contacts',
      },
      'probe',
    );
    expect(lines).toHaveLength(1);
    const line = lines[0] as string;
    expect(leaks([line], [EMAIL, SECOND_EMAIL, PHONE_E164, SECOND_PHONE, FIRST, LAST, IP, FORWARDED_IP, 'UA-probe', 'ak_secret'])).toEqual(
      [],
    );
    const parsed = JSON.parse(line);
    expect(parsed).toMatchObject({
      msg: 'probe',
      route: '/v1/contacts',
      email: '[redacted]',
      phone: '[redacted]',
      ip: '[redacted]',
      firstName: '[redacted]',
      lastName: '[redacted]',
      contact: {
        email: '[redacted]',
        phone: '[redacted]',
        first_name: '[redacted]',
        last_name: '[redacted]',
        userAgent: '[redacted]',
        id: 'kept-1',
      },
      batch: { first: { email: '[redacted]', ip: '[redacted]', remoteAddress: '[redacted]', firstName: '[redacted]', id: 'kept-2' } },
    });
  });

  it('keeps a database error useful but drops the row values its driver quotes', () => {
    const { lines, stream } = capture();
    const logger = createLogger('info', stream);
    // What pg throws on a unique or check violation: the values sit in `detail` (and `where`).
    const err = Object.assign(new Error('duplicate key value violates unique constraint "contacts_email_key"'), {
      code: '23505',
      constraint: 'contacts_email_key',
      table: 'contacts',
      detail: `Key (email)=(${EMAIL}) already exists.`,
      where: `Failing row contains (01JAAAAAAAAAAAAAAAAAAAAAAA, ${EMAIL}, ${PHONE_E164}, ${FIRST}, ${LAST})`,
    });
    logger.error({ err, route: '/v1/consents' }, 'request failed');
    const line = lines[0] as string;
    expect(leaks([line], [EMAIL, PHONE_E164, FIRST, LAST])).toEqual([]);
    const parsed = JSON.parse(line);
    expect(parsed.err).toMatchObject({
      message: expect.stringContaining('contacts_email_key'),
      code: '23505',
      constraint: 'contacts_email_key',
    });
    expect(parsed.err.stack).toEqual(expect.any(String));
  });

  it('scrubs an email or a phone number out of an error message', () => {
    const { lines, stream } = capture();
    const logger = createLogger('info', stream);
    logger.error({ err: new Error(`could not send to ${EMAIL} or ${PHONE_E164}`) }, 'send failed');
    const line = lines[0] as string;
    expect(leaks([line], [EMAIL, PHONE_E164])).toEqual([]);
    expect(JSON.parse(line).err.message).toContain('could not send to');
  });
});

// DELIVERY_RATE_PER_SECOND holds: a campaign step of 60 deliveries sent at 20 per second to a real
// SMTP server in this process arrives spread over about three seconds, never bunched — read from
// the times the server received each message, not from what the sender says it did.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchDeliveries } from '../src/modules/campaigns/index.ts';
import { insertContactRows, newContactRow } from '../src/modules/contacts/index.ts';
import { iso } from '../src/platform/clock.ts';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { type SmtpSink, startSmtpSink } from './helpers/smtp-sink.ts';

const RATE = 20;
const N = 60;

/** The most messages received within any window of `ms` (inclusive at both ends). */
function busiestWindow(times: number[], ms: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  let from = 0;
  for (let to = 0; to < sorted.length; to += 1) {
    while ((sorted[to] as number) - (sorted[from] as number) > ms) from += 1;
    most = Math.max(most, to - from + 1);
  }
  return most;
}

describe.each(dialects)('campaign send rate on %s', (dialect) => {
  let t: TestApp;
  let sink: SmtpSink;

  beforeAll(async () => {
    sink = await startSmtpSink();
    t = await buildTestApp(dialect, {
      env: {
        SMTP_URL: sink.url,
        MAIL_FROM: 'Shop <news@shop.example>',
        DELIVERY_RATE_PER_SECOND: String(RATE),
        PUBLIC_URL: 'https://consent.example',
      },
    });
  });
  afterAll(async () => {
    await t?.close();
    await sink?.close();
  });

  it(`sends a step of ${N} deliveries at no more than ${RATE} per second, evenly`, async () => {
    const now = iso(t.clock.now());
    const rows = Array.from({ length: N }, (_, i) =>
      newContactRow(t.ctx, t.ctx.newId(), { email: `rate-${i}@example.com`, locale: 'fr' }, { email: `rate-${i}@example.com` }, now),
    );
    await t.ctx.db.kysely.transaction().execute((trx) => insertContactRows(trx, rows));
    const segment = await t.call('POST', '/v1/segments', {
      body: { key: 'rate', name: 'Rate', filter: { consent: { purpose: 'commercial-email', channel: 'email', status: ['none'] } } },
    });
    expect(segment.statusCode, segment.body).toBe(201);
    const created = await t.call('POST', '/v1/campaigns', {
      body: {
        key: 'rate',
        name: 'Rate',
        segment: 'rate',
        purposes: ['commercial-email'],
        channel: 'email',
        startAt: now,
        deadline: iso(new Date(t.clock.now().getTime() + 30 * 86_400_000)),
      },
    });
    expect(created.statusCode, created.body).toBe(201);
    const launched = await t.call('POST', '/v1/campaigns/rate/launch');
    expect(launched.json().launchReport, launched.body).toMatchObject({ audience: N, excluded: 0 });

    const result = await dispatchDeliveries(t.ctx);
    expect(result).toMatchObject({ sent: N, failed: 0 });
    await sink.waitFor(N);
    expect(sink.messages).toHaveLength(N);

    const times = sink.messages.map((m) => m.receivedAt);
    const span = (Math.max(...times) - Math.min(...times)) / 1000;
    const busiest = busiestWindow(times, 1000);
    // Reported, so a failure shows how the messages were spread.
    const spread = times.map((x) => x - Math.min(...times)).sort((a, b) => a - b);
    expect(span, `receive times (ms): ${spread.join(', ')}`).toBeGreaterThanOrEqual(((N - 1) / RATE) * 0.9);
    expect(busiest, `receive times (ms): ${spread.join(', ')}`).toBeLessThanOrEqual(RATE * 1.5);
  }, 10_000);

  it('counts the busiest window as the check above needs', () => {
    expect(busiestWindow([0, 100, 999, 1000, 1001, 2500], 1000)).toBe(4);
    expect(
      busiestWindow(
        Array.from({ length: 30 }, () => 5),
        1000,
      ),
    ).toBe(30);
    expect(busiestWindow([], 1000)).toBe(0);
  });
});

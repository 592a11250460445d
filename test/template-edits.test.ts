// Editing a template a launched campaign sends (PUT /v1/templates/{key}): taking out the confirm
// link or the opt-out (unsubscribe link by email, STOP by SMS) is refused with
// campaign_templates_incomplete, naming the campaign and the missing field, and writes nothing —
// for a running campaign not started yet, a paused one, and a built-in template alike.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, frenchMobile } from './helpers/factories.ts';

const NOW = '2026-11-22T10:00:00.000Z';
const LATER = '2026-12-01T09:00:00.000Z';
const DEADLINE = '2027-01-15T09:00:00.000Z';

const letter = {
  subject: 'Toujours partant ?',
  html: '<p>Confirmez : <a href="{{ links.confirm }}">oui</a>. <a href="{{ links.unsubscribe }}">Se désinscrire</a></p>',
  text: 'Confirmez : {{ links.confirm }}\nSe désinscrire : {{ links.unsubscribe }}',
};
const sms = { body: 'On continue ? {{ links.confirm }} STOP au {{ sms.stopNumber }}' };

describe.each(dialects)('PUT /v1/templates/{key} on %s', (dialect) => {
  let t: TestApp;

  /** Every template row and every campaign row: what a refused edit must leave as it was. */
  const snapshot = async () => ({
    templates: await t.ctx.db.kysely.selectFrom('templates').selectAll().orderBy('key').execute(),
    campaigns: await t.ctx.db.kysely.selectFrom('campaigns').selectAll().orderBy('key').execute(),
  });
  const put = (key: string, body: unknown) => t.call('PUT', `/v1/templates/${key}`, { body });
  const problemOf = (res: Awaited<ReturnType<typeof put>>) => {
    expect(res.statusCode, res.body).toBe(422);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    const body = res.json() as { type: string; code: string; detail: string; errors: Array<{ path: string; message: string }> };
    expect(body.type).toBe('urn:assent:problem:campaign_templates_incomplete');
    return body;
  };

  beforeAll(async () => {
    t = await buildTestApp(dialect, { now: NOW, env: { PUBLIC_URL: 'https://consent.example', RATE_LIMIT_PER_MINUTE: '10000' } });
    for (const body of [
      { key: 'ask-letter', channel: 'email', category: 'marketing', variants: { fr: letter } },
      { key: 'ask-sms', channel: 'sms', category: 'marketing', variants: { fr: sms } },
      // A campaign may send a template filed as transactional: the opt-out rule at save time
      // (RULES 14) does not cover it, the campaign's does.
      { key: 'ask-plain', channel: 'email', category: 'transactional', variants: { fr: letter } },
    ]) {
      const res = await t.call('POST', '/v1/templates', { body });
      expect(res.statusCode, res.body).toBe(201);
    }
    for (const [key, purpose, channel] of [
      ['no-email', 'commercial-email', 'email'],
      ['no-sms', 'commercial-sms', 'sms'],
    ] as const) {
      const res = await t.call('POST', '/v1/segments', {
        body: { key, name: key, filter: { consent: { purpose, channel, status: ['none'] } } },
      });
      expect(res.statusCode, res.body).toBe(201);
    }
    for (let i = 0; i < 2; i++) await createContact(t, { phone: frenchMobile() });
    const campaigns = [
      // Launched with a start next week: running, nothing sent yet (scheduled).
      {
        key: 'winter',
        segment: 'no-email',
        purposes: ['commercial-email'],
        channel: 'email',
        templates: { first: 'ask-letter', reminder: 'repermission-reminder' },
      },
      {
        key: 'winter-plain',
        segment: 'no-email',
        purposes: ['commercial-email'],
        channel: 'email',
        templates: { first: 'ask-plain', reminder: 'ask-plain' },
      },
      {
        key: 'winter-sms',
        segment: 'no-sms',
        purposes: ['commercial-sms'],
        channel: 'sms',
        templates: { first: 'ask-sms', reminder: 'ask-sms' },
      },
      // A draft checks its templates when it launches: it holds nothing back.
      {
        key: 'spring-draft',
        segment: 'no-email',
        purposes: ['commercial-email'],
        channel: 'email',
        templates: { first: 'ask-letter', reminder: 'ask-letter' },
      },
    ];
    for (const c of campaigns) {
      const res = await t.call('POST', '/v1/campaigns', { body: { ...c, name: `Campaign ${c.key}`, startAt: LATER, deadline: DEADLINE } });
      expect(res.statusCode, res.body).toBe(201);
      if (c.key === 'spring-draft') continue;
      const launched = await t.call('POST', `/v1/campaigns/${c.key}/launch`);
      expect(launched.json().status, launched.body).toBe('running');
    }
    expect((await t.call('POST', '/v1/campaigns/winter-sms/pause')).json().status).toBe('paused');
    // Scheduled: launched, its first step not queued yet.
    expect(await t.ctx.db.kysely.selectFrom('deliveries').select('id').execute()).toEqual([]);
  });
  afterAll(async () => t?.close());

  it('refuses taking out the confirm link while a scheduled campaign sends the template, and writes nothing', async () => {
    const before = await snapshot();
    const html = letter.html.replace('{{ links.confirm }}', 'https://shop.example/');
    const problem = problemOf(await put('ask-letter', { channel: 'email', category: 'marketing', variants: { fr: { ...letter, html } } }));
    expect(problem.detail).toContain('"winter"');
    expect(problem.detail).not.toContain('spring-draft');
    expect(problem.errors).toEqual([
      { path: '/variants/fr/html', message: 'must contain {{ links.confirm }}: campaign "winter" (running) sends this template' },
    ]);
    expect(await snapshot()).toEqual(before);
    expect((await t.call('GET', '/v1/templates/ask-letter')).json().variants.fr.html).toBe(letter.html);
  });

  it('refuses taking out the unsubscribe link, naming the campaign, before the save-time opt-out rule', async () => {
    const before = await snapshot();
    const text = 'Confirmez : {{ links.confirm }}';
    const problem = problemOf(await put('ask-letter', { channel: 'email', category: 'marketing', variants: { fr: { ...letter, text } } }));
    expect(problem.errors).toEqual([
      { path: '/variants/fr/text', message: 'must contain {{ links.unsubscribe }}: campaign "winter" (running) sends this template' },
    ]);
    // A transactional template sent by a campaign is held to the same rule.
    const plain = problemOf(await put('ask-plain', { channel: 'email', category: 'transactional', variants: { fr: { ...letter, text } } }));
    expect(plain.detail).toContain('"winter-plain" (running, first and reminder message)');
    expect(plain.errors.map((e) => e.path)).toEqual(['/variants/fr/text']);
    expect(await snapshot()).toEqual(before);
  });

  it('refuses taking STOP out of an SMS template a paused campaign will send again on resume', async () => {
    const before = await snapshot();
    const problem = problemOf(
      await put('ask-sms', { channel: 'sms', category: 'marketing', variants: { fr: { body: 'On continue ? {{ links.confirm }}' } } }),
    );
    expect(problem.detail).toContain('"winter-sms" (paused');
    expect(problem.errors).toEqual([
      { path: '/variants/fr/body', message: 'must say how to stop ("STOP au …"): campaign "winter-sms" (paused) sends this template' },
    ]);
    expect(await snapshot()).toEqual(before);
  });

  it('guards a built-in template the same way, and names every field it would lose', async () => {
    const before = await snapshot();
    const current = (await t.call('GET', '/v1/templates/repermission-reminder')).json();
    const stripped = Object.fromEntries(
      Object.entries(current.variants as Record<string, typeof letter>).map(([lang, v]) => [
        lang,
        { ...v, html: v.html.replaceAll('{{ links.confirm }}', '#'), text: v.text.replaceAll('{{ links.confirm }}', '#') },
      ]),
    );
    const problem = problemOf(await put('repermission-reminder', { channel: 'email', category: 'marketing', variants: stripped }));
    expect(problem.detail).toContain('"winter" (running, reminder message)');
    expect(problem.errors.map((e) => e.path).sort()).toEqual([
      '/variants/en/html',
      '/variants/en/text',
      '/variants/fr/html',
      '/variants/fr/text',
    ]);
    expect(await snapshot()).toEqual(before);
  });

  it('accepts an edit that keeps both links, and any edit once no launched campaign sends the template', async () => {
    const reworded = { ...letter, subject: 'On reste en contact ?' };
    const ok = await put('ask-letter', { channel: 'email', category: 'marketing', variants: { fr: reworded } });
    expect(ok.statusCode, ok.body).toBe(200);
    expect((await t.call('GET', '/v1/templates/ask-letter')).json().variants.fr.subject).toBe('On reste en contact ?');

    expect((await t.call('POST', '/v1/campaigns/winter/cancel')).json().status).toBe('cancelled');
    // Only the draft uses it now: its launch will check it.
    const html = letter.html.replace('{{ links.confirm }}', 'https://shop.example/');
    const freed = await put('ask-letter', { channel: 'email', category: 'marketing', variants: { fr: { ...letter, html } } });
    expect(freed.statusCode, freed.body).toBe(200);
    expect((await t.call('GET', '/v1/templates/ask-letter')).json().variants.fr.html).toBe(html);
    const launch = await t.call('POST', '/v1/campaigns/spring-draft/launch');
    expect(launch.json().type).toBe('urn:assent:problem:campaign_templates_incomplete');
    // With no campaign sending it, a marketing template without an opt-out is still refused at save time (RULES 14).
    const noOptOut = await put('ask-letter', { channel: 'email', category: 'marketing', variants: { fr: { ...letter, text: 'Bonjour' } } });
    expect(noOptOut.statusCode).toBe(422);
    expect(noOptOut.json().type).toBe('urn:assent:problem:template_missing_opt_out');
  });
});

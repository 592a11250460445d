// Forms (issue 4, point 4): the API, the hosted and embedded page, submissions from the page and
// as JSON, and bad submissions that write nothing — on every store.
import { createHash } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dialect } from '../src/database.ts';
import { buildTestApp, type TestApp } from './helpers/build-app.ts';
import { dialects } from './helpers/dialects.ts';
import { createContact, frenchMobile, rowCounts } from './helpers/factories.ts';

const PUBLIC_URL = 'https://consent.example';
const SHOP = 'https://shop.example';

// --- helpers ---------------------------------------------------------------------------------

/** An app with a known public URL, three purposes and three forms; the rate limit out of the way. */
async function buildFormsApp(dialect: Dialect, env: Record<string, string> = {}): Promise<TestApp> {
  const t = await buildTestApp(dialect, { env: { PUBLIC_URL, RATE_LIMIT_PER_MINUTE: '100000', ...env } });
  const purposes = [
    {
      key: 'offers',
      title: { fr: 'Nos offres', en: 'Our offers' },
      description: { fr: 'Les promotions du mois.', en: 'This month’s deals.' },
      infoUrl: `${SHOP}/offers`,
      channels: ['email', 'sms'],
    },
    { key: 'partners', title: { fr: 'Offres de nos partenaires', en: 'Offers from our partners' }, channels: ['email'] },
    {
      key: 'newsletter',
      title: { fr: 'La lettre du jeudi', en: 'The Thursday letter' },
      description: { fr: 'Nos nouveautés, une fois par semaine.', en: 'Our news, once a week.' },
      channels: ['email'],
      doubleOptIn: true,
    },
  ];
  for (const body of purposes) {
    const res = await t.call('POST', '/v1/purposes', { body });
    if (res.statusCode !== 201) throw new Error(`purpose: ${res.statusCode} ${res.body}`);
  }
  const forms = [
    // Three boxes and a terms box.
    {
      key: 'signup',
      title: 'Inscription',
      locale: 'fr',
      fields: ['email', 'firstName', 'lastName', 'phone'],
      purposes: [
        { purpose: 'offers', channels: ['email', 'sms'] },
        { purpose: 'partners', channels: ['email'] },
      ],
      termsUrl: `${SHOP}/cgv`,
      allowedOrigins: [SHOP],
    },
    // Double opt-in; sends the person back to the shop.
    {
      key: 'letter',
      title: 'The Thursday letter',
      locale: 'en',
      fields: ['email'],
      purposes: [{ purpose: 'newsletter', channels: ['email'] }],
      redirectUrl: `${SHOP}/thanks`,
      allowedOrigins: [SHOP],
    },
    // No redirect, no terms: a thank-you page; the shop posts JSON to it.
    {
      key: 'plain',
      title: 'Stay in touch',
      locale: 'en',
      fields: ['email', 'firstName'],
      purposes: [
        { purpose: 'offers', channels: ['email'] },
        { purpose: 'newsletter', channels: ['email'] },
      ],
      allowedOrigins: [SHOP],
    },
  ];
  for (const body of forms) {
    const res = await t.call('POST', '/v1/forms', { body });
    if (res.statusCode !== 201) throw new Error(`form: ${res.statusCode} ${res.body}`);
  }
  return t;
}

const unescapeHtml = (s: string) =>
  s.replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');

interface OpenedForm {
  res: LightMyRequestResponse;
  html: string;
  csrf: string;
  htmlHash: string;
  pageUrl: string;
  /** The form's action (path and query), as a browser posts it. */
  action: string;
}

async function openForm(t: TestApp, key: string, query = '', headers: Record<string, string> = {}): Promise<OpenedForm> {
  const res = await t.app.inject({ method: 'GET', url: `/f/${key}${query}`, headers });
  if (res.statusCode !== 200) throw new Error(`GET /f/${key}: ${res.statusCode} ${res.body}`);
  const hidden = (name: string) => unescapeHtml(new RegExp(`name="${name}" value="([^"]*)"`).exec(res.body)?.[1] ?? '');
  return {
    res,
    html: res.body,
    csrf: hidden('csrf'),
    htmlHash: hidden('htmlHash'),
    pageUrl: hidden('pageUrl'),
    action: unescapeHtml(/<form id="assent-form" method="post" action="([^"]+)"/.exec(res.body)?.[1] ?? ''),
  };
}

type Hidden = 'csrf' | 'htmlHash' | 'pageUrl';

/** Posts the hosted form as a browser does: its hidden inputs plus the given fields, urlencoded. */
function postForm(
  t: TestApp,
  form: OpenedForm,
  fields: Array<[string, string]>,
  options: { hidden?: Partial<Record<Hidden, string | null>>; headers?: Record<string, string>; raw?: string } = {},
) {
  const body = new URLSearchParams(fields);
  for (const name of ['csrf', 'htmlHash', 'pageUrl'] as const) {
    const value = options.hidden && name in options.hidden ? options.hidden[name] : form[name];
    if (value !== null && value !== undefined) body.append(name, value);
  }
  return t.app.inject({
    method: 'POST',
    url: form.action,
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'FormsTest/1.0', ...options.headers },
    payload: options.raw ?? body.toString(),
  });
}

/** JSON post, without an API key (the endpoint is public). */
const postJson = (t: TestApp, key: string, body: unknown, headers: Record<string, string> = {}) =>
  t.call('POST', `/f/${key}`, { key: null, body, headers });

/** Every table a refused submission must leave alone: rowCounts, plus what forms and mail write. */
async function allCounts(t: TestApp): Promise<Record<string, number>> {
  const counts = await rowCounts(t);
  for (const table of ['forms', 'form_renders', 'messages', 'used_tokens'] as const) {
    const row = await t.ctx.db.kysely
      .selectFrom(table)
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    counts[table] = Number(row.n);
  }
  return counts;
}

interface HistoryEvent {
  id: string;
  purpose: string;
  purposeVersion: number;
  channel: string;
  action: string;
  status: string;
  source: { type: string; ref: string | null };
  evidence: Record<string, unknown>;
}

async function historyOf(t: TestApp, contactId: string): Promise<HistoryEvent[]> {
  const res = await t.call('GET', `/v1/contacts/${contactId}/consents/history`);
  if (res.statusCode !== 200) throw new Error(`history: ${res.statusCode} ${res.body}`);
  return res.json().items;
}

interface ContactOut {
  id: string;
  email: string | null;
  phone: string | null;
  firstName: string | null;
  lastName: string | null;
  locale: string | null;
  source: string | null;
  lastInteractionAt: string | null;
}

async function contactByEmail(t: TestApp, email: string): Promise<ContactOut | undefined> {
  const res = await t.call('GET', `/v1/contacts?email=${encodeURIComponent(email)}`);
  return res.json().items[0];
}

async function stateOf(t: TestApp, contactId: string, purpose: string, channel: string): Promise<string> {
  const res = await t.call('GET', `/v1/contacts/${contactId}/consents`);
  const items = res.json().items as Array<{ purpose: string; channel: string; status: string }>;
  return items.find((s) => s.purpose === purpose && s.channel === channel)?.status ?? 'none';
}

let emailCounter = 0;
const freshEmail = (tag: string) => `${tag}-${Date.now().toString(36)}-${emailCounter++}@example.com`;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

// --- tests -----------------------------------------------------------------------------------

describe.each(dialects)('forms on %s', (dialect) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await buildFormsApp(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  describe('POST /v1/forms, GET /v1/forms, GET|PUT /v1/forms/{key}', () => {
    const base = {
      title: 'Jeu concours',
      locale: 'fr',
      fields: ['email', 'firstName'],
      purposes: [{ purpose: 'offers', channels: ['email'] }],
    };

    it('creates a form at version 1 and lists it, with its hosted and script URLs', async () => {
      const res = await t.call('POST', '/v1/forms', { body: { key: 'contest', ...base, termsUrl: `${SHOP}/rules` } });
      expect(res.statusCode).toBe(201);
      expect(res.json()).toMatchObject({
        key: 'contest',
        version: 1,
        title: 'Jeu concours',
        locale: 'fr',
        fields: ['email', 'firstName'],
        purposes: [{ purpose: 'offers', channels: ['email'] }],
        termsUrl: `${SHOP}/rules`,
        redirectUrl: null,
        allowedOrigins: [],
        links: { hosted: `${PUBLIC_URL}/f/contest`, embedScript: `${PUBLIC_URL}/f/contest/embed.js` },
      });
      const list = await t.call('GET', '/v1/forms', { key: t.keys.read });
      expect(list.statusCode).toBe(200);
      expect(list.json().items.map((f: { key: string }) => f.key)).toEqual(
        expect.arrayContaining(['contest', 'signup', 'letter', 'plain']),
      );
      const one = await t.call('GET', '/v1/forms/contest', { key: t.keys.read });
      expect(one.json()).toMatchObject({ key: 'contest', version: 1 });
    });

    it('makes a new version on every PUT', async () => {
      await t.call('POST', '/v1/forms', { body: { key: 'versioned', ...base } });
      const second = await t.call('PUT', '/v1/forms/versioned', { body: { ...base, title: 'Jeu concours 2' } });
      expect(second.statusCode).toBe(200);
      expect(second.json()).toMatchObject({ version: 2, title: 'Jeu concours 2' });
      const third = await t.call('PUT', '/v1/forms/versioned', { body: { key: 'versioned', ...base, title: 'Jeu concours 2' } });
      expect(third.json().version).toBe(3);
      expect((await t.call('GET', '/v1/forms/versioned')).json()).toMatchObject({ version: 3, title: 'Jeu concours 2' });
    });

    it('needs an admin key to write and a read key to read', async () => {
      expect((await t.call('POST', '/v1/forms', { key: t.keys.write, body: { key: 'nope', ...base } })).statusCode).toBe(403);
      expect((await t.call('PUT', '/v1/forms/signup', { key: t.keys.read, body: base })).statusCode).toBe(403);
      expect((await t.call('GET', '/v1/forms', { key: null })).statusCode).toBe(401);
    });

    it('refuses a key taken, an unknown form and a body key that is not the path key', async () => {
      const taken = await t.call('POST', '/v1/forms', { body: { key: 'signup', ...base } });
      expect(taken.statusCode).toBe(409);
      expect(taken.json().code).toBe('key_exists');
      const missing = await t.call('PUT', '/v1/forms/nowhere', { body: base });
      expect(missing.statusCode).toBe(404);
      expect(missing.json().code).toBe('form_not_found');
      expect((await t.call('GET', '/v1/forms/nowhere')).json().code).toBe('form_not_found');
      const other = await t.call('PUT', '/v1/forms/signup', { body: { key: 'other', ...base } });
      expect(other.statusCode).toBe(400);
      expect(other.json().errors).toContainEqual(expect.objectContaining({ path: '/body/key' }));
    });

    const invalid: Array<{ name: string; body: Record<string, unknown>; status: number; code: string; path: string }> = [
      { name: 'no title', body: { ...base, title: undefined }, status: 400, code: 'validation_failed', path: '/body/title' },
      { name: 'an unknown locale', body: { ...base, locale: 'de' }, status: 400, code: 'validation_failed', path: '/body/locale' },
      {
        name: 'an unknown field',
        body: { ...base, fields: ['email', 'birthday'] },
        status: 400,
        code: 'validation_failed',
        path: '/body/fields/1',
      },
      { name: 'an unknown property', body: { ...base, colour: 'red' }, status: 400, code: 'validation_failed', path: '/body/colour' },
      {
        name: 'neither email nor phone',
        body: { ...base, fields: ['firstName'] },
        status: 422,
        code: 'address_field_required',
        path: '/fields',
      },
      {
        name: 'an unknown purpose',
        body: { ...base, purposes: [{ purpose: 'ghost', channels: ['email'] }] },
        status: 422,
        code: 'unknown_purpose',
        path: '/purposes/0/purpose',
      },
      {
        name: 'an unknown channel',
        body: { ...base, purposes: [{ purpose: 'offers', channels: ['pigeon'] }] },
        status: 422,
        code: 'unknown_channel',
        path: '/purposes/0/channels/0',
      },
      {
        name: 'a channel the purpose does not use',
        body: { ...base, purposes: [{ purpose: 'partners', channels: ['sms'] }] },
        status: 422,
        code: 'channel_not_in_purpose',
        path: '/purposes/0/channels/0',
      },
      {
        name: 'an SMS box without a phone field',
        body: { ...base, purposes: [{ purpose: 'offers', channels: ['email', 'sms'] }] },
        status: 422,
        code: 'field_required_for_channel',
        path: '/purposes/0/channels/1',
      },
      {
        name: 'a purpose listed twice',
        body: {
          ...base,
          purposes: [
            { purpose: 'offers', channels: ['email'] },
            { purpose: 'offers', channels: ['email'] },
          ],
        },
        status: 400,
        code: 'validation_failed',
        path: '/purposes/1/purpose',
      },
      {
        name: 'a redirect to a foreign origin',
        body: { ...base, redirectUrl: 'https://evil.example/phish' },
        status: 422,
        code: 'redirect_not_allowed',
        path: '/redirectUrl',
      },
      {
        name: 'a redirect that is not http(s)',
        body: { ...base, redirectUrl: 'javascript:alert(1)' },
        status: 400,
        code: 'validation_failed',
        path: '/body/redirectUrl',
      },
      {
        name: 'an allowed origin with a path',
        body: { ...base, allowedOrigins: ['https://shop.example/'] },
        status: 400,
        code: 'validation_failed',
        path: '/body/allowedOrigins/0',
      },
      {
        name: 'an allowed origin in capitals',
        body: { ...base, allowedOrigins: ['https://Shop.example'] },
        status: 400,
        code: 'validation_failed',
        path: '/allowedOrigins/0',
      },
    ];
    for (const c of invalid) {
      it(`refuses a form with ${c.name} (${c.code}, ${c.path})`, async () => {
        const before = await allCounts(t);
        const res = await t.call('POST', '/v1/forms', { body: { key: 'bad-form', ...c.body } });
        expect(res.statusCode, res.body).toBe(c.status);
        expect(res.headers['content-type']).toContain('application/problem+json');
        expect(res.json().code).toBe(c.code);
        expect(res.json().errors).toContainEqual(expect.objectContaining({ path: c.path }));
        expect(await allCounts(t)).toEqual(before);
      });
    }

    it('accepts a redirect to our own origin or an allowed one, and refuses a foreign one on PUT too', async () => {
      const own = await t.call('POST', '/v1/forms', { body: { key: 'own-redirect', ...base, redirectUrl: `${PUBLIC_URL}/merci` } });
      expect(own.statusCode).toBe(201);
      const allowed = await t.call('PUT', '/v1/forms/own-redirect', {
        body: { ...base, redirectUrl: `${SHOP}/merci`, allowedOrigins: [SHOP] },
      });
      expect(allowed.statusCode).toBe(200);
      const foreign = await t.call('PUT', '/v1/forms/own-redirect', { body: { ...base, redirectUrl: `${SHOP}/merci` } });
      expect(foreign.statusCode).toBe(422);
      expect(foreign.json().code).toBe('redirect_not_allowed');
      expect((await t.call('GET', '/v1/forms/own-redirect')).json().version).toBe(2);
    });
  });

  describe('GET /f/{key}', () => {
    it('renders every purpose box unticked, each with its wording and info link, and the terms box apart', async () => {
      const form = await openForm(t, 'signup', '?lang=en');
      expect(form.res.headers['content-type']).toContain('text/html');
      const boxes = [...form.html.matchAll(/<input type="checkbox"[^>]*name="consent"[^>]*>/g)].map((m) => m[0]);
      expect(boxes).toHaveLength(3);
      for (const box of boxes) expect(box).not.toMatch(/\bchecked\b/);
      for (const value of ['offers:email', 'offers:sms', 'partners:email']) {
        expect(form.html).toContain(`value="${value}"`);
        expect(form.html).toContain(`data-testid="consent-${value.replace(':', '-')}"`);
      }
      expect(form.html).toContain('Our offers');
      expect(form.html).toContain('This month’s deals.');
      expect(form.html).toContain(`href="${SHOP}/offers"`);
      expect(form.html).toContain('Offers from our partners');
      // The terms box is outside the fieldset of consent boxes, unticked, and required.
      const fieldset = /<fieldset data-testid="consents">[\s\S]*?<\/fieldset>/.exec(form.html)?.[0] ?? '';
      expect(fieldset).toContain('name="consent"');
      expect(fieldset).not.toContain('name="terms"');
      const terms = /<input type="checkbox"[^>]*name="terms"[^>]*>/.exec(form.html)?.[0] ?? '';
      expect(terms).toContain('required');
      expect(terms).not.toMatch(/\bchecked\b/);
      expect(form.html).toContain(`href="${SHOP}/cgv"`);
      for (const name of ['email', 'phone', 'firstName', 'lastName']) {
        expect(form.html).toMatch(new RegExp(`<label for="f-${name}">`));
        expect(form.html).toContain(`name="${name}"`);
      }
      for (const id of ['form', 'submit', 'terms']) expect(form.html).toContain(`data-testid="${id}"`);
      expect(form.csrf).toMatch(/^\d+\.\d+\.[A-Za-z0-9_-]{43}$/);
      expect(form.html).not.toMatch(/<script/i);
    });

    it('speaks French and English: the form’s language by default, ?lang= to switch', async () => {
      const fr = await openForm(t, 'signup');
      expect(fr.html).toContain('<html lang="fr">');
      expect(fr.html).toContain('Nos offres');
      expect(fr.html).toContain('Les promotions du mois.');
      expect(fr.html).toContain('J’accepte les conditions générales');
      const en = await openForm(t, 'signup', '?lang=en');
      expect(en.html).toContain('<html lang="en">');
      expect(en.html).toContain('I accept the terms and conditions');
      expect(en.htmlHash).not.toBe(fr.htmlHash);
      // The browser's language decides when the form has none to impose… but the form has one.
      const browser = await openForm(t, 'plain', '', { 'accept-language': 'fr-FR,fr;q=0.9' });
      expect(browser.html).toContain('<html lang="en">');
    });

    it('stores the exact markup shown once, under the hash the page carries', async () => {
      const first = await openForm(t, 'plain');
      const second = await openForm(t, 'plain');
      expect(second.htmlHash).toBe(first.htmlHash);
      expect(second.csrf).toBeTruthy();
      const rows = await t.ctx.db.kysely.selectFrom('form_renders').selectAll().where('hash', '=', first.htmlHash).execute();
      expect(rows).toHaveLength(1);
      const row = rows[0] as { html: string; form_key: string; form_version: number };
      expect(row).toMatchObject({ form_key: 'plain', form_version: 1 });
      expect(sha256(row.html)).toBe(first.htmlHash);
      expect(first.html).toContain(row.html);
      expect(row.html).toContain('name="consent"');
      // The per-request token is not part of what is hashed.
      expect(row.html).not.toContain(first.csrf);
    });

    it('answers with strict headers: no script, not framable, form posts to itself (and the redirect origin)', async () => {
      const hosted = await openForm(t, 'signup');
      const csp = hosted.res.headers['content-security-policy'] as string;
      expect(csp).toContain("default-src 'none'");
      expect(csp).not.toContain('script-src');
      expect(csp).toContain("frame-ancestors 'none'");
      expect(hosted.res.headers['x-frame-options']).toBe('DENY');
      const letter = await openForm(t, 'letter');
      expect(letter.res.headers['content-security-policy']).toContain(`form-action 'self' ${SHOP}`);
    });

    it('renders a bare embed that only the allowed origins may frame', async () => {
      const page = `${SHOP}/newsletter?utm=1`;
      const embed = await openForm(t, 'signup', `?embed=1&lang=en&page=${encodeURIComponent(page)}`);
      expect(embed.html).toContain('<body class="embed">');
      expect(embed.html).not.toContain('<header>');
      expect(embed.res.headers['content-security-policy']).toContain(`frame-ancestors ${SHOP}`);
      expect(embed.res.headers['x-frame-options']).toBeUndefined();
      expect(embed.action).toBe('/f/signup?lang=en&embed=1');
      expect(embed.pageUrl).toBe(page);
      // A page on another origin is not taken as the page the person is on.
      const foreign = await openForm(t, 'signup', `?embed=1&page=${encodeURIComponent('https://evil.example/x')}`);
      expect(foreign.pageUrl.startsWith(`${PUBLIC_URL}/f/signup`)).toBe(true);
      // A form without allowed origins cannot be framed at all.
      await t.call('POST', '/v1/forms', { body: { key: 'unframed', title: 'x', locale: 'en', fields: ['email'], purposes: [] } });
      const unframed = await openForm(t, 'unframed', '?embed=1');
      expect(unframed.res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    });

    it('answers a friendly 404 page for an unknown form', async () => {
      const res = await t.app.inject({ method: 'GET', url: '/f/nowhere?lang=en' });
      expect(res.statusCode).toBe(404);
      expect(res.headers['content-type']).toContain('text/html');
      expect(res.body).toContain('Form not found');
    });
  });

  describe('GET /f/{key}/embed.js', () => {
    it('serves a static script that inserts the iframe after its own tag', async () => {
      const res = await t.app.inject({ method: 'GET', url: '/f/signup/embed.js' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toContain('application/javascript');
      expect(res.body).toContain('document.currentScript');
      expect(res.body).toContain("createElement('iframe')");
      expect(res.body).toContain(`"${PUBLIC_URL}/f/signup?embed=1"`);
      expect(res.body).toContain('frame.title = "Inscription"');
      expect(res.body).toContain('insertBefore(frame, script.nextSibling)');
      expect((await t.app.inject({ method: 'GET', url: '/f/nowhere/embed.js' })).statusCode).toBe(404);
    });
  });

  describe('POST /f/{key} from the hosted page', () => {
    it('records exactly one event for one box ticked out of three, with the form version and the HTML hash', async () => {
      const form = await openForm(t, 'signup');
      const email = freshEmail('one-box');
      const res = await postForm(t, form, [
        ['email', `  ${email.toUpperCase()} `],
        ['firstName', 'Camille'],
        ['lastName', 'Martin'],
        ['phone', ''],
        ['consent', 'partners:email'],
        ['terms', 'accepted'],
      ]);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.body).toContain('Merci !');
      const contact = await contactByEmail(t, email);
      expect(contact).toMatchObject({ email, firstName: 'Camille', lastName: 'Martin', phone: null, locale: 'fr', source: 'form:signup' });
      expect(contact?.lastInteractionAt).toBe(t.clock.now().toISOString());
      const events = await historyOf(t, contact?.id as string);
      expect(events).toHaveLength(1);
      const [event] = events;
      expect(event).toMatchObject({
        purpose: 'partners',
        channel: 'email',
        action: 'granted',
        status: 'granted',
        source: { type: 'form', ref: 'signup@1' },
      });
      expect(event?.evidence).toMatchObject({
        htmlHash: form.htmlHash,
        method: 'hosted form',
        url: `${PUBLIC_URL}/f/signup`,
        ip: '127.0.0.1',
        userAgent: 'FormsTest/1.0',
        locale: 'fr',
      });
      const render = await t.ctx.db.kysely
        .selectFrom('form_renders')
        .selectAll()
        .where('hash', '=', event?.evidence.htmlHash as string)
        .executeTakeFirst();
      expect(render).toMatchObject({ form_key: 'signup', form_version: 1 });
      expect(sha256(render?.html as string)).toBe(form.htmlHash);
      expect(render?.html).toContain('value="partners:email"');
    });

    it('succeeds with no box ticked: the contact is created, no consent is recorded (RULES 3)', async () => {
      const form = await openForm(t, 'signup', '?lang=en');
      const email = freshEmail('no-box');
      const res = await postForm(t, form, [
        ['email', email],
        ['terms', 'accepted'],
      ]);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.body).toContain('Thank you!');
      expect(res.body).not.toContain('confirmation email');
      const contact = await contactByEmail(t, email);
      expect(contact).toMatchObject({ email, locale: 'en' });
      expect(contact?.lastInteractionAt).toBe(t.clock.now().toISOString());
      expect(await historyOf(t, contact?.id as string)).toEqual([]);
    });

    it('updates only the empty fields of a known contact, found by email, and records an SMS box with the phone given', async () => {
      const known = await createContact(t, { email: freshEmail('known'), firstName: null, lastName: 'Durand', locale: 'fr' });
      const phone = frenchMobile();
      const form = await openForm(t, 'signup');
      const res = await postForm(t, form, [
        ['email', known.email as string],
        ['firstName', 'Alex'],
        ['lastName', 'Autre'],
        ['phone', phone],
        ['consent', 'offers:sms'],
        ['terms', 'accepted'],
      ]);
      expect(res.statusCode, res.body).toBe(200);
      const after = (await t.call('GET', `/v1/contacts/${known.id}`)).json() as ContactOut;
      expect(after).toMatchObject({ firstName: 'Alex', lastName: 'Durand', phone });
      expect(after.lastInteractionAt).toBe(t.clock.now().toISOString());
      const events = await historyOf(t, known.id);
      expect(events.map((e) => `${e.purpose}:${e.channel}`)).toEqual(['offers:sms']);
    });

    it('finds a known contact by phone when no contact has the email', async () => {
      const phone = frenchMobile();
      const known = await createContact(t, { email: null, phone, firstName: 'Sam' });
      const email = freshEmail('by-phone');
      const form = await openForm(t, 'signup');
      const res = await postForm(t, form, [
        ['email', email],
        ['phone', phone.replace('+33', '0')],
        ['terms', 'accepted'],
      ]);
      expect(res.statusCode, res.body).toBe(200);
      const after = (await t.call('GET', `/v1/contacts/${known.id}`)).json() as ContactOut;
      expect(after).toMatchObject({ email, phone, firstName: 'Sam' });
    });

    it('leaves a double opt-in purpose pending, queues the confirmation mail and redirects to the allowed origin', async () => {
      const form = await openForm(t, 'letter');
      const email = freshEmail('doi');
      const res = await postForm(t, form, [
        ['email', email],
        ['consent', 'newsletter:email'],
      ]);
      expect(res.statusCode, res.body).toBe(303);
      expect(res.headers.location).toBe(`${SHOP}/thanks`);
      const contact = (await contactByEmail(t, email)) as ContactOut;
      expect(await stateOf(t, contact.id, 'newsletter', 'email')).toBe('pending');
      const outbox = (await t.call('GET', `/v1/outbox?contactId=${contact.id}`)).json().items as Array<{
        kind: string;
        to: string;
        locale: string;
      }>;
      expect(outbox).toEqual([expect.objectContaining({ kind: 'double_opt_in', to: email, locale: 'en' })]);
    });

    it('says a confirmation mail is on its way when something is pending (thank-you page)', async () => {
      const form = await openForm(t, 'plain', '?lang=fr');
      const email = freshEmail('doi-thanks');
      const res = await postForm(t, form, [
        ['email', email],
        ['firstName', 'Lou'],
        ['consent', 'newsletter:email'],
        ['consent', 'offers:email'],
      ]);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.body).toContain('Un email de confirmation vient de vous être envoyé');
      const contact = (await contactByEmail(t, email)) as ContactOut;
      const events = await historyOf(t, contact.id);
      expect(events.map((e) => `${e.purpose}:${e.status}`).sort()).toEqual(['newsletter:pending', 'offers:granted']);
      // The mail is in the page's language and greets the person by the name just given.
      const outbox = (await t.call('GET', `/v1/outbox?contactId=${contact.id}`)).json().items as Array<{
        id: string;
        kind: string;
        locale: string;
      }>;
      expect(outbox).toEqual([expect.objectContaining({ kind: 'double_opt_in', locale: 'fr' })]);
    });

    it('does not redirect to an origin that is no longer allowed', async () => {
      await t.call('POST', '/v1/forms', {
        body: {
          key: 'moving',
          title: 'x',
          locale: 'en',
          fields: ['email'],
          purposes: [],
          redirectUrl: `${SHOP}/thanks`,
          allowedOrigins: [SHOP],
        },
      });
      const before = await openForm(t, 'moving');
      expect((await postForm(t, before, [['email', freshEmail('moving')]])).statusCode).toBe(303);
      // An admin drops the shop from the allowed origins and the redirect with it.
      await t.call('PUT', '/v1/forms/moving', { body: { title: 'x', locale: 'en', fields: ['email'], purposes: [] } });
      const after = await openForm(t, 'moving');
      const res = await postForm(t, after, [['email', freshEmail('moving')]]);
      expect(res.statusCode).toBe(200);
      expect(res.headers.location).toBeUndefined();
    });

    it('thanks inside the frame for an embedded form, and records the host page and "embedded form"', async () => {
      const page = `${SHOP}/blog/post-1`;
      const form = await openForm(t, 'letter', `?embed=1&page=${encodeURIComponent(page)}`);
      const email = freshEmail('embed');
      const res = await postForm(t, form, [
        ['email', email],
        ['consent', 'newsletter:email'],
      ]);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.body).toContain('<body class="embed">');
      expect(res.headers['content-security-policy']).toContain(`frame-ancestors ${SHOP}`);
      const contact = (await contactByEmail(t, email)) as ContactOut;
      const [event] = await historyOf(t, contact.id);
      expect(event?.evidence).toMatchObject({ method: 'embedded form', url: page, htmlHash: form.htmlHash });
    });

    it('refuses a post for a form that changed since it was shown, and writes nothing', async () => {
      await t.call('POST', '/v1/forms', {
        body: { key: 'changing', title: 'v1', locale: 'en', fields: ['email'], purposes: [{ purpose: 'offers', channels: ['email'] }] },
      });
      const shown = await openForm(t, 'changing');
      await t.call('PUT', '/v1/forms/changing', {
        body: { title: 'v2', locale: 'en', fields: ['email'], purposes: [{ purpose: 'partners', channels: ['email'] }] },
      });
      const before = await allCounts(t);
      const res = await postForm(t, shown, [
        ['email', freshEmail('changed')],
        ['consent', 'offers:email'],
      ]);
      expect(res.statusCode).toBe(409);
      expect(res.body).toContain('This form has changed');
      expect(await allCounts(t)).toEqual(before);
      // The current page works, and cites version 2.
      const current = await openForm(t, 'changing');
      const email = freshEmail('changed');
      expect(
        (
          await postForm(t, current, [
            ['email', email],
            ['consent', 'partners:email'],
          ])
        ).statusCode,
      ).toBe(200);
      const [event] = await historyOf(t, ((await contactByEmail(t, email)) as ContactOut).id);
      expect(event?.source.ref).toBe('changing@2');
    });
  });

  describe('POST /f/{key} as JSON', () => {
    it('records the ticked consents and answers 201 with the contact, events and pending pairs', async () => {
      const email = freshEmail('json');
      const res = await postJson(t, 'plain', { email, firstName: 'Noa', consents: ['offers:email'] });
      expect(res.statusCode, res.body).toBe(201);
      const body = res.json();
      expect(body).toEqual({ contactId: expect.any(String), events: [expect.any(String)], pending: [] });
      const events = await historyOf(t, body.contactId);
      expect(events.map((e) => e.id)).toEqual(body.events);
      expect(events[0]).toMatchObject({ purpose: 'offers', channel: 'email', source: { type: 'form', ref: 'plain@1' } });
      expect(events[0]?.evidence).toMatchObject({ method: 'api form', url: `${PUBLIC_URL}/f/plain` });
      expect(await contactByEmail(t, email)).toMatchObject({ firstName: 'Noa', locale: 'en' });
    });

    it('takes a post from an allowed origin (with CORS headers) and from our own origin', async () => {
      const shop = await postJson(t, 'plain', { email: freshEmail('cors'), consents: [], pageUrl: `${SHOP}/contact` }, { origin: SHOP });
      expect(shop.statusCode, shop.body).toBe(201);
      expect(shop.headers['access-control-allow-origin']).toBe(SHOP);
      const [noEvent] = [shop.json().events];
      expect(noEvent).toEqual([]);
      const own = await postJson(t, 'plain', { email: freshEmail('own') }, { origin: PUBLIC_URL });
      expect(own.statusCode, own.body).toBe(201);
    });

    it('answers a CORS preflight for the allowed origins only', async () => {
      const ok = await t.app.inject({
        method: 'OPTIONS',
        url: '/f/plain',
        headers: { origin: SHOP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
      expect(ok.statusCode).toBe(204);
      expect(ok.headers['access-control-allow-origin']).toBe(SHOP);
      expect(String(ok.headers['access-control-allow-headers'])).toContain('content-type');
      const foreign = await t.app.inject({
        method: 'OPTIONS',
        url: '/f/plain',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
      });
      expect(foreign.headers['access-control-allow-origin']).toBeUndefined();
      expect(foreign.statusCode).toBe(404);
      // No CORS anywhere else.
      const api = await t.app.inject({ method: 'GET', url: '/healthz', headers: { origin: SHOP } });
      expect(api.headers['access-control-allow-origin']).toBeUndefined();
    });

    it('leaves a double opt-in purpose pending and queues the confirmation mail', async () => {
      const email = freshEmail('json-doi');
      const res = await postJson(t, 'letter', { email, consents: ['newsletter:email'] }, { origin: SHOP });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json().pending).toEqual(['newsletter:email']);
      const outbox = (await t.call('GET', `/v1/outbox?contactId=${res.json().contactId}`)).json().items as Array<{ kind: string }>;
      expect(outbox.map((m) => m.kind)).toEqual(['double_opt_in']);
    });

    it('requires the terms when the form has them', async () => {
      const ok = await postJson(t, 'signup', { email: freshEmail('terms'), consents: ['offers:email'], terms: true });
      expect(ok.statusCode, ok.body).toBe(201);
    });
  });

  describe('malformed submissions', () => {
    type Post = () => Promise<LightMyRequestResponse>;
    type Case = {
      name: string;
      status: number;
      /** problem+json code, for JSON posts. */
      code?: string;
      path?: string;
      /** Text the error page shows, for page posts. */
      says?: string;
      /** Gets ready (opening the form stores its markup) and returns the post itself. */
      prepare: () => Promise<Post>;
    };
    const hosted =
      (key: string, fields: Array<[string, string]>, options: Parameters<typeof postForm>[3] = {}, query = '?lang=en') =>
      async (): Promise<Post> => {
        const form = await openForm(t, key, query);
        return () => postForm(t, form, fields, options);
      };
    const direct = (send: Post) => async (): Promise<Post> => send;
    const good = (): Array<[string, string]> => [
      ['email', freshEmail('bad')],
      ['terms', 'accepted'],
    ];

    const cases: Case[] = [
      // The hosted page (urlencoded): an error page, never a stack trace.
      {
        name: 'page: missing email',
        status: 400,
        says: 'The email address is required.',
        prepare: hosted('signup', [
          ['firstName', 'A'],
          ['consent', 'offers:email'],
          ['terms', 'accepted'],
        ]),
      },
      {
        name: 'page: blank email',
        status: 400,
        says: 'The email address is required.',
        prepare: hosted('signup', [
          ['email', '   '],
          ['terms', 'accepted'],
        ]),
      },
      {
        name: 'page: invalid email',
        status: 400,
        says: 'The email address does not look valid.',
        prepare: hosted('signup', [
          ['email', 'not-an-email@'],
          ['consent', 'offers:email'],
          ['terms', 'accepted'],
        ]),
      },
      {
        name: 'page: invalid phone',
        status: 400,
        says: 'The phone number does not look valid.',
        prepare: hosted('signup', [...good(), ['phone', '12'], ['consent', 'offers:email']]),
      },
      {
        name: 'page: SMS box without a phone',
        status: 400,
        says: 'A phone number is needed',
        prepare: hosted('signup', [...good(), ['consent', 'offers:sms']]),
      },
      {
        name: 'page: unknown field',
        status: 400,
        says: 'The form holds an unexpected field.',
        prepare: hosted('signup', [...good(), ['nickname', 'Cam'], ['consent', 'offers:email']]),
      },
      {
        name: 'page: a field given twice',
        status: 400,
        says: 'A field of the form is not valid.',
        prepare: hosted('signup', [...good(), ['firstName', 'A'], ['firstName', 'B']]),
      },
      {
        name: 'page: a name too long',
        status: 400,
        says: 'A name is longer than 100 characters.',
        prepare: hosted('signup', [...good(), ['lastName', 'x'.repeat(101)]]),
      },
      {
        name: 'page: unknown consent value',
        status: 400,
        says: 'not part of this form',
        prepare: hosted('signup', [...good(), ['consent', 'newsletter:email']]),
      },
      {
        name: 'page: consent value of another shape',
        status: 400,
        says: 'not part of this form',
        prepare: hosted('signup', [...good(), ['consent', 'offers']]),
      },
      {
        name: 'page: terms unticked',
        status: 400,
        says: 'The terms and conditions must be accepted',
        prepare: hosted('signup', [
          ['email', freshEmail('bad')],
          ['consent', 'offers:email'],
        ]),
      },
      {
        name: 'page: terms on a form without terms',
        status: 400,
        says: 'unexpected field',
        prepare: hosted('plain', [
          ['email', freshEmail('bad')],
          ['terms', 'accepted'],
        ]),
      },
      {
        name: 'page: wrong CSRF token',
        status: 403,
        says: 'This form has expired',
        prepare: hosted('signup', [...good(), ['consent', 'offers:email']], {
          hidden: { csrf: `1.${Math.floor(Date.now() / 1000)}.${'A'.repeat(43)}` },
        }),
      },
      {
        name: 'page: CSRF token of another form',
        status: 403,
        says: 'This form has expired',
        prepare: async () => {
          const other = await openForm(t, 'plain', '?lang=en');
          const form = await openForm(t, 'signup', '?lang=en');
          return () => postForm(t, form, [...good(), ['consent', 'offers:email']], { hidden: { csrf: other.csrf } });
        },
      },
      {
        name: 'page: missing CSRF token',
        status: 403,
        says: 'This form has expired',
        prepare: hosted('signup', [...good(), ['consent', 'offers:email']], { hidden: { csrf: null } }),
      },
      {
        name: 'page: tampered HTML hash',
        status: 403,
        says: 'This form has expired',
        prepare: hosted('signup', [...good(), ['consent', 'offers:email']], { hidden: { htmlHash: '0'.repeat(64) } }),
      },
      {
        name: 'page: tampered page URL',
        status: 403,
        says: 'This form has expired',
        prepare: hosted('signup', [...good(), ['consent', 'offers:email']], { hidden: { pageUrl: 'https://evil.example/' } }),
      },
      {
        name: 'page: another language than shown',
        status: 409,
        says: 'Ce formulaire a changé',
        prepare: async () => {
          const shown = await openForm(t, 'signup', '?lang=en');
          return () => postForm(t, { ...shown, action: '/f/signup?lang=fr' }, [...good(), ['consent', 'offers:email']]);
        },
      },
      {
        name: 'page: oversized body',
        status: 413,
        says: 'The form sent is too large.',
        prepare: hosted('signup', [...good(), ['lastName', 'x'.repeat(20_000)]]),
      },
      {
        name: 'page: multipart body',
        status: 415,
        prepare: hosted('signup', [], {
          raw: '--x\r\nContent-Disposition: form-data; name="email"\r\n\r\na@example.com\r\n--x--',
          headers: { 'content-type': 'multipart/form-data; boundary=x' },
        }),
      },
      {
        name: 'page: unknown form',
        status: 404,
        says: 'Form not found',
        prepare: direct(() =>
          t.app.inject({
            method: 'POST',
            url: '/f/nowhere?lang=en',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            payload: 'email=a%40example.com',
          }),
        ),
      },
      // JSON: problem+json.
      {
        name: 'JSON: missing email',
        status: 400,
        code: 'validation_failed',
        path: '/email',
        prepare: direct(() => postJson(t, 'plain', { firstName: 'A', consents: ['offers:email'] })),
      },
      {
        name: 'JSON: invalid email',
        status: 422,
        code: 'invalid_email',
        path: '/email',
        prepare: direct(() => postJson(t, 'plain', { email: 'nope', consents: ['offers:email'] })),
      },
      {
        name: 'JSON: unknown field',
        status: 400,
        code: 'validation_failed',
        path: '/nickname',
        prepare: direct(() => postJson(t, 'plain', { email: freshEmail('bad'), nickname: 'Cam' })),
      },
      {
        name: 'JSON: a field the form does not ask',
        status: 400,
        code: 'validation_failed',
        path: '/phone',
        prepare: direct(() => postJson(t, 'plain', { email: freshEmail('bad'), phone: '+33612345678' })),
      },
      {
        name: 'JSON: email of the wrong type',
        status: 400,
        code: 'validation_failed',
        path: '/email',
        prepare: direct(() => postJson(t, 'plain', { email: 42 })),
      },
      {
        name: 'JSON: unknown consent value',
        status: 422,
        code: 'consent_not_offered',
        path: '/consents/1',
        prepare: direct(() => postJson(t, 'plain', { email: freshEmail('bad'), consents: ['offers:email', 'partners:email'] })),
      },
      {
        name: 'JSON: consents not an array',
        status: 400,
        code: 'validation_failed',
        path: '/consents',
        prepare: direct(() => postJson(t, 'plain', { email: freshEmail('bad'), consents: 'offers:email' })),
      },
      {
        name: 'JSON: terms not accepted',
        status: 422,
        code: 'terms_not_accepted',
        path: '/terms',
        prepare: direct(() => postJson(t, 'signup', { email: freshEmail('bad'), consents: ['offers:email'] })),
      },
      {
        name: 'JSON: terms false',
        status: 422,
        code: 'terms_not_accepted',
        path: '/terms',
        prepare: direct(() => postJson(t, 'signup', { email: freshEmail('bad'), terms: false })),
      },
      {
        name: 'JSON: foreign origin',
        status: 403,
        code: 'origin_not_allowed',
        prepare: direct(() =>
          postJson(t, 'plain', { email: freshEmail('bad'), consents: ['offers:email'] }, { origin: 'https://evil.example' }),
        ),
      },
      {
        name: 'JSON: origin "null"',
        status: 403,
        code: 'origin_not_allowed',
        prepare: direct(() => postJson(t, 'plain', { email: freshEmail('bad') }, { origin: 'null' })),
      },
      {
        name: 'JSON: bad JSON',
        status: 400,
        code: 'bad_json',
        prepare: direct(() => postJson(t, 'plain', '{"email": "a@example.com",', { 'content-type': 'application/json' })),
      },
      {
        name: 'JSON: a JSON array',
        status: 400,
        code: 'validation_failed',
        path: '/',
        prepare: direct(() => postJson(t, 'plain', [{ email: freshEmail('bad') }])),
      },
      {
        name: 'JSON: oversized body',
        status: 413,
        code: 'payload_too_large',
        prepare: direct(() => postJson(t, 'plain', { email: freshEmail('bad'), firstName: 'x'.repeat(20_000) })),
      },
      {
        name: 'JSON: a page URL that is not http(s)',
        status: 400,
        code: 'validation_failed',
        path: '/pageUrl',
        prepare: direct(() => postJson(t, 'plain', { email: freshEmail('bad'), pageUrl: 'javascript:alert(1)' })),
      },
      {
        name: 'JSON: NUL character',
        status: 400,
        code: 'validation_failed',
        prepare: direct(() => postJson(t, 'plain', { email: freshEmail('bad'), firstName: 'A\u0000B' })),
      },
      {
        name: 'JSON: unknown form',
        status: 404,
        code: 'form_not_found',
        prepare: direct(() => postJson(t, 'nowhere', { email: freshEmail('bad') })),
      },
    ];

    for (const c of cases) {
      it(`refuses ${c.name} (${c.status}) and writes nothing`, async () => {
        const post = await c.prepare();
        const before = await allCounts(t);
        const res = await post();
        expect(res.statusCode, res.body).toBe(c.status);
        if (c.code) {
          expect(res.headers['content-type']).toContain('application/problem+json');
          expect(res.json().code).toBe(c.code);
          if (c.path) expect(res.json().errors).toContainEqual(expect.objectContaining({ path: c.path }));
        } else {
          expect(res.headers['content-type']).toContain('text/html');
          if (c.says) expect(res.body).toContain(c.says);
        }
        expect(await allCounts(t)).toEqual(before);
      });
    }

    it('refuses an expired CSRF token (more than two hours) and writes nothing', async () => {
      const form = await openForm(t, 'signup', '?lang=en');
      t.clock.set(new Date(t.clock.now().getTime() + 2 * 3600_000 + 60_000));
      const before = await allCounts(t);
      const res = await postForm(t, form, [...good(), ['consent', 'offers:email']]);
      expect(res.statusCode).toBe(403);
      expect(res.body).toContain('This form has expired');
      expect(await allCounts(t)).toEqual(before);
      // A freshly opened form works again.
      const fresh = await openForm(t, 'signup', '?lang=en');
      expect((await postForm(t, fresh, [...good(), ['consent', 'offers:email']])).statusCode).toBe(200);
    });

    it('shows the error page inside the frame for an embedded form', async () => {
      const form = await openForm(t, 'signup', '?embed=1&lang=en');
      const res = await postForm(t, form, [
        ['email', 'nope'],
        ['terms', 'accepted'],
      ]);
      expect(res.statusCode).toBe(400);
      expect(res.body).toContain('<body class="embed">');
      expect(res.headers['content-security-policy']).toContain(`frame-ancestors ${SHOP}`);
      expect(res.body).toContain('href="/f/signup?lang=en&amp;embed=1"');
    });
  });
});

describe.each(dialects)('form posts are rate-limited on %s', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildFormsApp(dialect, { RATE_LIMIT_PER_MINUTE: '2' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('answers 429 past the limit, as a page or as problem+json', async () => {
    for (let i = 0; i < 2; i += 1) expect((await postJson(t, 'plain', { email: freshEmail('rl') })).statusCode).toBe(201);
    const json = await postJson(t, 'plain', { email: freshEmail('rl') });
    expect(json.statusCode).toBe(429);
    expect(json.json().code).toBe('rate_limited');
    const page = await postForm(t, await openForm(t, 'plain', '?lang=en'), [['email', freshEmail('rl')]]);
    expect(page.statusCode).toBe(429);
    expect(page.body).toContain('Too many requests');
  });
});

// The hosted and embedded forms in a real browser: a person fills them in, ticks (or not) boxes.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/build-app.ts';
import { accessibilityViolations, hasBrowser, launchBrowser, screenshot } from './browser.ts';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe.runIf(hasBrowser)('forms in Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let base: string;
  let host: Server;
  let hostOrigin: string;

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // A shop's page on another origin, embedding the form with one script tag.
    host = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(
        `<!doctype html><html lang="en"><head><title>Shop</title></head><body><h1>Our shop</h1><script src="${base}/f/signup/embed.js"></script></body></html>`,
      );
    });
    await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
    hostOrigin = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;

    t = await buildTestApp('sqlite', { env: { PUBLIC_URL: base } });
    await t.app.listen({ host: '127.0.0.1', port });
    browser = await launchBrowser();
    for (const [key, fr, en] of [
      ['news', 'Actualités', 'News'],
      ['offers', 'Offres partenaires', 'Partner offers'],
      ['events', 'Invitations aux événements', 'Event invitations'],
    ] as const) {
      const res = await t.call('POST', '/v1/purposes', {
        body: { key, title: { fr, en }, description: { fr: `${fr}, de temps en temps.`, en: `${en}, now and then.` }, channels: ['email'] },
      });
      expect(res.statusCode, res.body).toBe(201);
    }
    const form = await t.call('POST', '/v1/forms', {
      body: {
        key: 'signup',
        title: 'Inscription',
        locale: 'fr',
        fields: ['email', 'firstName'],
        purposes: [
          { purpose: 'news', channels: ['email'] },
          { purpose: 'offers', channels: ['email'] },
          { purpose: 'events', channels: ['email'] },
        ],
        allowedOrigins: [hostOrigin],
      },
    });
    expect(form.statusCode, form.body).toBe(201);
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
    host?.close();
  });

  const eventsOf = async (email: string) => {
    const found = (await t.call('GET', `/v1/contacts?email=${encodeURIComponent(email)}`)).json();
    expect(found.items).toHaveLength(1);
    return (await t.call('GET', `/v1/contacts/${found.items[0].id}/consents/history`)).json().items as Array<Record<string, any>>;
  };

  it('records exactly one event, with the hash of the HTML shown, when one box of three is ticked', async () => {
    const page = await browser.newPage({ locale: 'fr-FR' });
    await page.goto(`${base}/f/signup`);
    for (const key of ['news', 'offers', 'events']) expect(await page.getByTestId(`consent-${key}-email`).isChecked()).toBe(false);
    await screenshot(page, 'form-fr');
    await page.getByTestId('field-email').fill('Browser.One@example.com');
    await page.getByTestId('field-firstName').fill('Inès');
    await page.getByTestId('consent-offers-email').check();
    await page.getByTestId('submit').click();
    await page.waitForLoadState();
    await screenshot(page, 'form-thanks-fr');
    const events = await eventsOf('browser.one@example.com');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ purpose: 'offers', channel: 'email', action: 'granted', source: { type: 'form', ref: 'signup@1' } });
    const htmlHash = events[0]?.evidence.htmlHash as string;
    expect(htmlHash).toMatch(/^[0-9a-f]{64}$/);
    const render = await t.ctx.db.kysely.selectFrom('form_renders').selectAll().where('hash', '=', htmlHash).executeTakeFirstOrThrow();
    expect(render.html).toContain('Offres partenaires');
    expect(events[0]?.evidence.userAgent).toContain('Chrome');
    await page.close();
  });

  it('accepts the form with no box ticked and records no consent', async () => {
    const page = await browser.newPage({ locale: 'fr-FR' });
    await page.goto(`${base}/f/signup`);
    await page.getByTestId('field-email').fill('browser.none@example.com');
    await page.getByTestId('submit').click();
    await page.waitForLoadState();
    expect(await page.getByTestId('title').innerText()).toBe('Merci !');
    expect(await eventsOf('browser.none@example.com')).toEqual([]);
    await page.close();
  });

  it('renders in English on request', async () => {
    const page = await browser.newPage({ locale: 'en-GB' });
    await page.goto(`${base}/f/signup?lang=en`);
    expect(await page.locator('html').getAttribute('lang')).toBe('en');
    expect(await page.getByTestId('choice-offers-email').innerText()).toContain('Partner offers');
    await screenshot(page, 'form-en');
    await page.close();
  });

  it('renders inside a page from another origin through the embed script, and records from there', async () => {
    const page = await browser.newPage({ locale: 'fr-FR' });
    await page.goto(`${hostOrigin}/`);
    const frame = page.frameLocator('iframe');
    await frame.getByTestId('field-email').fill('browser.embed@example.com');
    await frame.getByTestId('consent-news-email').check();
    await screenshot(page, 'form-embedded');
    await frame.getByTestId('submit').click();
    await expect.poll(async () => (await t.call('GET', '/v1/contacts?email=browser.embed%40example.com')).json().items.length).toBe(1);
    const events = await eventsOf('browser.embed@example.com');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ purpose: 'news', evidence: { method: 'embedded form' } });
    await page.close();
  });

  it('cannot be framed by a site that is not allowed', async () => {
    const page = await browser.newPage();
    const response = await page.request.get(`${base}/f/signup?embed=1`);
    expect(response.headers()['content-security-policy']).toContain(`frame-ancestors ${hostOrigin}`);
    const hosted = await page.request.get(`${base}/f/signup`);
    expect(hosted.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    await page.close();
  });

  it('passes an automated accessibility check (axe-core, WCAG 2.1 AA)', async () => {
    for (const url of [`${base}/f/signup`, `${base}/f/signup?lang=en`, `${base}/f/signup?embed=1`]) {
      const violations = await accessibilityViolations(browser, url);
      expect(violations, `${url}: ${JSON.stringify(violations, null, 1)}`).toEqual([]);
    }
  });
});

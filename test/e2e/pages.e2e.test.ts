// The confirm, unsubscribe and preference pages in a real browser: what a person sees and clicks.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linkFor, preferencesLink, unsubscribeLink } from '../../src/modules/collection/index.ts';
import { buildTestApp, type TestApp } from '../helpers/build-app.ts';
import { createContact, decision, record } from '../helpers/factories.ts';
import { accessibilityViolations, hasBrowser, launchBrowser, screenshot } from './browser.ts';

// Pages do not depend on the store: one store is enough here (the API tests cover both).
describe.runIf(hasBrowser)('public pages in Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let base: string;
  const path = (url: string) => new URL(url).pathname;

  beforeAll(async () => {
    t = await buildTestApp('sqlite');
    base = await t.app.listen({ host: '127.0.0.1', port: 0 });
    browser = await launchBrowser();
    await t.call('POST', '/v1/purposes', {
      body: {
        key: 'newsletter',
        title: { fr: 'La lettre du jeudi', en: 'The Thursday letter' },
        description: { fr: 'Nos nouveautés, une fois par semaine.', en: 'Our news, once a week.' },
        infoUrl: 'https://shop.example/newsletter',
        channels: ['email'],
        doubleOptIn: true,
      },
    });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('confirms a double opt-in with one click on the button, in French and in English', async () => {
    for (const locale of ['fr', 'en'] as const) {
      const contact = await createContact(t, { locale });
      await record(t, { contactId: contact.id, purpose: 'newsletter', channel: 'email', action: 'grant' });
      const link = linkFor(t.ctx, 'c', { kind: 'confirm', contactId: contact.id, channel: 'email', ref: 'doi', days: 7 });
      const page = await browser.newPage();
      await page.goto(`${base}${path(link)}`);
      expect(await page.locator('html').getAttribute('lang')).toBe(locale);
      await expect
        .poll(() => page.getByTestId('purposes').innerText())
        .toContain(locale === 'fr' ? 'La lettre du jeudi' : 'The Thursday letter');
      await screenshot(page, `confirm-${locale}`);
      expect((await decision(t, { contactId: contact.id, purpose: 'newsletter', channel: 'email' })).reason).toBe('doi_pending');
      await page.getByTestId('confirm').click();
      await page.waitForLoadState();
      expect(await page.getByTestId('title').innerText()).toBe(locale === 'fr' ? 'Merci, c’est confirmé' : 'Thank you, confirmed');
      await screenshot(page, `confirmed-${locale}`);
      expect((await decision(t, { contactId: contact.id, purpose: 'newsletter', channel: 'email' })).allowed).toBe(true);
      await page.close();
    }
  });

  it('unsubscribes with the button', async () => {
    const contact = await createContact(t, { locale: 'fr' });
    await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
    const page = await browser.newPage();
    await page.goto(`${base}${path(unsubscribeLink(t.ctx, contact.id, 'commercial-email', 'email'))}`);
    await screenshot(page, 'unsubscribe-fr');
    await page.getByTestId('unsubscribe').click();
    await page.waitForLoadState();
    expect(await page.getByTestId('title').innerText()).toBe('Vous êtes désinscrit');
    expect((await decision(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email' })).reason).toBe('withdrawn');
    await page.close();
  });

  it('shows current states in the preference centre, saves a change, and withdraws everything', async () => {
    const contact = await createContact(t, { locale: 'en', phone: '+33612345678' });
    await record(t, { contactId: contact.id, purpose: 'commercial-email', channel: 'email', action: 'grant' });
    const page = await browser.newPage();
    await page.goto(`${base}${path(preferencesLink(t.ctx, contact.id))}`);
    const email = page.getByTestId('choice-commercial-email-email');
    const sms = page.getByTestId('choice-commercial-sms-sms');
    expect(await email.locator('input').isChecked()).toBe(true);
    expect(await email.getByTestId('state').innerText()).toContain('accepted');
    expect(await sms.locator('input').isChecked()).toBe(false);
    await screenshot(page, 'preferences-en');

    await sms.locator('input').check();
    await page.getByTestId('save').click();
    await page.waitForLoadState();
    expect(await page.getByTestId('saved').innerText()).toContain('saved');
    expect(await page.getByTestId('choice-commercial-sms-sms').locator('input').isChecked()).toBe(true);
    expect((await decision(t, { contactId: contact.id, purpose: 'commercial-sms', channel: 'sms' })).allowed).toBe(true);

    await page.getByTestId('withdraw-all').click();
    await page.waitForLoadState();
    expect(await page.getByTestId('choice-commercial-email-email').locator('input').isChecked()).toBe(false);
    expect(await page.getByTestId('choice-commercial-sms-sms').locator('input').isChecked()).toBe(false);
    await screenshot(page, 'preferences-withdrawn-en');
    for (const [purpose, channel] of [
      ['commercial-email', 'email'],
      ['commercial-sms', 'sms'],
    ]) {
      expect((await decision(t, { contactId: contact.id, purpose: purpose as string, channel: channel as string })).reason).toBe(
        'withdrawn',
      );
    }
    const history = (await t.call('GET', `/v1/contacts/${contact.id}/consents/history`)).json();
    expect(history.items.filter((e: { source: { type: string } }) => e.source.type === 'preference_centre')).toHaveLength(3);
    await page.close();
  });

  it('switches language with the link on the page', async () => {
    const contact = await createContact(t, { locale: 'fr' });
    const page = await browser.newPage();
    await page.goto(`${base}${path(preferencesLink(t.ctx, contact.id))}`);
    expect(await page.getByTestId('title').innerText()).toBe('Mes préférences de contact');
    await page.getByTestId('lang-switch').click();
    await page.waitForLoadState();
    expect(await page.getByTestId('title').innerText()).toBe('My contact preferences');
    await page.close();
  });

  it('shows a friendly page for a tampered link', async () => {
    const contact = await createContact(t);
    const link = path(preferencesLink(t.ctx, contact.id));
    // The contact is unknown to a broken link: the browser's language decides.
    const page = await browser.newPage({ locale: 'fr-FR' });
    const response = await page.goto(`${base}${link.slice(0, -3)}xyz`);
    expect(response?.status()).toBe(400);
    expect(await page.getByTestId('title').innerText()).toBe('Ce lien n’est pas valide');
    await screenshot(page, 'invalid-link-fr');
    await page.close();
  });

  it('passes an automated accessibility check (axe-core, WCAG 2.1 AA) on every page', async () => {
    const contact = await createContact(t, { locale: 'fr', phone: '+33611111111' });
    await record(t, { contactId: contact.id, purpose: 'newsletter', channel: 'email', action: 'grant' });
    const pages = {
      confirm: linkFor(t.ctx, 'c', { kind: 'confirm', contactId: contact.id, channel: 'email', ref: 'doi', days: 7 }),
      unsubscribe: unsubscribeLink(t.ctx, contact.id, 'commercial-email', 'email'),
      preferences: preferencesLink(t.ctx, contact.id),
      request: `${base}/p`,
      englishPreferences: `${preferencesLink(t.ctx, contact.id)}?lang=en`,
    };
    for (const [name, url] of Object.entries(pages)) {
      const u = new URL(url);
      const violations = await accessibilityViolations(browser, `${base}${u.pathname}${u.search}`);
      expect(violations, `${name}: ${JSON.stringify(violations, null, 1)}`).toEqual([]);
    }
  });

  it('runs no script and loads nothing from another origin', async () => {
    const contact = await createContact(t);
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const response = await page.goto(`${base}${path(preferencesLink(t.ctx, contact.id))}`);
    const csp = response?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('script-src');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(await page.locator('script').count()).toBe(0);
    expect(requests.every((r) => r.startsWith(base))).toBe(true);
    await page.close();
  });
});

// Templates marketers can edit (LiquidJS: no code runs), rendered per contact and language.
import { Liquid } from 'liquidjs';
import { iso } from '../../platform/clock.ts';
import { type AppContext, cached, invalidate } from '../../platform/context.ts';
import { DomainError, type FieldError } from '../../platform/errors.ts';
import type { TemplatesTable } from './messaging.table.ts';
import { emailLayout, textFooter } from './templates.builtin.ts';

export type Locale = 'fr' | 'en';
export interface EmailVariant {
  subject: string;
  html: string;
  text: string;
}
export interface SmsVariant {
  body: string;
}
export type Variant = EmailVariant | SmsVariant;

export interface TemplateInput {
  key: string;
  channel: 'email' | 'sms';
  category: 'transactional' | 'marketing';
  variants: Partial<Record<Locale, Variant>>;
}

export interface Template extends TemplateInput {
  builtin: boolean;
  createdAt: string;
  updatedAt: string;
}

const htmlEngine = new Liquid({ outputEscape: 'escape', strictFilters: true, ownPropertyOnly: true });
const textEngine = new Liquid({ strictFilters: true, ownPropertyOnly: true });
const parsed = new Map<string, ReturnType<Liquid['parse']>>();

function parse(engine: Liquid, source: string) {
  const key = `${engine === htmlEngine ? 'h' : 't'}:${source}`;
  let templates = parsed.get(key);
  if (!templates) {
    templates = engine.parse(source);
    if (parsed.size > 1000) parsed.clear();
    parsed.set(key, templates);
  }
  return templates;
}

/** Templates have no includes or async filters: rendering synchronously skips a promise per tag. */
const render = (engine: Liquid, source: string, vars: Record<string, unknown>): string =>
  engine.renderSync(parse(engine, source), vars) as string;

/** The layout with the content slot taking the rendered (already escaped) HTML as it is. */
const layoutSource = emailLayout.replace('{{ content }}', '{{ content | raw }}');

const toTemplate = (row: TemplatesTable): Template => ({
  key: row.key,
  channel: row.channel_kind as Template['channel'],
  category: row.category as Template['category'],
  variants: JSON.parse(row.variants),
  builtin: row.builtin === 1,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const OPT_OUT_LINK = /\{\{-?\s*links\.unsubscribe\b/;

/** Parses every variant and enforces the opt-out rule on marketing templates (RULES 14). */
export function checkTemplate(input: TemplateInput): void {
  const parseErrors: FieldError[] = [];
  const missing: FieldError[] = [];
  const locales = Object.keys(input.variants) as Locale[];
  if (locales.length === 0)
    throw new DomainError('template_invalid', 'A template needs at least one language', [
      { path: '/variants', message: 'add "fr" or "en"' },
    ]);
  for (const locale of locales) {
    const variant = input.variants[locale] as Variant;
    const fields = input.channel === 'email' ? ['subject', 'html', 'text'] : ['body'];
    for (const field of fields) {
      const source = (variant as unknown as Record<string, unknown>)[field];
      if (typeof source !== 'string' || source.trim() === '') {
        parseErrors.push({ path: `/variants/${locale}/${field}`, message: 'is required' });
        continue;
      }
      try {
        parse(field === 'html' ? htmlEngine : textEngine, source);
      } catch (error) {
        parseErrors.push({ path: `/variants/${locale}/${field}`, message: (error as Error).message.split('\n')[0] ?? 'does not parse' });
      }
    }
    if (input.category === 'marketing') {
      if (input.channel === 'email') {
        const v = variant as EmailVariant;
        if (!OPT_OUT_LINK.test(v.html ?? ''))
          missing.push({ path: `/variants/${locale}/html`, message: 'must contain {{ links.unsubscribe }}' });
        if (!OPT_OUT_LINK.test(v.text ?? ''))
          missing.push({ path: `/variants/${locale}/text`, message: 'must contain {{ links.unsubscribe }}' });
      } else if (!/\bSTOP\b/.test((variant as SmsVariant).body ?? '')) {
        missing.push({ path: `/variants/${locale}/body`, message: 'must say how to stop, e.g. "STOP au 36180"' });
      }
    }
  }
  if (parseErrors.length > 0)
    throw new DomainError('template_invalid', parseErrors.map((e) => `${e.path} ${e.message}`).join('; '), parseErrors);
  if (missing.length > 0) {
    throw new DomainError(
      'template_missing_opt_out',
      'Every commercial message carries a free, working opt-out (CPCE L.34-5): add {{ links.unsubscribe }} (email) or a STOP mention (SMS)',
      missing,
    );
  }
}

export const listTemplates = (ctx: AppContext): Promise<Template[]> =>
  cached(ctx, 'templates', async () =>
    (await ctx.db.read(ctx.db.kysely.selectFrom('templates').selectAll().orderBy('key').compile())).map(toTemplate),
  );

export async function getTemplate(ctx: AppContext, key: string): Promise<Template> {
  const template = (await listTemplates(ctx)).find((t) => t.key === key);
  if (!template) throw new DomainError('template_not_found', `There is no template "${key}"`);
  return template;
}

export async function saveTemplate(
  ctx: AppContext,
  input: TemplateInput,
  options: { create: boolean; builtin?: boolean },
): Promise<Template> {
  // A missing opt-out is told after the campaigns' check: when a launched campaign sends this
  // template, its problem names the campaign and everything it would lose (confirm link included).
  let missingOptOut: DomainError | undefined;
  try {
    checkTemplate(input);
  } catch (error) {
    if (options.create || !(error instanceof DomainError) || error.code !== 'template_missing_opt_out') throw error;
    missingOptOut = error;
  }
  const now = iso(ctx.clock.now());
  // Loaded here, not at the top: the campaigns module imports this one.
  const { checkTemplateChange } = await import('../campaigns/index.ts');
  const row = await ctx.db.kysely.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('templates').selectAll().where('key', '=', input.key).executeTakeFirst();
    if (options.create && existing) throw new DomainError('key_exists', `A template "${input.key}" exists already`);
    if (!options.create && !existing) throw missingOptOut ?? new DomainError('template_not_found', `There is no template "${input.key}"`);
    const row: TemplatesTable = {
      key: input.key,
      channel_kind: input.channel,
      category: input.category,
      variants: JSON.stringify(input.variants),
      builtin: existing?.builtin ?? (options.builtin ? 1 : 0),
      created_at: existing?.created_at ?? now,
      updated_at: now,
    };
    if (existing) {
      // A launched campaign keeps what its launch checked: the confirm link and the opt-out.
      await checkTemplateChange(trx, toTemplate(row));
      if (missingOptOut) throw missingOptOut;
      if (existing.builtin === 1 && (existing.channel_kind !== input.channel || existing.category !== input.category)) {
        throw new DomainError('builtin_locked', 'A built-in template keeps its channel and category');
      }
      await trx.updateTable('templates').set(row).where('key', '=', input.key).execute();
    } else await trx.insertInto('templates').values(row).execute();
    return row;
  });
  invalidate(ctx, 'templates');
  return toTemplate(row);
}

export async function ensureBuiltinTemplates(ctx: AppContext, templates: TemplateInput[]): Promise<void> {
  const now = iso(ctx.clock.now());
  for (const t of templates) {
    await ctx.db.kysely
      .insertInto('templates')
      .values({
        key: t.key,
        channel_kind: t.channel,
        category: t.category,
        variants: JSON.stringify(t.variants),
        builtin: 1,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
  }
  invalidate(ctx, 'templates');
}

export interface RenderedEmail {
  subject: string;
  html: string;
  text: string;
  locale: Locale;
}

export const pickLocale = (template: Template, wanted: string | null | undefined): Locale => {
  const lang = (wanted ?? '').slice(0, 2) as Locale;
  if (template.variants[lang]) return lang;
  return template.variants.fr ? 'fr' : 'en';
};

/** Renders an email template inside the layout; marketing mail gets the opt-out footer. */
export async function renderEmail(
  ctx: AppContext,
  template: Template,
  locale: string | null | undefined,
  vars: Record<string, unknown>,
): Promise<RenderedEmail> {
  const lang = pickLocale(template, locale);
  const variant = template.variants[lang] as EmailVariant;
  const scope = {
    company: { name: ctx.config.company.name, address: ctx.config.company.address },
    ...vars,
    lang,
    marketing: template.category === 'marketing',
  };
  const subject = render(textEngine, variant.subject, scope).replace(/\s+/g, ' ').trim();
  const content = render(htmlEngine, variant.html, scope);
  const frame = framesFor(scope);
  const links = (vars.links ?? {}) as { unsubscribe?: unknown; preferences?: unknown };
  const fill = (source: string, esc: (v: string) => string) =>
    source
      .split(SLOT.subject)
      .join(esc(subject))
      .split(SLOT.unsubscribe)
      .join(esc(String(links.unsubscribe ?? '')))
      .split(SLOT.preferences)
      .join(esc(String(links.preferences ?? '')));
  const html = fill(frame.html, escapeHtml).split(SLOT.content).join(content);
  const text = render(textEngine, variant.text, scope) + fill(frame.footer, (v) => v);
  return { subject, html, text, locale: lang };
}

/**
 * Our layout and text footer, rendered once per language, company and kind of mail with slots
 * for what changes per message (subject, content, links), then filled by plain replacement: the
 * layout was a third of a campaign mail's rendering time. Slot values are escaped as the layout's
 * own output escaping would.
 */
const SLOT = {
  subject: '\u0001subject\u0001',
  content: '\u0001content\u0001',
  unsubscribe: '\u0001unsubscribe\u0001',
  preferences: '\u0001preferences\u0001',
};
const frames = new Map<string, { html: string; footer: string }>();

function framesFor(scope: { company: { name: string; address: string }; lang: string; marketing: boolean }) {
  const key = JSON.stringify([scope.lang, scope.marketing, scope.company.name, scope.company.address]);
  let frame = frames.get(key);
  if (!frame) {
    const slots = {
      company: scope.company,
      lang: scope.lang,
      marketing: scope.marketing,
      subject: SLOT.subject,
      content: SLOT.content,
      links: { unsubscribe: SLOT.unsubscribe, preferences: SLOT.preferences },
    };
    frame = { html: render(htmlEngine, layoutSource, slots), footer: render(textEngine, textFooter, slots) };
    if (frames.size > 100) frames.clear();
    frames.set(key, frame);
  }
  return frame;
}

const htmlEscapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' };
const escapeHtml = (value: string) => value.replaceAll('\u0001', '').replace(/[&<>"']/g, (c) => htmlEscapes[c] as string);

export async function renderSms(
  template: Template,
  locale: string | null | undefined,
  vars: Record<string, unknown>,
): Promise<{ body: string; locale: Locale }> {
  const lang = pickLocale(template, locale);
  return { body: render(textEngine, (template.variants[lang] as SmsVariant).body, { ...vars, lang }).trim(), locale: lang };
}

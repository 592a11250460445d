// Server-rendered public pages: LiquidJS with escaping on, one layout, no script, strict headers.
import { readFileSync } from 'node:fs';
import type { FastifyReply } from 'fastify';
import { Liquid } from 'liquidjs';
import type { AppContext } from '../platform/context.ts';
import { type Lang, words } from './i18n.ts';

const root = new URL('./templates/', import.meta.url).pathname;
const engine = new Liquid({ root, extname: '.liquid', outputEscape: 'escape', cache: true, strictFilters: true, ownPropertyOnly: true });

export const stylesheet = readFileSync(new URL('./assets/assent.css', import.meta.url), 'utf8');

export interface PageOptions {
  status?: number;
  lang: Lang;
  /** Origins that may frame this page (the form embed); none by default. */
  frameAncestors?: string[];
  /** Extra origins the page's form may post to (never needed for our own pages). */
  formAction?: string[];
  /** The current path, for the language switch. */
  path?: string;
}

export async function renderPage(ctx: AppContext, name: string, vars: Record<string, unknown>, options: PageOptions): Promise<string> {
  return engine.renderFile(name, {
    ...vars,
    t: words[options.lang],
    lang: options.lang,
    otherLang: options.lang === 'fr' ? 'en' : 'fr',
    path: options.path ?? '',
    company: ctx.config.company,
  });
}

/** The headers every public page gets: no script at all, no third party, not indexed, not cached. */
export function pageHeaders(reply: FastifyReply, options: Pick<PageOptions, 'frameAncestors' | 'formAction'> = {}): void {
  const ancestors = options.frameAncestors && options.frameAncestors.length > 0 ? options.frameAncestors.join(' ') : "'none'";
  reply
    .header(
      'content-security-policy',
      [
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self' data: https:",
        `form-action 'self'${options.formAction?.length ? ` ${options.formAction.join(' ')}` : ''}`,
        "base-uri 'none'",
        `frame-ancestors ${ancestors}`,
      ].join('; '),
    )
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-robots-tag', 'noindex, nofollow')
    .header('cache-control', 'no-store');
  if (!options.frameAncestors?.length) reply.header('x-frame-options', 'DENY');
}

export async function sendPage(
  ctx: AppContext,
  reply: FastifyReply,
  name: string,
  vars: Record<string, unknown>,
  options: PageOptions,
): Promise<FastifyReply> {
  const html = await renderPage(ctx, name, vars, options);
  pageHeaders(reply, options);
  return reply
    .code(options.status ?? 200)
    .type('text/html; charset=utf-8')
    .send(html);
}

/** A page that only says something (errors, thanks). */
export const sendMessagePage = (
  ctx: AppContext,
  reply: FastifyReply,
  key: { title: string; text: string; extra?: string },
  options: PageOptions,
) => sendPage(ctx, reply, 'message', { titleKey: key.title, textKey: key.text, extraKey: key.extra ?? null }, options);

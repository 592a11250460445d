// The forms API (/v1/forms) and the public form: hosted page, embedded page, embed script, and
// submissions (the page's urlencoded post, or JSON from a site).
import cors from '@fastify/cors';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { chooseLang, type Lang, words } from '../../pages/i18n.ts';
import { sendPage } from '../../pages/render.ts';
import type { AppContext, RequestContext } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { type App, ListOf, problems } from '../../platform/http.ts';
import { CreateFormBody, FormKeyParams, FormPageQuery, FormSchema, SubmissionResultSchema, UpdateFormBody } from './forms.schema.ts';
import {
  allowedRedirect,
  createForm,
  type Form,
  formUrl,
  getForm,
  listForms,
  presentForm,
  requireForm,
  SubmissionRefused,
  showForm,
  submitHostedForm,
  submitJsonForm,
  updateForm,
} from './forms.service.ts';

export function formApiRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/v1/forms',
    { config: { scope: 'read' }, schema: { tags: ['forms'], response: { 200: ListOf(FormSchema), ...problems() } } },
    async () => ({ items: (await listForms(ctx)).map((f) => presentForm(ctx, f)), nextCursor: null }),
  );

  app.post(
    '/v1/forms',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['forms'],
        summary: 'Create a form (version 1)',
        body: CreateFormBody,
        response: { 201: FormSchema, ...problems(409) },
      },
    },
    async (request, reply) => reply.code(201).send(presentForm(ctx, await createForm(ctx, request.body))),
  );

  app.get(
    '/v1/forms/:key',
    { config: { scope: 'read' }, schema: { tags: ['forms'], params: FormKeyParams, response: { 200: FormSchema, ...problems(404) } } },
    async (request) => presentForm(ctx, await getForm(ctx, request.params.key)),
  );

  app.put(
    '/v1/forms/:key',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['forms'],
        summary: 'Replace a form’s definition (a new version)',
        params: FormKeyParams,
        body: UpdateFormBody,
        response: { 200: FormSchema, ...problems(404, 409) },
      },
    },
    async (request) => presentForm(ctx, await updateForm(ctx, request.params.key, request.body)),
  );
}

const PublicParams = Type.Object({ key: Type.String({ minLength: 1, maxLength: 64 }) });
/** A form post is a few fields: anything much larger is not one. */
const SUBMISSION_BODY_LIMIT = 16_384;

/** What the public pages read of a request (any route's typed request fits). */
type PublicRequest = Pick<FastifyRequest, 'headers'> & { query?: unknown; params?: unknown };
const queryOf = (request: PublicRequest) => (request.query ?? {}) as { lang?: unknown; embed?: unknown };

const isJson = (request: FastifyRequest) => /json/i.test(request.headers['content-type'] ?? '');
const personRequest = (request: FastifyRequest): RequestContext => ({ ...request.requestContext, actor: { type: 'person' } });
const header = (request: FastifyRequest, name: string) => {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
};

/** The page language: ?lang=, then the form's own language, then the browser's. */
const langOf = (request: PublicRequest, form: Form | undefined): Lang =>
  chooseLang(queryOf(request).lang, form?.locale, request.headers['accept-language']);

const isEmbed = (request: PublicRequest) => queryOf(request).embed === '1';

/** Embedded pages (the form, its errors, its thanks) may be framed by the form's allowed origins only. */
const frameAncestors = (request: PublicRequest, form: Form | undefined) => (isEmbed(request) && form ? form.allowedOrigins : undefined);

/** The script a site includes: it puts the embedded form in an iframe right after its own tag. */
function embedScript(ctx: AppContext, form: Form): string {
  const src = JSON.stringify(`${formUrl(ctx, form.key)}?embed=1`);
  return `// Assent form "${form.key}": inserts the form in an iframe right after this script tag.
(function () {
  var script = document.currentScript;
  if (!script || !script.parentNode) return;
  var lang = script.getAttribute('data-lang') || (document.documentElement.getAttribute('lang') || '').slice(0, 2);
  var frame = document.createElement('iframe');
  frame.src = ${src} + (lang ? '&lang=' + encodeURIComponent(lang) : '') + '&page=' + encodeURIComponent(location.href.slice(0, 1500));
  frame.title = ${JSON.stringify(form.title)};
  frame.setAttribute('data-assent-form', ${JSON.stringify(form.key)});
  frame.style.width = '100%';
  frame.style.border = '0';
  frame.height = script.getAttribute('data-height') || '640';
  script.parentNode.insertBefore(frame, script.nextSibling);
})();
`;
}

export async function formPageRoutes(app: App, ctx: AppContext): Promise<void> {
  await app.register(
    async (scope) => {
      const f = scope as unknown as App;

      // CORS for sites posting JSON from the browser: only this form's allowed origins, only here.
      await f.register(cors, {
        delegator: (request, callback) => {
          const origin = request.headers.origin;
          const key = /^\/f\/([^/?#]+)/.exec(request.url)?.[1];
          if (!origin || !key) return callback(null, { origin: false });
          let decoded: string;
          try {
            decoded = decodeURIComponent(key);
          } catch {
            return callback(null, { origin: false });
          }
          requireForm(ctx, decoded).then(
            (form) =>
              callback(
                null,
                form.allowedOrigins.includes(origin)
                  ? { origin, methods: ['POST'], allowedHeaders: ['content-type'], maxAge: 600 }
                  : { origin: false },
              ),
            () => callback(null, { origin: false }),
          );
        },
      });

      // People get a page about their form (in the frame, for an embed); JSON callers get problem+json.
      f.setErrorHandler(async (error: FastifyError, request, reply) => {
        if (isJson(request) || !request.routeOptions.config?.page) throw error;
        const status = error instanceof DomainError ? error.status : (error.statusCode ?? 500);
        if (status >= 500) throw error;
        return sendFormError(ctx, request, reply, error, status);
      });

      f.get(
        '/:key',
        { schema: { hide: true, params: PublicParams, querystring: FormPageQuery }, config: { page: true } },
        async (request, reply) => {
          const form = await requireForm(ctx, request.params.key);
          const lang = langOf(request, form);
          const embed = isEmbed(request);
          const page = await showForm(ctx, form, {
            lang,
            embed,
            page: request.query.page,
            referer: header(request, 'referer'),
            path: request.url,
          });
          const redirect = embed ? undefined : allowedRedirect(ctx, form);
          return sendPage(
            ctx,
            reply,
            'form',
            { title: form.title, markup: page.markup, csrf: page.csrf, htmlHash: page.htmlHash, pageUrl: page.pageUrl, embed },
            {
              lang,
              path: `/f/${encodeURIComponent(form.key)}`,
              ...(embed ? { frameAncestors: form.allowedOrigins } : {}),
              // CSP form-action also governs where the post may redirect to.
              ...(redirect ? { formAction: [new URL(redirect).origin] } : {}),
            },
          );
        },
      );

      f.post(
        '/:key',
        {
          schema: { hide: true, params: PublicParams, querystring: FormPageQuery, response: { 201: SubmissionResultSchema } },
          config: { page: true, rateLimit: { max: ctx.config.rateLimitPerMinute, timeWindow: 60_000 } },
          bodyLimit: SUBMISSION_BODY_LIMIT,
        },
        async (request, reply) => {
          const form = await requireForm(ctx, request.params.key);
          const lang = langOf(request, form);
          const common = { lang, ip: request.ip, userAgent: header(request, 'user-agent'), referer: header(request, 'referer') };
          if (isJson(request)) {
            const result = await submitJsonForm(ctx, personRequest(request), form, request.body, {
              ...common,
              origin: header(request, 'origin'),
            });
            return reply.code(201).send(result);
          }
          const embed = isEmbed(request);
          const result = await submitHostedForm(ctx, personRequest(request), form, request.body, { ...common, embed });
          // An embedded form thanks inside its frame; the hosted page may send the person on.
          const redirect = embed ? undefined : allowedRedirect(ctx, form);
          if (redirect) return (reply as FastifyReply).code(303).header('location', redirect).header('cache-control', 'no-store').send();
          return sendPage(
            ctx,
            reply,
            'message',
            {
              titleKey: 'form_thanks_title',
              textKey: 'form_thanks_text',
              extraKey: result.pending.length > 0 ? 'form_thanks_doi' : null,
              embed,
            },
            { lang, ...(embed ? { frameAncestors: form.allowedOrigins } : {}) },
          );
        },
      );

      f.get('/:key/embed.js', { schema: { hide: true, params: PublicParams } }, async (request, reply) => {
        const form = await requireForm(ctx, request.params.key);
        return reply
          .type('application/javascript; charset=utf-8')
          .header('cache-control', 'public, max-age=300')
          .header('x-content-type-options', 'nosniff')
          .header('cross-origin-resource-policy', 'cross-origin')
          .send(embedScript(ctx, form));
      });
    },
    { prefix: '/f' },
  );
}

/** A 4xx on the public form, as a page in the person's language, with a way back. */
async function sendFormError(ctx: AppContext, request: PublicRequest, reply: FastifyReply, error: Error, status: number) {
  const key = (request.params as { key?: unknown } | undefined)?.key;
  const form = typeof key === 'string' ? await requireForm(ctx, key).catch(() => undefined) : undefined;
  const lang = langOf(request, form);
  const t = words[lang] as unknown as Record<string, string>;
  const code = error instanceof DomainError ? error.code : undefined;
  let view: { titleKey: string; introKey?: string; lines: string[] };
  if (code === 'form_not_found') view = { titleKey: 'form_not_found_title', lines: [t.form_not_found_text as string] };
  else if (code === 'csrf_failed') view = { titleKey: 'form_expired_title', lines: [t.form_expired_text as string] };
  else if (code === 'form_changed') view = { titleKey: 'form_changed_title', lines: [t.form_changed_text as string] };
  else if (status === 429) view = { titleKey: 'rate_limited_title', lines: [t.rate_limited_text as string] };
  else if (error instanceof SubmissionRefused) {
    const reasons = [...new Set(error.issues.map((i) => i.reason))];
    view = { titleKey: 'form_error_title', introKey: 'form_error_intro', lines: reasons.map((r) => t[`form_err_${r}`] as string) };
  } else if (status === 413) view = { titleKey: 'form_error_title', introKey: 'form_error_intro', lines: [t.form_err_too_large as string] };
  else view = { titleKey: 'form_error_title', introKey: 'form_error_intro', lines: [t.form_err_invalid as string] };
  // Refused content is a 400 page whatever the API would call it (422 and the like).
  const pageStatus = error instanceof SubmissionRefused ? 400 : status;
  const back = form ? `/f/${encodeURIComponent(form.key)}?lang=${lang}${isEmbed(request) ? '&embed=1' : ''}` : null;
  const ancestors = frameAncestors(request, form);
  return sendPage(
    ctx,
    reply,
    'form-error',
    { ...view, back, embed: isEmbed(request) },
    {
      lang,
      status: pageStatus,
      ...(ancestors ? { frameAncestors: ancestors } : {}),
    },
  );
}

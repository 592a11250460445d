import { chooseLang } from '../../pages/i18n.ts';
import { sendPage } from '../../pages/render.ts';
import type { AppContext } from '../../platform/context.ts';
import { type App, problems } from '../../platform/http.ts';
import { listChannels } from '../channels/index.ts';
import { ContactIdParams } from '../contacts/index.ts';
import { accessPageVars } from './exports.page.ts';
import { AccessExportSchema, AccessQuery, ExportBody, ExportParams, ExportQuery } from './exports.schema.ts';
import { accessExport, openExport } from './exports.service.ts';

/** Whether an Accept header ranks text/html above JSON (a browser does; API clients do not). */
export function prefersHtml(accept: string | undefined): boolean {
  const ranks = { html: { q: 0, at: Infinity }, json: { q: 0, at: Infinity } };
  for (const [at, part] of (accept ?? '').split(',').entries()) {
    const [type = '', ...params] = part.trim().toLowerCase().split(';');
    const q = Number(
      params
        .map((p) => p.trim())
        .find((p) => p.startsWith('q='))
        ?.slice(2) ?? '1',
    );
    const which = type === 'text/html' ? 'html' : type === 'application/json' ? 'json' : undefined;
    if (which && Number.isFinite(q) && q > ranks[which].q) ranks[which] = { q, at };
  }
  const { html, json } = ranks;
  return html.q > json.q || (html.q > 0 && html.q === json.q && html.at < json.at);
}

export function exportRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/v1/exports/:kind',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['exports'],
        summary: 'Stream contacts (in the import’s columns), consent states or ledger events as CSV or JSON Lines',
        params: ExportParams,
        querystring: ExportQuery,
        response: { 200: ExportBody, ...problems(404) },
      },
    },
    async (request, reply) => {
      const opened = await openExport(ctx, {
        kind: request.params.kind,
        format: request.query.format ?? 'csv',
        segment: request.query.segment,
      });
      // Who exported what (RULES 20): kind, segment, count and key name, never a row. Logged when
      // the stream closes, whether the reader took it all or went away.
      opened.stream.once('close', () =>
        request.log.info(
          {
            export: opened.kind,
            format: opened.format,
            segment: opened.segment,
            rows: opened.progress.rows,
            complete: opened.stream.readableEnded,
            actor: request.requestContext.actor.name,
          },
          'export',
        ),
      );
      return (
        reply
          .header('content-type', opened.contentType)
          .header('content-disposition', `attachment; filename="${opened.filename}"`)
          .header('cache-control', 'no-store')
          .header('x-content-type-options', 'nosniff')
          // The schema documents the body as text; a stream is sent as it is, never serialised.
          .send(opened.stream as unknown as string)
      );
    },
  );

  app.get(
    '/v1/contacts/:id/export',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['contacts'],
        summary: 'Access and portability: everything held on the person, as JSON or a readable page (format=html or Accept: text/html)',
        params: ContactIdParams,
        querystring: AccessQuery,
        response: { 200: AccessExportSchema, ...problems(404, 410) },
      },
    },
    async (request, reply) => {
      const data = await accessExport(ctx, request.params.id);
      request.log.info({ access: data.contact.id, actor: request.requestContext.actor.name }, 'access export');
      const html = request.query.format === 'html' || (request.query.format === undefined && prefersHtml(request.headers.accept));
      if (!html) return data;
      const lang = chooseLang(request.query.lang, data.contact.locale, request.headers['accept-language']);
      return sendPage(ctx, reply, 'access', accessPageVars(data, lang, await listChannels(ctx)), { lang });
    },
  );
}

// The import API: the CSV is the request body (text/csv, streamed to a spool file while it is
// checked), the options are query parameters; the import runs in the background.
import { Readable } from 'node:stream';
import type { AppContext } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { type App, problemRef, problems } from '../../platform/http.ts';
import { parseMapOption } from './imports.columns.ts';
import { ImportAccepted, ImportIdParams, ImportQuery, ImportSummarySchema } from './imports.schema.ts';
import { getImport, IMPORT_BODY_LIMIT, type ImportOptions, importUpload, recoverImports, rejectsCsv } from './imports.service.ts';

type Query = {
  map?: string | string[];
  ignoreUnknown?: 'true' | 'false';
  onDuplicate?: 'update' | 'skip';
  dryRun?: 'true' | 'false';
  force?: 'true' | 'false';
  encoding?: 'auto' | 'utf-8' | 'windows-1252';
};

/** A charset named on the Content-Type is the encoding, unless the query says otherwise. */
function charsetOf(contentType: string | undefined): ImportOptions['encoding'] | undefined {
  const charset = /;\s*charset="?([^";\s]+)"?/i.exec(contentType ?? '')?.[1]?.toLowerCase();
  if (!charset) return undefined;
  if (charset === 'utf-8' || charset === 'utf8') return 'utf-8';
  if (['windows-1252', 'cp1252', 'iso-8859-1', 'latin1', 'iso-8859-15'].includes(charset)) return 'windows-1252';
  throw new DomainError('import_file_invalid', `charset "${charset}" is not read: send UTF-8 or Windows-1252`);
}

function optionsOf(query: Query, contentType: string | undefined): ImportOptions {
  const map: Record<string, string> = {};
  for (const entry of query.map === undefined ? [] : Array.isArray(query.map) ? query.map : [query.map]) {
    const pair = parseMapOption(entry);
    if (!pair) {
      throw new DomainError('validation_failed', `map "${entry}" must look like "<column>=<target>"`, [
        { path: '/querystring/map', message: 'must look like "<column>=<target>"' },
      ]);
    }
    map[pair[0]] = pair[1];
  }
  const encoding = query.encoding ?? charsetOf(contentType);
  return {
    map,
    ignoreUnknown: query.ignoreUnknown === 'true',
    onDuplicate: query.onDuplicate ?? 'update',
    dryRun: query.dryRun === 'true',
    force: query.force === 'true',
    ...(encoding ? { encoding } : {}),
  };
}

/**
 * The request body as the CSV parser hands it on: the raw stream, out of sight of hooks that walk
 * a parsed body's properties (a socket is no document to search).
 */
class CsvBody {
  readonly #stream: Readable;
  constructor(stream: Readable) {
    this.#stream = stream;
  }
  get stream(): Readable {
    return this.#stream;
  }
}

export async function importRoutes(app: App, ctx: AppContext): Promise<void> {
  // Imports a crash cut off: resumed from their last committed batch, or marked interrupted.
  app.addHook('onReady', async () => {
    const work = recoverImports(ctx)
      .catch((error: unknown) => ctx.logger.error({ err: error }, 'recovering interrupted imports failed'))
      .finally(() => ctx.background.delete(work));
    ctx.background.add(work);
  });
  await app.register(async (scope) => {
    const uploads = scope as unknown as App;
    // The body stays a stream: the service checks and spools it without holding it in memory.
    uploads.addContentTypeParser(['text/csv', 'application/csv'], (_request, payload, done) => done(null, new CsvBody(payload)));

    uploads.post(
      '/v1/imports',
      {
        config: { scope: 'write' },
        bodyLimit: IMPORT_BODY_LIMIT,
        schema: {
          tags: ['imports'],
          summary: 'Import contacts and their consents from a CSV file (the body, text/csv)',
          description:
            'The file is checked whole before anything is written (encoding, delimiter, header, columns); the import then runs in the background: follow it at GET /v1/imports/{id}.',
          querystring: ImportQuery,
          response: { 202: ImportAccepted, 413: problemRef, 415: problemRef, ...problems() },
        },
      },
      async (request, reply) => {
        const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
        if (type !== 'text/csv' && type !== 'application/csv') {
          throw new DomainError('unsupported_media_type', 'Send the CSV file as the request body, with Content-Type: text/csv');
        }
        // No body at all is an empty file.
        const body = request.body instanceof CsvBody ? request.body.stream : Readable.from([]);
        const options = optionsOf(request.query as Query, request.headers['content-type']);
        let summary: Awaited<ReturnType<typeof importUpload>>;
        try {
          summary = await importUpload(ctx, request.requestContext, body, options);
        } catch (error) {
          // The rest of a refused upload is not read: the connection closes after the answer.
          if (!body.readableEnded) reply.header('connection', 'close');
          throw error;
        }
        return reply.code(202).header('location', `/v1/imports/${summary.id}`).send({ id: summary.id, status: summary.status });
      },
    );
  });

  app.get(
    '/v1/imports/:id',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['imports'],
        summary: 'An import: status, progress and counts (read, written, updated, rejected, skipped, consents)',
        params: ImportIdParams,
        response: { 200: ImportSummarySchema, ...problems(404) },
      },
    },
    async (request) => getImport(ctx, request.params.id),
  );

  app.get(
    '/v1/imports/:id/rejects.csv',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['imports'],
        summary: 'The rejected rows as CSV: line (the header is line 1), column, reason',
        params: ImportIdParams,
        response: { ...problems(404) },
      },
    },
    async (request, reply) => {
      await getImport(ctx, request.params.id);
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="import-${request.params.id}-rejects.csv"`)
        .send(Readable.from(rejectsCsv(ctx, request.params.id)));
    },
  );
}

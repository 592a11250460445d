import type { AppContext } from '../../platform/context.ts';
import { type App, ListOf, problems } from '../../platform/http.ts';
import {
  CountSchema,
  CreateSegmentBody,
  PreviewSegmentBody,
  SegmentContactSchema,
  SegmentContactsQuery,
  SegmentKeyParams,
  SegmentSchema,
  UpdateSegmentBody,
} from './segments.schema.ts';
import {
  countSegment,
  createSegment,
  getSegment,
  listSegmentContacts,
  listSegments,
  previewSegment,
  updateSegment,
} from './segments.service.ts';

export function segmentRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/v1/segments',
    { config: { scope: 'read' }, schema: { tags: ['segments'], response: { 200: ListOf(SegmentSchema), ...problems() } } },
    async () => ({ items: await listSegments(ctx), nextCursor: null }),
  );

  app.post(
    '/v1/segments',
    {
      config: { scope: 'write' },
      schema: {
        tags: ['segments'],
        summary: 'Save a segment',
        body: CreateSegmentBody,
        response: { 201: SegmentSchema, ...problems(409) },
      },
    },
    async (request, reply) => reply.code(201).send(await createSegment(ctx, request.body)),
  );

  // Read scope: a preview counts, it writes nothing.
  app.post(
    '/v1/segments/preview',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['segments'],
        summary: 'Count the contacts a filter selects, without saving it',
        body: PreviewSegmentBody,
        response: { 200: CountSchema, ...problems() },
      },
    },
    async (request) => ({ count: await previewSegment(ctx, request.body.filter) }),
  );

  app.get(
    '/v1/segments/:key',
    {
      config: { scope: 'read' },
      schema: { tags: ['segments'], params: SegmentKeyParams, response: { 200: SegmentSchema, ...problems(404) } },
    },
    async (request) => getSegment(ctx, request.params.key),
  );

  app.put(
    '/v1/segments/:key',
    {
      config: { scope: 'write' },
      schema: {
        tags: ['segments'],
        summary: 'Replace a segment’s name and filter',
        params: SegmentKeyParams,
        body: UpdateSegmentBody,
        response: { 200: SegmentSchema, ...problems(404) },
      },
    },
    async (request) => updateSegment(ctx, request.params.key, request.body),
  );

  app.get(
    '/v1/segments/:key/count',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['segments'],
        summary: 'How many contacts are in the segment now',
        params: SegmentKeyParams,
        response: { 200: CountSchema, ...problems(404) },
      },
    },
    async (request) => ({ count: await countSegment(ctx, request.params.key) }),
  );

  app.get(
    '/v1/segments/:key/contacts',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['segments'],
        summary: 'The segment’s contacts, in id order',
        params: SegmentKeyParams,
        querystring: SegmentContactsQuery,
        response: { 200: ListOf(SegmentContactSchema), ...problems(404) },
      },
    },
    async (request) => {
      const { cursor, limit } = request.query;
      return listSegmentContacts(ctx, request.params.key, cursor ?? null, limit ? Math.min(Number(limit), 500) : 50);
    },
  );
}

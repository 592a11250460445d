import { Type } from 'typebox';
import type { AppContext } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { type App, Key, ListOf, problems } from '../../platform/http.ts';
import { CreatePurposeBody, PurposeSchema, PurposeVersionSchema, UpdatePurposeBody } from './purposes.schema.ts';
import { createPurpose, getPurpose, listPurposes, listPurposeVersions, updatePurpose } from './purposes.service.ts';

export function purposeRoutes(app: App, ctx: AppContext): void {
  const params = Type.Object({ key: Key });

  app.get(
    '/v1/purposes',
    { config: { scope: 'read' }, schema: { tags: ['purposes'], response: { 200: ListOf(PurposeSchema), ...problems() } } },
    async () => ({ items: await listPurposes(ctx), nextCursor: null }),
  );

  app.post(
    '/v1/purposes',
    {
      config: { scope: 'admin' },
      schema: { tags: ['purposes'], body: CreatePurposeBody, response: { 201: PurposeSchema, ...problems(409) } },
    },
    async (request, reply) => reply.code(201).send(await createPurpose(ctx, request.body)),
  );

  app.get(
    '/v1/purposes/:key',
    { config: { scope: 'read' }, schema: { tags: ['purposes'], params, response: { 200: PurposeSchema, ...problems(404) } } },
    async (request) => {
      const purpose = await getPurpose(ctx, request.params.key);
      if (!purpose) throw new DomainError('not_found', `There is no purpose "${request.params.key}"`);
      return purpose;
    },
  );

  app.get(
    '/v1/purposes/:key/versions',
    {
      config: { scope: 'read' },
      schema: { tags: ['purposes'], params, response: { 200: ListOf(PurposeVersionSchema), ...problems(404) } },
    },
    async (request) => {
      const items = await listPurposeVersions(ctx, request.params.key);
      if (items.length === 0) throw new DomainError('not_found', `There is no purpose "${request.params.key}"`);
      return { items, nextCursor: null };
    },
  );

  app.patch(
    '/v1/purposes/:key',
    {
      config: { scope: 'admin' },
      schema: { tags: ['purposes'], params, body: UpdatePurposeBody, response: { 200: PurposeSchema, ...problems(404, 409) } },
    },
    async (request) => updatePurpose(ctx, request.params.key, request.body),
  );
}

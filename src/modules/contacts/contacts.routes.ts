import { Type } from 'typebox';
import type { AppContext } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { type App, ListOf, problems } from '../../platform/http.ts';
import { ContactQuery, ContactSchema, CreateContactBody, CreateFieldBody, FieldSchema, UpdateContactBody } from './contacts.schema.ts';
import {
  createContact,
  declareField,
  findContacts,
  getContact,
  isReservedFieldKey,
  listFields,
  updateContact,
} from './contacts.service.ts';

export const ContactIdParams = Type.Object({ id: Type.String({ pattern: '^[0-9A-HJKMNP-TV-Z]{26}$' }) });

export function contactRoutes(app: App, ctx: AppContext): void {
  app.post(
    '/v1/contacts',
    {
      config: { scope: 'write' },
      schema: { tags: ['contacts'], body: CreateContactBody, response: { 201: ContactSchema, ...problems(409) } },
    },
    async (request, reply) => reply.code(201).send(await createContact(ctx, request.requestContext, request.body)),
  );

  app.get(
    '/v1/contacts',
    {
      config: { scope: 'read' },
      schema: { tags: ['contacts'], querystring: ContactQuery, response: { 200: ListOf(ContactSchema), ...problems() } },
    },
    async (request) => {
      const { limit, ...rest } = request.query;
      return findContacts(ctx, { ...rest, ...(limit ? { limit: Math.min(Number(limit), 500) } : {}) });
    },
  );

  app.get(
    '/v1/contacts/:id',
    {
      config: { scope: 'read' },
      schema: { tags: ['contacts'], params: ContactIdParams, response: { 200: ContactSchema, ...problems(404, 410) } },
    },
    async (request) => getContact(ctx, request.params.id),
  );

  app.patch(
    '/v1/contacts/:id',
    {
      config: { scope: 'write' },
      schema: {
        tags: ['contacts'],
        params: ContactIdParams,
        body: UpdateContactBody,
        response: { 200: ContactSchema, ...problems(404, 409, 410) },
      },
    },
    async (request) => updateContact(ctx, request.requestContext, request.params.id, request.body),
  );

  app.get(
    '/v1/fields',
    { config: { scope: 'read' }, schema: { tags: ['fields'], response: { 200: ListOf(FieldSchema), ...problems() } } },
    async () => ({ items: await listFields(ctx), nextCursor: null }),
  );

  app.post(
    '/v1/fields',
    {
      config: { scope: 'admin' },
      schema: { tags: ['fields'], body: CreateFieldBody, response: { 201: FieldSchema, ...problems(409) } },
    },
    async (request, reply) => {
      if (isReservedFieldKey(request.body.key)) {
        throw new DomainError('key_exists', `"${request.body.key}" is a built-in contact field`, [{ path: '/key', message: 'reserved' }]);
      }
      return reply.code(201).send(await declareField(ctx, request.body));
    },
  );
}

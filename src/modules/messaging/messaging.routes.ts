import { Type } from 'typebox';
import type { AppContext } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { type App, Key, ListOf, problems } from '../../platform/http.ts';
import { findContactRow } from '../contacts/index.ts';
import {
  CreateTemplateBody,
  MessageDetailSchema,
  MessageSchema,
  OutboxQuery,
  PreviewBody,
  PreviewSchema,
  TemplateSchema,
  UpdateTemplateBody,
} from './messaging.schema.ts';
import { getOutboxMessage, listOutbox } from './messaging.service.ts';
import { getTemplate, listTemplates, renderEmail, renderSms, saveTemplate, type TemplateInput } from './templates.service.ts';

const sampleLinks = (ctx: AppContext) => ({
  confirm: `${ctx.config.publicUrl}/c/preview`,
  unsubscribe: `${ctx.config.publicUrl}/u/preview`,
  preferences: `${ctx.config.publicUrl}/p/preview`,
});

export function messagingRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/v1/templates',
    { config: { scope: 'read' }, schema: { tags: ['templates'], response: { 200: ListOf(TemplateSchema), ...problems() } } },
    async () => ({ items: (await listTemplates(ctx)) as never, nextCursor: null }),
  );

  app.post(
    '/v1/templates',
    {
      config: { scope: 'admin' },
      schema: { tags: ['templates'], body: CreateTemplateBody, response: { 201: TemplateSchema, ...problems(409) } },
    },
    async (request, reply) => reply.code(201).send((await saveTemplate(ctx, request.body as TemplateInput, { create: true })) as never),
  );

  app.get(
    '/v1/templates/:key',
    {
      config: { scope: 'read' },
      schema: { tags: ['templates'], params: Type.Object({ key: Key }), response: { 200: TemplateSchema, ...problems(404) } },
    },
    async (request) => (await getTemplate(ctx, request.params.key)) as never,
  );

  app.put(
    '/v1/templates/:key',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['templates'],
        params: Type.Object({ key: Key }),
        body: UpdateTemplateBody,
        response: { 200: TemplateSchema, ...problems(404) },
      },
    },
    async (request) => (await saveTemplate(ctx, { key: request.params.key, ...request.body } as TemplateInput, { create: false })) as never,
  );

  app.post(
    '/v1/templates/:key/preview',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['templates'],
        params: Type.Object({ key: Key }),
        body: PreviewBody,
        response: { 200: PreviewSchema, ...problems(404) },
      },
    },
    async (request) => {
      const template = await getTemplate(ctx, request.params.key);
      let contact = { firstName: 'Camille', lastName: 'Martin', email: 'camille.martin@example.com' } as Record<string, unknown>;
      let locale: string | null | undefined = request.body.locale;
      if (request.body.contactId) {
        const row = await findContactRow(ctx.db.kysely, request.body.contactId);
        if (!row || row.erased_at) throw new DomainError('contact_not_found', `There is no contact "${request.body.contactId}"`);
        contact = { firstName: row.first_name, lastName: row.last_name, email: row.email };
        locale ??= row.locale;
      }
      const vars = { contact, links: sampleLinks(ctx), campaign: request.body.campaign ?? {}, purpose: { title: '…' } };
      if (template.channel === 'sms') return renderSms(template, locale, vars);
      return renderEmail(ctx, template, locale, vars);
    },
  );

  app.get(
    '/v1/outbox',
    {
      config: { scope: 'read' },
      schema: { tags: ['outbox'], querystring: OutboxQuery, response: { 200: ListOf(MessageSchema), ...problems() } },
    },
    async (request) => {
      const { limit, ...rest } = request.query;
      return listOutbox(ctx, { ...rest, ...(limit ? { limit: Math.min(Number(limit), 500) } : {}) });
    },
  );

  app.get(
    '/v1/outbox/:id',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['outbox'],
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        response: { 200: MessageDetailSchema, ...problems(404) },
      },
    },
    async (request) => getOutboxMessage(ctx, request.params.id),
  );
}

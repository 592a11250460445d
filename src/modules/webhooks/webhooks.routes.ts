import { Type } from 'typebox';
import type { AppContext } from '../../platform/context.ts';
import { type App, ListOf, problems } from '../../platform/http.ts';
import {
  CreatedWebhookSchema,
  CreateWebhookBody,
  DeliveriesQuery,
  WebhookDeliverySchema,
  WebhookIdParams,
  WebhookSchema,
} from './webhooks.schema.ts';
import { createWebhook, deleteWebhook, listWebhookDeliveries, listWebhooks } from './webhooks.service.ts';

export function webhookRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/v1/webhooks',
    { config: { scope: 'read' }, schema: { tags: ['webhooks'], response: { 200: ListOf(WebhookSchema), ...problems() } } },
    async () => ({ items: await listWebhooks(ctx), nextCursor: null }),
  );

  app.post(
    '/v1/webhooks',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['webhooks'],
        summary: 'Subscribe a URL to events; the signing secret is in this answer only',
        body: CreateWebhookBody,
        response: { 201: CreatedWebhookSchema, ...problems() },
      },
    },
    async (request, reply) => reply.code(201).send(await createWebhook(ctx, request.body)),
  );

  app.delete(
    '/v1/webhooks/:id',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['webhooks'],
        summary: 'Stop a webhook: no more events, and its pending deliveries are not sent',
        params: WebhookIdParams,
        response: { 204: Type.Null(), ...problems(404) },
      },
    },
    async (request, reply) => {
      await deleteWebhook(ctx, request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/webhooks/:id/deliveries',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['webhooks'],
        summary: 'A webhook’s deliveries, newest first, with every attempt',
        params: WebhookIdParams,
        querystring: DeliveriesQuery,
        response: { 200: ListOf(WebhookDeliverySchema), ...problems(404) },
      },
    },
    async (request) => {
      const { cursor, limit } = request.query;
      return listWebhookDeliveries(ctx, request.params.id, cursor ?? null, limit ? Number(limit) : 50);
    },
  );
}

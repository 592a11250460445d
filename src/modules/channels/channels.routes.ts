import { Type } from 'typebox';
import type { AppContext } from '../../platform/context.ts';
import { type App, Key, ListOf, problems } from '../../platform/http.ts';
import { ChannelSchema, CreateChannelBody, UpdateChannelBody } from './channels.schema.ts';
import { createChannel, listChannels, updateChannel } from './channels.service.ts';

export function channelRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/v1/channels',
    { config: { scope: 'read' }, schema: { tags: ['channels'], response: { 200: ListOf(ChannelSchema), ...problems() } } },
    async () => ({ items: await listChannels(ctx), nextCursor: null }),
  );

  app.post(
    '/v1/channels',
    {
      config: { scope: 'admin' },
      schema: { tags: ['channels'], body: CreateChannelBody, response: { 201: ChannelSchema, ...problems(409) } },
    },
    async (request, reply) => reply.code(201).send(await createChannel(ctx, request.body)),
  );

  app.patch(
    '/v1/channels/:key',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['channels'],
        params: Type.Object({ key: Key }),
        body: UpdateChannelBody,
        response: { 200: ChannelSchema, ...problems(404) },
      },
    },
    async (request) => updateChannel(ctx, request.params.key, request.body),
  );
}

import { Type } from 'typebox';
import type { AppContext } from '../../platform/context.ts';
import { type App, Key, problems } from '../../platform/http.ts';
import { checkSuppression, suppressAddress, suppressionReasons } from './suppressions.service.ts';

const Address = {
  email: Type.Optional(Type.String({ maxLength: 254 })),
  phone: Type.Optional(Type.String({ maxLength: 40 })),
};

export function suppressionRoutes(app: App, ctx: AppContext): void {
  app.post(
    '/v1/suppressions',
    {
      config: { scope: 'write' },
      schema: {
        tags: ['suppressions'],
        body: Type.Object(
          {
            channel: Key,
            ...Address,
            reason: Type.Union(suppressionReasons.map((r) => Type.Literal(r))),
            source: Type.Optional(Type.String({ maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            channel: Type.String(),
            reason: Type.String(),
            source: Type.Union([Type.String(), Type.Null()]),
            createdAt: Type.String(),
          }),
          ...problems(),
        },
      },
    },
    async (request, reply) => reply.code(201).send(await suppressAddress(ctx, request.body)),
  );

  app.get(
    '/v1/suppressions/check',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['suppressions'],
        querystring: Type.Object({ channel: Key, ...Address }, { additionalProperties: false }),
        response: { 200: Type.Object({ suppressed: Type.Boolean(), reasons: Type.Array(Type.String()) }), ...problems() },
      },
    },
    async (request) => checkSuppression(ctx, request.query),
  );
}

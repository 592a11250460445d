import { Type } from 'typebox';
import type { AppContext } from '../../platform/context.ts';
import { type App, ListOf, problems } from '../../platform/http.ts';
import { ContactIdParams } from '../contacts/index.ts';
import { decide } from './consents.decisions.ts';
import {
  ConsentBody,
  ConsentEventSchema,
  ConsentStateSchema,
  DecisionBatchBody,
  DecisionQuery,
  DecisionSchema,
  ProofSchema,
  VerifySchema,
} from './consents.schema.ts';
import { consentHistory, consentStates, proofBundle, recordConsent } from './consents.service.ts';
import { verifyLedger } from './consents.verify.ts';

export function consentRoutes(app: App, ctx: AppContext): void {
  app.post(
    '/v1/consents',
    {
      config: { scope: 'write' },
      schema: {
        tags: ['consents'],
        body: ConsentBody,
        response: { 200: ConsentEventSchema, 201: ConsentEventSchema, ...problems(404, 409, 410) },
      },
    },
    async (request, reply) => {
      const { event, created } = await recordConsent(ctx, request.requestContext, request.body);
      return reply.code(created ? 201 : 200).send(event);
    },
  );

  app.get(
    '/v1/contacts/:id/consents',
    {
      config: { scope: 'read' },
      schema: { tags: ['consents'], params: ContactIdParams, response: { 200: ListOf(ConsentStateSchema), ...problems(404) } },
    },
    async (request) => ({ items: await consentStates(ctx, request.params.id), nextCursor: null }),
  );

  app.get(
    '/v1/contacts/:id/consents/history',
    {
      config: { scope: 'read' },
      schema: { tags: ['consents'], params: ContactIdParams, response: { 200: ListOf(ConsentEventSchema), ...problems(404) } },
    },
    async (request) => ({ items: await consentHistory(ctx, request.params.id), nextCursor: null }),
  );

  app.get(
    '/v1/contacts/:id/proof',
    {
      config: { scope: 'read' },
      schema: { tags: ['consents'], params: ContactIdParams, response: { 200: ProofSchema, ...problems(404) } },
    },
    async (request) => proofBundle(ctx, request.params.id),
  );

  app.get(
    '/v1/decisions',
    {
      config: { scope: 'read' },
      schema: { tags: ['decisions'], querystring: DecisionQuery, response: { 200: DecisionSchema, ...problems() } },
    },
    async (request) => decide(ctx, request.query),
  );

  app.post(
    '/v1/decisions',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['decisions'],
        body: DecisionBatchBody,
        response: { 200: Type.Object({ results: Type.Array(DecisionSchema) }), ...problems() },
      },
    },
    async (request) => {
      const results = [];
      for (const [i, item] of request.body.items.entries()) results.push(await decide(ctx, item, `/items/${i}`));
      return { results };
    },
  );

  app.get(
    '/v1/ledger/verify',
    { config: { scope: 'read' }, schema: { tags: ['ledger'], response: { 200: VerifySchema, ...problems() } } },
    async () => verifyLedger(ctx),
  );
}

import { Type } from 'typebox';
import type { AppContext } from '../../platform/context.ts';
import { type App, ListOf, problems } from '../../platform/http.ts';
import { ContactIdParams } from '../contacts/index.ts';
import { type Decision, decide, decideNow } from './consents.decisions.ts';
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
    // Decided at once where the store reads synchronously (SQLite). The answer leaves at the end
    // of the event loop's turn, with the answers to the other requests that arrived in that turn:
    // under load, one burst of writes per turn rather than a write (and a wake-up of the client)
    // between each request (measured on the HTTP bench: about a third more decisions a second).
    // The cost is at most one turn of latency.
    (request) => {
      const now = decideNow(ctx, request.query);
      return now === undefined ? decide(ctx, request.query) : new Promise<Decision>((resolve) => setImmediate(resolve, now));
    },
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
      for (const [i, item] of request.body.items.entries()) {
        const path = `/items/${i}`;
        results.push(decideNow(ctx, item, path) ?? (await decide(ctx, item, path)));
      }
      return { results };
    },
  );

  app.get(
    '/v1/ledger/verify',
    { config: { scope: 'read' }, schema: { tags: ['ledger'], response: { 200: VerifySchema, ...problems() } } },
    async () => verifyLedger(ctx),
  );
}

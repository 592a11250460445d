import { Type } from 'typebox';
import type { AppContext } from '../../platform/context.ts';
import { type App, problems } from '../../platform/http.ts';
import { ContactIdParams } from '../contacts/index.ts';
import { eraseContact } from './governance.service.ts';

export function governanceRoutes(app: App, ctx: AppContext): void {
  app.delete(
    '/v1/contacts/:id',
    {
      config: { scope: 'write' },
      schema: {
        tags: ['contacts'],
        summary: 'Erase a contact: personal data removed, pseudonymous proof kept, addresses suppressed',
        params: ContactIdParams,
        response: { 204: Type.Null(), ...problems(404) },
      },
    },
    async (request, reply) => {
      await eraseContact(ctx, request.requestContext, request.params.id);
      return reply.code(204).send(null);
    },
  );
}

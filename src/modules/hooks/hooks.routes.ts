// Provider callbacks (/hooks/*): no API key but a signature over the raw body, so they live in
// their own plugin whose JSON parser keeps the body as it came and checks the signature first.
import type { FastifyRequest } from 'fastify';
import type { AppContext, RequestContext } from '../../platform/context.ts';
import { DomainError } from '../../platform/errors.ts';
import { type App, problemRef } from '../../platform/http.ts';
import { EmailEventsAnswer, EmailEventsBody, InboundSmsAnswer, InboundSmsBody, SmsStatusAnswer, SmsStatusBody } from './hooks.schema.ts';
import { receiveSms, recordEmailEvents, recordSmsStatus } from './hooks.service.ts';
import { checkHookSignature, SIGNATURE_HEADER } from './hooks.signature.ts';

const hookProblems = Object.fromEntries([400, 401, 413, 415, 503].map((s) => [s, problemRef]));

/** Why a request is refused, or undefined when its signature holds. */
function signatureError(ctx: AppContext, request: FastifyRequest, raw: string): DomainError | undefined {
  const secret = ctx.config.hooksSecret;
  if (!secret) return new DomainError('hooks_not_configured');
  const check = checkHookSignature(secret, request.headers[SIGNATURE_HEADER], raw, ctx.clock.now());
  if (check === 'ok') return undefined;
  const detail = {
    missing: 'The Assent-Signature header is missing',
    malformed: 'The Assent-Signature header must look like "t=<unix seconds>,v1=<hex HMAC-SHA256>"',
    stale: 'The signature time is more than 5 minutes away from ours: sign each request when it is sent',
    mismatch: 'The signature does not match the body',
  }[check];
  return new DomainError('bad_signature', detail);
}

export async function hookRoutes(app: App, ctx: AppContext): Promise<void> {
  await app.register(async (scope) => {
    const hooks = scope as unknown as App;
    const verified = new WeakSet<FastifyRequest>();

    hooks.addHook('onRequest', (_request, _reply, done) => {
      done(ctx.config.hooksSecret ? undefined : new DomainError('hooks_not_configured'));
    });

    // JSON only, read as text: the signature covers the exact bytes, checked before parsing.
    hooks.removeAllContentTypeParsers();
    hooks.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
      const refused = signatureError(ctx, request, body as string);
      if (refused) return done(refused, undefined);
      verified.add(request);
      try {
        done(null, JSON.parse(body as string));
      } catch {
        done(new DomainError('bad_json', 'The body is not valid JSON'), undefined);
      }
    });
    // A request without a body never reaches the parser: its signature covers the empty body.
    hooks.addHook('preValidation', (request, _reply, done) => {
      done(verified.has(request) ? undefined : signatureError(ctx, request, ''));
    });

    const provider = (request: FastifyRequest, name: string): RequestContext => ({
      ...request.requestContext,
      actor: { type: 'system', name },
    });
    // Not in /openapi.json (the API for systems holding a key): the README documents this contract.
    const doc = (summary: string) => ({ hide: true, tags: ['hooks'], summary });

    hooks.post(
      '/hooks/email/events',
      {
        schema: {
          ...doc('Bounces and complaints from the mail provider (signed)'),
          body: EmailEventsBody,
          response: { 200: EmailEventsAnswer, ...hookProblems },
        },
      },
      async (request) => recordEmailEvents(ctx, provider(request, 'mail provider'), request.body.events),
    );

    hooks.post(
      '/hooks/sms/inbound',
      {
        schema: {
          ...doc('An SMS sent to us: STOP withdraws, OUI confirms a running campaign (signed)'),
          body: InboundSmsBody,
          response: { 200: InboundSmsAnswer, ...hookProblems },
        },
      },
      // The person acted, through the provider.
      async (request) => ({ action: await receiveSms(ctx, { ...request.requestContext, actor: { type: 'person' } }, request.body) }),
    );

    hooks.post(
      '/hooks/sms/status',
      {
        schema: {
          ...doc('A delivery receipt from the SMS provider (signed)'),
          body: SmsStatusBody,
          response: { 200: SmsStatusAnswer, 202: SmsStatusAnswer, ...hookProblems },
        },
      },
      // Unknown ids are accepted (202), so that the provider does not retry them forever.
      async (request, reply) => {
        const answer = await recordSmsStatus(ctx, request.body);
        return reply.code(answer.matched ? 200 : 202).send(answer);
      },
    );
  });
}

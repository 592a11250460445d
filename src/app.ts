// Builds the HTTP app from a context: schemas, auth, one error model, the module routes.
import formbody from '@fastify/formbody';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyRequest, LogController, type onRequestHookHandler } from 'fastify';
import { Type } from 'typebox';
import { authenticate, type Principal, scopeAllows } from './modules/auth/index.ts';
import { campaignRoutes } from './modules/campaigns/index.ts';
import { channelRoutes } from './modules/channels/index.ts';
import { collectionRoutes, messageRoutes } from './modules/collection/index.ts';
import { consentRoutes } from './modules/consents/index.ts';
import { contactRoutes } from './modules/contacts/index.ts';
import { exportRoutes } from './modules/exports/index.ts';
import { formApiRoutes, formPageRoutes } from './modules/forms/index.ts';
import { governanceRoutes } from './modules/governance/index.ts';
import { hookRoutes } from './modules/hooks/index.ts';
import { importRoutes } from './modules/imports/index.ts';
import { messagingRoutes } from './modules/messaging/index.ts';
import { purposeRoutes } from './modules/purposes/index.ts';
import { segmentRoutes } from './modules/segments/index.ts';
import { suppressionRoutes } from './modules/suppressions/index.ts';
import { webhookRoutes } from './modules/webhooks/index.ts';
import { chooseLang } from './pages/i18n.ts';
import { sendMessagePage } from './pages/render.ts';
import type { Actor, AppContext, RequestContext } from './platform/context.ts';
import { DomainError, type FieldError, type ProblemCode, toProblem } from './platform/errors.ts';
import { type App, ProblemSchema, type Scope } from './platform/http.ts';
import { LazyChildLogger } from './platform/logger.ts';

const PROBLEM = 'application/problem+json; charset=utf-8';

function fieldErrors(error: FastifyError): FieldError[] {
  return (error.validation ?? []).map((v) => {
    const params = v.params as Record<string, unknown>;
    let path = `${error.validationContext ? `/${error.validationContext}` : ''}${v.instancePath}`;
    if (typeof params.missingProperty === 'string') path += `/${params.missingProperty}`;
    if (typeof params.additionalProperty === 'string') {
      return { path: `${path}/${params.additionalProperty}`, message: 'is not an accepted field' };
    }
    return { path: path || '/', message: v.message ?? 'is not valid' };
  });
}

/** Whether a string anywhere in the value (keys included) holds U+0000: no allocation when none does. */
function holdsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (value === null || typeof value !== 'object') return false;
  for (const key of Object.keys(value)) {
    if (key.includes('\u0000') || holdsNul((value as Record<string, unknown>)[key])) return true;
  }
  return false;
}

/** The first string holding U+0000, as a path: PostgreSQL text cannot store it (SQLite can). */
function nulPath(value: unknown, path: string): string | undefined {
  return holdsNul(value) ? firstNul(value, path) : undefined;
}

/** The walk that names where the NUL is, run only once holdsNul() found one. */
function firstNul(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, item] of Object.entries(value)) {
    const found = key.includes('\u0000') ? `${path}/${key}` : firstNul(item, `${path}/${key}`);
    if (found) return found;
  }
  return undefined;
}

const presentedKey = (request: FastifyRequest): string | undefined => {
  const header = request.headers.authorization;
  return header?.startsWith('Bearer ') ? header.slice(7).trim() : (request.headers['x-api-key'] as string | undefined);
};

/** Who acts, from where: the IP and user agent as the request gives them. */
function requestContextOf(request: FastifyRequest, actor: Actor): RequestContext {
  const context: RequestContext = { actor };
  const ip = request.ip;
  if (ip) context.ip = ip;
  const userAgent = request.headers['user-agent'];
  if (userAgent) context.userAgent = userAgent;
  return context;
}

/** The key's scope against the route's: the request's context when it may go on, the refusal otherwise. */
function admit(request: FastifyRequest, principal: Principal, needs: Scope): DomainError | undefined {
  if (!scopeAllows(principal.scope, needs)) {
    return new DomainError('forbidden', `This route needs a key with scope "${needs}" (this key has "${principal.scope}")`);
  }
  request.requestContext = requestContextOf(request, { type: 'api_key', id: principal.id, name: principal.name });
  return undefined;
}

const CONTEXT_FIELD = 'assentRequestContext';

function asDomainError(error: FastifyError): DomainError {
  if (error instanceof DomainError) return error;
  if (error.validation) {
    const fields = fieldErrors(error);
    return new DomainError('validation_failed', fields.map((f) => `${f.path} ${f.message}`).join('; '), fields);
  }
  const status = error.statusCode ?? 500;
  const byStatus: Record<number, ProblemCode> = {
    401: 'unauthorized',
    403: 'forbidden',
    404: 'not_found',
    405: 'method_not_allowed',
    413: 'payload_too_large',
    415: 'unsupported_media_type',
    429: 'rate_limited',
  };
  if (status === 400) {
    const json = error instanceof SyntaxError || /JSON/i.test(error.code ?? '') || /JSON/.test(error.message);
    return new DomainError(json ? 'bad_json' : 'validation_failed', error.message);
  }
  const code = byStatus[status];
  if (code) return new DomainError(code, error.message);
  if (status >= 400 && status < 500) return new DomainError('validation_failed', error.message);
  return new DomainError('internal', 'Something went wrong on our side; it has been logged');
}

export async function buildApp(ctx: AppContext): Promise<App> {
  const app = Fastify({
    loggerInstance: ctx.logger as FastifyBaseLogger,
    // Fastify's own request lines would print the raw URL; ours (onResponse below) do not.
    logController: new LogController({ disableRequestLogging: true }),
    // Each request's child logger is made only when a line is written (platform/logger.ts).
    childLoggerFactory: (logger, bindings, options) =>
      Object.keys(options).length === 0
        ? (new LazyChildLogger(
            logger as unknown as ConstructorParameters<typeof LazyChildLogger>[0],
            bindings,
          ) as unknown as FastifyBaseLogger)
        : logger.child(bindings, options),
    bodyLimit: ctx.config.bodyLimitBytes,
    ajv: { customOptions: { coerceTypes: false, allErrors: true, removeAdditional: false } },
    // Link tokens travel in the path.
    routerOptions: { maxParamLength: 1000 },
  }).withTypeProvider<TypeBoxTypeProvider>() as App;

  app.addSchema(ProblemSchema);
  await app.register(rateLimit, { global: false });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Assent API', version: '1', description: 'Consent ledger, contacts, purposes and contactability decisions' },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // The request context is made on first use: most requests to an authenticated route get theirs
  // from the key check, and public pages that never read it pay nothing.
  app.decorateRequest(CONTEXT_FIELD, null);
  app.decorateRequest('requestContext', {
    getter(this: FastifyRequest) {
      const self = this as FastifyRequest & { [CONTEXT_FIELD]: RequestContext | null };
      self[CONTEXT_FIELD] ??= requestContextOf(this, { type: 'person' });
      return self[CONTEXT_FIELD];
    },
    setter(this: FastifyRequest, value: RequestContext) {
      (this as FastifyRequest & { [CONTEXT_FIELD]: RequestContext | null })[CONTEXT_FIELD] = value;
    },
  } as never);

  // Each route that declares a scope gets the key check as its first onRequest hook (routes
  // without one are public). A plain callback, answered synchronously while the key is cached.
  // Fastify runs a plugin's own onRequest hooks (addHook in an encapsulated context) before a
  // route's: a plugin that registers scoped routes must not add an onRequest hook that acts
  // before the key is checked (none does; test/auth.test.ts checks every /v1 route refuses
  // without a key).
  const keyCheck =
    (needs: Scope): onRequestHookHandler =>
    (request, _reply, done) => {
      let principal: ReturnType<typeof authenticate>;
      try {
        principal = authenticate(ctx, presentedKey(request));
      } catch (error) {
        done(error as FastifyError);
        return;
      }
      if (principal instanceof Promise) principal.then((found) => done(admit(request, found, needs)), done);
      else done(admit(request, principal, needs));
    };
  app.addHook('onRoute', (route) => {
    const needs = route.config?.scope;
    if (!needs) return;
    const own = route.onRequest;
    // A new array: the HEAD twin of a GET route starts from a copy of the same options.
    route.onRequest = [keyCheck(needs), ...(own === undefined ? [] : Array.isArray(own) ? own : [own])] as never;
  });

  // Refused on both stores alike, before PostgreSQL would turn it into a 500. Hooks on every
  // request are plain callbacks: no promise per request on the hot path.
  app.addHook('preValidation', (request, _reply, done) => {
    const path = nulPath(request.body, '/body') ?? nulPath(request.query, '/querystring') ?? nulPath(request.params, '/params');
    if (path === undefined) {
      done();
      return;
    }
    done(
      new DomainError('validation_failed', `${path} holds a NUL character`, [{ path, message: 'must not hold a NUL character (U+0000)' }]),
    );
  });

  // Access log: route pattern and status only, never the raw URL (it may carry an email) nor the IP.
  // Not hooked at all when info is off (the level is set at boot).
  if (ctx.logger.isLevelEnabled('info')) {
    app.addHook('onResponse', (request, reply, done) => {
      request.log.info(
        {
          method: request.method,
          route: request.routeOptions.url ?? 'unmatched',
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime),
        },
        'request',
      );
      done();
    });
  }

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    const domain = asDomainError(error);
    if (domain.status >= 500) request.log.error({ err: error, route: request.routeOptions.url }, 'request failed');
    if (request.routeOptions.config?.page && !request.headers['content-type']?.includes('json')) {
      // People get a page they can read, never a stack trace.
      const lang = chooseLang((request.query as Record<string, unknown> | undefined)?.lang, null, request.headers['accept-language']);
      const key =
        domain.status === 429
          ? { title: 'rate_limited_title', text: 'rate_limited_text' }
          : domain.status >= 500
            ? { title: 'error_title', text: 'error_text' }
            : { title: 'invalid_title', text: 'invalid_text' };
      return sendMessagePage(ctx, reply, key, { lang, status: domain.status });
    }
    return reply.code(domain.status).type(PROBLEM).send(toProblem(domain));
  });

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .type(PROBLEM)
      .send(toProblem(new DomainError('route_not_found', `There is no route ${request.method} ${request.url.split('?')[0]}`))),
  );

  app.get('/healthz', { schema: { hide: true, response: { 200: Type.Object({ status: Type.String() }) } } }, async () => ({
    status: 'ok',
  }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  channelRoutes(app, ctx);
  purposeRoutes(app, ctx);
  contactRoutes(app, ctx);
  governanceRoutes(app, ctx);
  suppressionRoutes(app, ctx);
  consentRoutes(app, ctx);
  messagingRoutes(app, ctx);
  messageRoutes(app, ctx);
  formApiRoutes(app, ctx);
  segmentRoutes(app, ctx);
  campaignRoutes(app, ctx);
  exportRoutes(app, ctx);
  webhookRoutes(app, ctx);
  // Public pages take HTML form posts; the API keeps to JSON.
  await app.register(async (pages) => {
    await pages.register(formbody, { bodyLimit: 65_536 });
    collectionRoutes(pages as App, ctx);
    await formPageRoutes(pages as App, ctx);
  });
  // Provider callbacks: signed raw JSON bodies, their own parser.
  await hookRoutes(app, ctx);
  // CSV imports: the body is a stream, with its own parser and size limit.
  await importRoutes(app, ctx);

  await app.ready();
  return app;
}

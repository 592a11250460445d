// Shared pieces of the HTTP edge: the typed app, common schemas, the request context.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import { type TSchema, Type } from 'typebox';
import type { RequestContext } from './context.ts';

export type Scope = 'read' | 'write' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The least API key scope a route needs; routes without one are public. */
    scope?: Scope;
    /** A public HTML page: errors are answered as a page, not problem+json. */
    page?: boolean;
  }
  interface FastifyRequest {
    requestContext: RequestContext;
  }
}

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression<RawServerDefault>,
  RawReplyDefaultExpression<RawServerDefault>,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export const KEY_PATTERN = '^[a-z0-9][a-z0-9_-]*$';
export const Key = Type.String({ pattern: KEY_PATTERN, minLength: 1, maxLength: 64 });

export const Localized = Type.Object(
  { fr: Type.Optional(Type.String({ maxLength: 2000 })), en: Type.Optional(Type.String({ maxLength: 2000 })) },
  { additionalProperties: false },
);

export const DateTime = Type.String({ format: 'date-time', maxLength: 40 });
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String(),
    errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
  },
  { $id: 'Problem' },
);

export const problemRef = Type.Unsafe({ $ref: 'Problem#' });

/** The 4xx answers every authenticated route may give. */
export const problems = (...statuses: number[]) => Object.fromEntries([400, 401, 403, 422, ...statuses].map((s) => [s, problemRef]));

export const ListOf = <T extends TSchema>(item: T) => Type.Object({ items: Type.Array(item), nextCursor: Nullable(Type.String()) });

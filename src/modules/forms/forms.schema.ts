import { Type } from 'typebox';
import { Key, Nullable } from '../../platform/http.ts';

export const formFields = ['email', 'phone', 'firstName', 'lastName'] as const;
export type FormField = (typeof formFields)[number];

const Url = Type.String({ format: 'uri', pattern: '^https?://', maxLength: 2000 });
/** An origin as browsers send it: scheme, host and port, nothing after. */
const Origin = Type.String({ pattern: '^https?://[^/?#\\s]+$', maxLength: 300 });

const FormPurpose = Type.Object(
  {
    purpose: Key,
    channels: Type.Array(Key, { minItems: 1, maxItems: 20, uniqueItems: true }),
  },
  { additionalProperties: false },
);

const definition = {
  title: Type.String({ minLength: 1, maxLength: 200 }),
  locale: Type.Union([Type.Literal('fr'), Type.Literal('en')]),
  fields: Type.Array(Type.Union(formFields.map((f) => Type.Literal(f))), { minItems: 1, uniqueItems: true }),
  purposes: Type.Array(FormPurpose, { maxItems: 20 }),
  termsUrl: Type.Optional(Nullable(Url)),
  redirectUrl: Type.Optional(Nullable(Url)),
  allowedOrigins: Type.Optional(Type.Array(Origin, { maxItems: 20, uniqueItems: true })),
};

export const CreateFormBody = Type.Object({ key: Key, ...definition }, { additionalProperties: false });

/** A PUT replaces the whole definition (and makes a new version); the key, if given, must be the path's. */
export const UpdateFormBody = Type.Object({ key: Type.Optional(Key), ...definition }, { additionalProperties: false });

export const FormSchema = Type.Object({
  key: Type.String(),
  version: Type.Integer(),
  title: Type.String(),
  locale: Type.String(),
  fields: Type.Array(Type.String()),
  purposes: Type.Array(Type.Object({ purpose: Type.String(), channels: Type.Array(Type.String()) })),
  termsUrl: Nullable(Type.String()),
  redirectUrl: Nullable(Type.String()),
  allowedOrigins: Type.Array(Type.String()),
  links: Type.Object({ hosted: Type.String(), embedScript: Type.String() }),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

export const FormKeyParams = Type.Object({ key: Key });

/** Query of the public page: other parameters (utm_source…) are ignored, never refused. */
export const FormPageQuery = Type.Object({
  lang: Type.Optional(Type.String({ maxLength: 5 })),
  embed: Type.Optional(Type.String({ maxLength: 5 })),
  page: Type.Optional(Type.String({ maxLength: 2000 })),
});

export const SubmissionResultSchema = Type.Object({
  contactId: Type.String(),
  events: Type.Array(Type.String()),
  pending: Type.Array(Type.String()),
});

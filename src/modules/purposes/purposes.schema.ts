import { Type } from 'typebox';
import { Key, Localized, Nullable } from '../../platform/http.ts';
import { legalBases } from './purposes.service.ts';

const LegalBasisSchema = Type.Union(legalBases.map((b) => Type.Literal(b)));
const Url = Type.String({ format: 'uri', pattern: '^https?://', maxLength: 2000 });
const Partner = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 200 }), url: Type.Optional(Url) },
  { additionalProperties: false },
);
const Expiry = Type.Object(
  { afterDays: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 36500 }))) },
  { additionalProperties: false },
);
const Channels = Type.Array(Key, { minItems: 1, maxItems: 20, uniqueItems: true });

export const PurposeSchema = Type.Object({
  key: Type.String(),
  version: Type.Integer(),
  title: Localized,
  description: Localized,
  infoUrl: Nullable(Type.String()),
  channels: Type.Array(Type.String()),
  legalBasis: Type.String(),
  doubleOptIn: Type.Boolean(),
  expiry: Type.Object({ afterDays: Nullable(Type.Integer()) }),
  partner: Nullable(Type.Object({ name: Type.String(), url: Type.Optional(Type.String()) })),
  retentionDays: Nullable(Type.Integer()),
  recipients: Type.Array(Type.String()),
  builtin: Type.Boolean(),
  wordingHash: Type.String(),
});

export const PurposeVersionSchema = Type.Object({
  purpose: Type.String(),
  version: Type.Integer(),
  title: Localized,
  description: Localized,
  infoUrl: Nullable(Type.String()),
  wordingHash: Type.String(),
  createdAt: Type.String(),
});

const RequiredTitle = Type.Object(
  { fr: Type.Optional(Type.String({ minLength: 1, maxLength: 300 })), en: Type.Optional(Type.String({ minLength: 1, maxLength: 300 })) },
  { additionalProperties: false, minProperties: 1 },
);

export const CreatePurposeBody = Type.Object(
  {
    key: Key,
    title: RequiredTitle,
    description: Type.Optional(Localized),
    infoUrl: Type.Optional(Nullable(Url)),
    channels: Channels,
    legalBasis: Type.Optional(LegalBasisSchema),
    doubleOptIn: Type.Optional(Type.Boolean()),
    expiry: Type.Optional(Expiry),
    partner: Type.Optional(Nullable(Partner)),
    retentionDays: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 36500 }))),
    recipients: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 50 })),
  },
  { additionalProperties: false },
);

export const UpdatePurposeBody = Type.Object(
  {
    title: Type.Optional(RequiredTitle),
    description: Type.Optional(Localized),
    infoUrl: Type.Optional(Nullable(Url)),
    channels: Type.Optional(Channels),
    legalBasis: Type.Optional(LegalBasisSchema),
    doubleOptIn: Type.Optional(Type.Boolean()),
    expiry: Type.Optional(Expiry),
    partner: Type.Optional(Nullable(Partner)),
    retentionDays: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 36500 }))),
    recipients: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 50 })),
  },
  { additionalProperties: false },
);

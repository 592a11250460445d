import { Type } from 'typebox';
import { Key, Nullable } from '../../platform/http.ts';
import { ConsentEventSchema } from '../consents/consents.schema.ts';
import { ContactSchema } from '../contacts/index.ts';
import { exportFormats, exportKinds } from './exports.service.ts';

// The access export shows a contact and its events as the API does, minus what it gives apart
// (attributes with their purpose) or what is the ledger's plumbing (the chain link, idempotency).
const { attributes: _attributes, erasedAt: _erasedAt, ...contactProperties } = ContactSchema.properties;
const { contactId: _contactId, idempotencyKey: _idempotencyKey, prevHash: _prevHash, ...eventProperties } = ConsentEventSchema.properties;

export const ExportParams = Type.Object({ kind: Type.Union(exportKinds.map((k) => Type.Literal(k))) });

export const ExportQuery = Type.Object(
  {
    format: Type.Optional(
      Type.Union(
        exportFormats.map((f) => Type.Literal(f)),
        { default: 'csv' },
      ),
    ),
    segment: Type.Optional(Key),
  },
  { additionalProperties: false },
);

/** The streamed body, for the OpenAPI document (a stream is never serialised). */
export const ExportBody = {
  description: 'CSV (RFC 4180, UTF-8, header row) or JSON Lines, streamed',
  content: {
    'text/csv': { schema: Type.String() },
    'application/x-ndjson': { schema: Type.String() },
  },
};

export const AccessQuery = Type.Object(
  {
    format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('html')])),
    lang: Type.Optional(Type.Union([Type.Literal('fr'), Type.Literal('en')])),
  },
  { additionalProperties: false },
);

const Localized = Type.Object({ fr: Type.Optional(Type.String()), en: Type.Optional(Type.String()) });

export const AccessExportSchema = Type.Object({
  generatedAt: Type.String(),
  controller: Type.Object({ name: Type.String(), address: Type.String() }),
  contact: Type.Object(contactProperties),
  attributes: Type.Array(
    Type.Object({
      key: Type.String(),
      value: Type.Union([Type.String(), Type.Number(), Type.Boolean()]),
      type: Nullable(Type.String()),
      purpose: Nullable(Type.String()),
      retentionDays: Nullable(Type.Integer()),
    }),
  ),
  purposes: Type.Array(
    Type.Object({
      key: Type.String(),
      version: Type.Integer(),
      title: Localized,
      description: Localized,
      legalBasis: Type.String(),
      retentionDays: Nullable(Type.Integer()),
      recipients: Type.Array(Type.String()),
      partner: Nullable(Type.Object({ name: Type.String(), url: Type.Optional(Type.String()) })),
      infoUrl: Nullable(Type.String()),
    }),
  ),
  consents: Type.Array(
    Type.Object({
      purpose: Type.String(),
      channel: Type.String(),
      status: Type.String(),
      since: Type.String(),
      expiresAt: Nullable(Type.String()),
      confirmed: Type.Boolean(),
      purposeVersion: Type.Integer(),
      proofGrade: Nullable(Type.String()),
      lastEventId: Type.String(),
    }),
  ),
  events: Type.Array(
    Type.Object({
      ...eventProperties,
      wording: Type.Object({
        language: Type.String(),
        title: Type.String(),
        description: Type.String(),
        infoUrl: Nullable(Type.String()),
        wordingHash: Nullable(Type.String()),
        textShown: Nullable(Type.String()),
      }),
    }),
  ),
  deliveries: Type.Array(
    Type.Object({
      campaign: Type.String(),
      campaignName: Nullable(Type.String()),
      channel: Nullable(Type.String()),
      step: Type.Integer(),
      template: Type.String(),
      status: Type.String(),
      createdAt: Type.String(),
      sentAt: Nullable(Type.String()),
      clickedAt: Nullable(Type.String()),
      confirmedAt: Nullable(Type.String()),
      unsubscribedAt: Nullable(Type.String()),
      bouncedAt: Nullable(Type.String()),
    }),
  ),
  messages: Type.Array(
    Type.Object({
      id: Type.String(),
      kind: Type.String(),
      channel: Type.String(),
      template: Type.String(),
      purpose: Nullable(Type.String()),
      status: Type.String(),
      createdAt: Type.String(),
      sentAt: Nullable(Type.String()),
    }),
  ),
  suppressions: Type.Array(
    Type.Object({
      channel: Type.String(),
      address: Type.String(),
      suppressed: Type.Boolean(),
      reasons: Type.Array(Type.String()),
      since: Nullable(Type.String()),
    }),
  ),
});

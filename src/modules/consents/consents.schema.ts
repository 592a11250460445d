import { Type } from 'typebox';
import { DateTime, Key, Localized, Nullable } from '../../platform/http.ts';
import { actionsByVerb, sourceTypes } from './consents.state.ts';

const verbs = [...Object.keys(actionsByVerb), ...Object.values(actionsByVerb)];

export const EvidenceInput = Type.Object(
  {
    ip: Type.Optional(Type.String({ maxLength: 64 })),
    userAgent: Type.Optional(Type.String({ maxLength: 1000 })),
    url: Type.Optional(Type.String({ maxLength: 2000 })),
    text: Type.Optional(Type.String({ maxLength: 10000 })),
    method: Type.Optional(Type.String({ maxLength: 100 })),
    locale: Type.Optional(Type.String({ pattern: '^[a-z]{2}(-[A-Z]{2})?$' })),
  },
  { additionalProperties: false },
);

export const ConsentBody = Type.Object(
  {
    contactId: Type.Optional(Type.String({ pattern: '^[0-9A-HJKMNP-TV-Z]{26}$' })),
    email: Type.Optional(Type.String({ maxLength: 254 })),
    purpose: Key,
    channel: Key,
    action: Type.Union(verbs.map((v) => Type.Literal(v))),
    source: Type.Optional(
      Type.Object(
        {
          type: Type.Union(sourceTypes.filter((t) => t !== 'system').map((t) => Type.Literal(t))),
          ref: Type.Optional(Nullable(Type.String({ maxLength: 300 }))),
        },
        { additionalProperties: false },
      ),
    ),
    evidence: Type.Optional(EvidenceInput),
    occurredAt: Type.Optional(DateTime),
    idempotencyKey: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const ConsentEventSchema = Type.Object({
  id: Type.String(),
  contactId: Type.String(),
  seq: Type.Integer(),
  purpose: Type.String(),
  purposeVersion: Type.Integer(),
  channel: Type.String(),
  action: Type.String(),
  status: Type.String(),
  legalBasis: Type.String(),
  source: Type.Object({ type: Type.String(), ref: Nullable(Type.String()) }),
  evidence: Type.Record(Type.String(), Type.Unknown()),
  expiresAt: Nullable(Type.String()),
  occurredAt: Type.String(),
  recordedAt: Type.String(),
  idempotencyKey: Nullable(Type.String()),
  prevHash: Type.String(),
  hash: Type.String(),
});

export const ConsentStateSchema = Type.Object({
  purpose: Type.String(),
  channel: Type.String(),
  status: Type.String(),
  since: Nullable(Type.String()),
  expiresAt: Nullable(Type.String()),
  confirmed: Type.Boolean(),
  purposeVersion: Nullable(Type.Integer()),
  lastEventId: Nullable(Type.String()),
  proofGrade: Nullable(Type.String()),
});

export const ChainBreakSchema = Type.Object({
  contactId: Type.String(),
  eventId: Nullable(Type.String()),
  seq: Nullable(Type.Integer()),
  reason: Type.String(),
});

export const ProofSchema = Type.Object({
  contactId: Type.String(),
  erased: Type.Boolean(),
  generatedAt: Type.String(),
  events: Type.Array(ConsentEventSchema),
  purposeVersions: Type.Array(
    Type.Object({
      purpose: Type.String(),
      version: Type.Integer(),
      title: Localized,
      description: Localized,
      infoUrl: Nullable(Type.String()),
      wordingHash: Type.String(),
      createdAt: Type.String(),
    }),
  ),
  chain: Type.Object({
    ok: Type.Boolean(),
    events: Type.Integer(),
    head: Type.String(),
    firstBroken: Type.Optional(ChainBreakSchema),
  }),
});

export const VerifySchema = Type.Object({
  ok: Type.Boolean(),
  contacts: Type.Integer(),
  events: Type.Integer(),
  checkpoints: Type.Integer(),
  firstBroken: Type.Optional(ChainBreakSchema),
});

const DecisionItem = {
  contactId: Type.Optional(Type.String({ maxLength: 64 })),
  email: Type.Optional(Type.String({ maxLength: 254 })),
  phone: Type.Optional(Type.String({ maxLength: 40 })),
  purpose: Key,
  channel: Key,
  at: Type.Optional(DateTime),
};

export const DecisionQuery = Type.Object(DecisionItem, { additionalProperties: false });

export const DecisionBatchBody = Type.Object(
  { items: Type.Array(Type.Object(DecisionItem, { additionalProperties: false }), { minItems: 1, maxItems: 1000 }) },
  { additionalProperties: false },
);

export const DecisionSchema = Type.Object({
  allowed: Type.Boolean(),
  basis: Nullable(Type.String()),
  reason: Type.String(),
  evidenceEventId: Nullable(Type.String()),
  expiresAt: Nullable(Type.String()),
});

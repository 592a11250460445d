import { Type } from 'typebox';
import { Key, Nullable } from '../../platform/http.ts';

const Source = Type.String({ minLength: 1, maxLength: 100_000 });
const EmailVariant = Type.Object(
  { subject: Type.String({ minLength: 1, maxLength: 500 }), html: Source, text: Source },
  { additionalProperties: false },
);
const SmsVariant = Type.Object({ body: Type.String({ minLength: 1, maxLength: 1600 }) }, { additionalProperties: false });
const Variants = Type.Object(
  { fr: Type.Optional(Type.Union([EmailVariant, SmsVariant])), en: Type.Optional(Type.Union([EmailVariant, SmsVariant])) },
  { additionalProperties: false, minProperties: 1 },
);
const TemplateFields = {
  channel: Type.Union([Type.Literal('email'), Type.Literal('sms')]),
  category: Type.Union([Type.Literal('transactional'), Type.Literal('marketing')]),
  variants: Variants,
};

export const CreateTemplateBody = Type.Object({ key: Key, ...TemplateFields }, { additionalProperties: false });
export const UpdateTemplateBody = Type.Object(TemplateFields, { additionalProperties: false });

export const TemplateSchema = Type.Object({
  key: Type.String(),
  channel: Type.String(),
  category: Type.String(),
  variants: Type.Record(Type.String(), Type.Record(Type.String(), Type.String())),
  builtin: Type.Boolean(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

export const PreviewBody = Type.Object(
  {
    contactId: Type.Optional(Type.String({ pattern: '^[0-9A-HJKMNP-TV-Z]{26}$' })),
    locale: Type.Optional(Type.Union([Type.Literal('fr'), Type.Literal('en')])),
    campaign: Type.Optional(
      Type.Object(
        { deadline: Type.Optional(Type.String({ maxLength: 40 })), name: Type.Optional(Type.String({ maxLength: 200 })) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const PreviewSchema = Type.Object({
  locale: Type.String(),
  subject: Type.Optional(Type.String()),
  html: Type.Optional(Type.String()),
  text: Type.Optional(Type.String()),
  body: Type.Optional(Type.String()),
});

const MessageFields = {
  id: Type.String(),
  contactId: Nullable(Type.String()),
  kind: Type.String(),
  channel: Type.String(),
  to: Nullable(Type.String()),
  templateKey: Type.String(),
  purpose: Nullable(Type.String()),
  locale: Type.String(),
  subject: Nullable(Type.String()),
  status: Type.String(),
  attempts: Type.Integer(),
  lastError: Nullable(Type.String()),
  messageId: Type.String(),
  createdAt: Type.String(),
  sentAt: Nullable(Type.String()),
};
export const MessageSchema = Type.Object(MessageFields);
export const MessageDetailSchema = Type.Object({
  ...MessageFields,
  html: Nullable(Type.String()),
  text: Type.String(),
  headers: Type.Record(Type.String(), Type.String()),
});

export const OutboxQuery = Type.Object(
  {
    contactId: Type.Optional(Type.String({ maxLength: 64 })),
    status: Type.Optional(Type.Union(['queued', 'sending', 'sent', 'stored', 'failed', 'cancelled'].map((s) => Type.Literal(s)))),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$' })),
  },
  { additionalProperties: false },
);

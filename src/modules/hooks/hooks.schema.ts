// The JSON of the provider callbacks (the contract adapters translate provider payloads into).
import { Type } from 'typebox';
import { DateTime } from '../../platform/http.ts';

export const MAX_EMAIL_EVENTS = 1000;

export const EmailEventSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('bounce'), Type.Literal('complaint')]),
    email: Type.String({ minLength: 1, maxLength: 320 }),
    bounceType: Type.Optional(Type.Union([Type.Literal('hard'), Type.Literal('soft')])),
    messageId: Type.Optional(Type.String({ minLength: 1, maxLength: 998 })),
    occurredAt: Type.Optional(DateTime),
  },
  { additionalProperties: false },
);

export const EmailEventsBody = Type.Object(
  { events: Type.Array(EmailEventSchema, { maxItems: MAX_EMAIL_EVENTS }) },
  { additionalProperties: false },
);

export const EmailEventsAnswer = Type.Object({
  processed: Type.Integer(),
  suppressed: Type.Integer(),
  ignored: Type.Integer(),
});

export const InboundSmsBody = Type.Object(
  {
    from: Type.String({ minLength: 1, maxLength: 40 }),
    to: Type.String({ minLength: 1, maxLength: 40 }),
    text: Type.String({ maxLength: 2000 }),
    receivedAt: Type.Optional(DateTime),
    id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const InboundSmsAnswer = Type.Object({
  action: Type.Union([Type.Literal('withdrawn'), Type.Literal('confirmed'), Type.Literal('ignored')]),
});

export const SmsStatusBody = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 200 }),
    reference: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
    status: Type.Union([Type.Literal('delivered'), Type.Literal('failed'), Type.Literal('undelivered')]),
    error: Type.Optional(Type.String({ maxLength: 1000 })),
  },
  { additionalProperties: false },
);

export const SmsStatusAnswer = Type.Object({ matched: Type.Boolean() });

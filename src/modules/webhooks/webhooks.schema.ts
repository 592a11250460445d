import { Type } from 'typebox';
import { Nullable } from '../../platform/http.ts';
import { webhookEventTypes } from './webhooks.service.ts';

const EventType = Type.String({ minLength: 1, maxLength: 100, description: `One of ${webhookEventTypes.join(', ')}` });

export const CreateWebhookBody = Type.Object(
  {
    url: Type.String({
      minLength: 1,
      maxLength: 2000,
      description: 'An absolute http(s) URL that is not this server',
      examples: ['https://crm.example/assent'],
    }),
    events: Type.Array(EventType, { minItems: 1, maxItems: 20, examples: [['consent.changed', 'contact.erased']] }),
    secret: Type.Optional(
      Type.String({
        minLength: 16,
        maxLength: 200,
        description: 'The signing secret; when omitted one is generated and returned once, in this answer',
      }),
    ),
  },
  { additionalProperties: false },
);

export const WebhookIdParams = Type.Object({ id: Type.String({ pattern: '^[0-9A-HJKMNP-TV-Z]{26}$' }) });

/** A webhook as listed: the secret is never shown again. */
export const WebhookSchema = Type.Object({
  id: Type.String(),
  url: Type.String(),
  events: Type.Array(Type.String()),
  createdAt: Type.String(),
});

/** The answer to its creation: the one time the secret is shown. */
export const CreatedWebhookSchema = Type.Object({
  id: Type.String(),
  url: Type.String(),
  events: Type.Array(Type.String()),
  createdAt: Type.String(),
  secret: Type.String({ description: 'Shown once: keep it to verify the Assent-Signature header' }),
});

export const WebhookDeliverySchema = Type.Object({
  id: Type.String(),
  eventId: Type.String(),
  eventType: Type.String(),
  status: Type.String({ description: 'pending | delivered | failed | cancelled' }),
  attempts: Type.Integer(),
  lastStatus: Nullable(Type.Integer()),
  lastError: Nullable(Type.String()),
  nextAttemptAt: Nullable(Type.String()),
  createdAt: Type.String(),
  deliveredAt: Nullable(Type.String()),
  history: Type.Array(
    Type.Object({ at: Type.String(), status: Nullable(Type.Integer()), error: Nullable(Type.String()), ms: Type.Integer() }),
  ),
});

export const DeliveriesQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$' })),
  },
  { additionalProperties: false },
);

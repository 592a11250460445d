import { Type } from 'typebox';
import { Nullable } from '../../platform/http.ts';
import { contactKinds, fieldTypes, lifecycles } from './contacts.service.ts';

const Str = (max: number) => Type.String({ maxLength: max });
const AttributeValue = Type.Union([Type.String({ maxLength: 2000 }), Type.Number(), Type.Boolean(), Type.Null()]);
const Locale = Type.String({ pattern: '^[a-z]{2}(-[A-Z]{2})?$' });

const contactFields = {
  email: Type.Optional(Nullable(Str(254))),
  phone: Type.Optional(Nullable(Str(40))),
  firstName: Type.Optional(Nullable(Str(100))),
  lastName: Type.Optional(Nullable(Str(100))),
  locale: Type.Optional(Nullable(Locale)),
  kind: Type.Optional(Type.Union(contactKinds.map((k) => Type.Literal(k)))),
  lifecycle: Type.Optional(Type.Union(lifecycles.map((k) => Type.Literal(k)))),
  lastPurchaseAt: Type.Optional(Nullable(Str(40))),
  source: Type.Optional(Nullable(Str(200))),
  attributes: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), AttributeValue, { maxProperties: 100 })),
};

export const CreateContactBody = Type.Object(contactFields, { additionalProperties: false });
export const UpdateContactBody = Type.Object(contactFields, { additionalProperties: false, minProperties: 1 });

export const ContactSchema = Type.Object({
  id: Type.String(),
  email: Nullable(Type.String()),
  phone: Nullable(Type.String()),
  firstName: Nullable(Type.String()),
  lastName: Nullable(Type.String()),
  locale: Nullable(Type.String()),
  kind: Type.String(),
  lifecycle: Type.String(),
  lastPurchaseAt: Nullable(Type.String()),
  source: Nullable(Type.String()),
  attributes: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()])),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  lastInteractionAt: Nullable(Type.String()),
  erasedAt: Nullable(Type.String()),
});

export const ContactQuery = Type.Object(
  {
    email: Type.Optional(Str(254)),
    phone: Type.Optional(Str(40)),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$' })),
  },
  { additionalProperties: false },
);

export const FieldSchema = Type.Object({
  key: Type.String(),
  type: Type.String(),
  purpose: Type.String(),
  retentionDays: Type.Integer(),
  createdAt: Type.String(),
});

export const CreateFieldBody = Type.Object(
  {
    key: Type.String({ pattern: '^[a-zA-Z][a-zA-Z0-9_]*$', maxLength: 64 }),
    type: Type.Union(fieldTypes.map((t) => Type.Literal(t))),
    purpose: Type.String({ minLength: 1, maxLength: 64 }),
    retentionDays: Type.Integer({ minimum: 1, maximum: 36500 }),
  },
  { additionalProperties: false },
);

import { Type } from 'typebox';
import { Key } from '../../platform/http.ts';

/**
 * The filter tree is checked by the segments module itself (segments.filter.ts), which names
 * every fault by its path; here it is only described.
 */
const FilterSchema = Type.Unknown({
  description:
    'A JSON tree: { "all": [...] }, { "any": [...] }, { "not": {...} }, a field condition { "field", "op", "value" } ' +
    '(fields lifecycle, kind, source, createdAt, lastInteractionAt, lastPurchaseAt, email, phone, locale, attributes.<key>; ' +
    'ops eq, neq, in, gt, lt, exists, contains), a consent condition { "consent": { "purpose", "channel", "status"?: [...], ' +
    '"proofGrade"?: [...] } } ("none" = nothing recorded) or a campaign condition { "campaign": { "key", "event": ' +
    'received | clicked | confirmed | unsubscribed | bounced } }. At most 10 levels and 200 conditions.',
  examples: [{ consent: { purpose: 'commercial-email', channel: 'email', status: ['none', 'withdrawn'] } }],
});

const Name = Type.String({ minLength: 1, maxLength: 200 });

export const CreateSegmentBody = Type.Object({ key: Key, name: Name, filter: FilterSchema }, { additionalProperties: false });

/** A PUT replaces the name and the filter; the key, if given, must be the path's. */
export const UpdateSegmentBody = Type.Object(
  { key: Type.Optional(Key), name: Name, filter: FilterSchema },
  { additionalProperties: false },
);

export const PreviewSegmentBody = Type.Object({ filter: FilterSchema }, { additionalProperties: false });

export const SegmentKeyParams = Type.Object({ key: Key });

export const SegmentContactsQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$' })),
  },
  { additionalProperties: false },
);

export const SegmentSchema = Type.Object({
  key: Type.String(),
  name: Type.String(),
  filter: Type.Unknown(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

export const CountSchema = Type.Object({ count: Type.Integer() });

/** A contact as GET /v1/contacts/{id} answers it. */
export { ContactSchema as SegmentContactSchema } from '../contacts/index.ts';

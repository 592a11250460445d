import { Type } from 'typebox';
import { DateTime, Key, Nullable } from '../../platform/http.ts';

const fields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  segment: Key,
  purposes: Type.Array(Key, { minItems: 1, maxItems: 20, uniqueItems: true }),
  channel: Type.Union([Type.Literal('email'), Type.Literal('sms')]),
  templates: Type.Object({ first: Type.Optional(Key), reminder: Type.Optional(Key) }, { additionalProperties: false }),
  startAt: DateTime,
  cadenceDays: Type.Integer({ minimum: 1, maximum: 365 }),
  deadline: DateTime,
  maxSends: Nullable(Type.Integer({ minimum: 1, maximum: 52 })),
  confirmation: Type.Union([Type.Literal('button'), Type.Literal('landing')]),
  atDeadline: Type.Union([Type.Literal('report'), Type.Literal('purge')]),
  addNewcomers: Type.Boolean(),
};

export const CreateCampaignBody = Type.Object(
  {
    key: Key,
    name: fields.name,
    segment: fields.segment,
    purposes: fields.purposes,
    channel: fields.channel,
    templates: Type.Optional(fields.templates),
    startAt: fields.startAt,
    cadenceDays: Type.Optional(fields.cadenceDays),
    deadline: fields.deadline,
    maxSends: Type.Optional(fields.maxSends),
    confirmation: Type.Optional(fields.confirmation),
    atDeadline: Type.Optional(fields.atDeadline),
    addNewcomers: Type.Optional(fields.addNewcomers),
  },
  { additionalProperties: false },
);

export const PatchCampaignBody = Type.Object(
  {
    name: Type.Optional(fields.name),
    segment: Type.Optional(fields.segment),
    purposes: Type.Optional(fields.purposes),
    channel: Type.Optional(fields.channel),
    templates: Type.Optional(fields.templates),
    startAt: Type.Optional(fields.startAt),
    cadenceDays: Type.Optional(fields.cadenceDays),
    deadline: Type.Optional(fields.deadline),
    maxSends: Type.Optional(fields.maxSends),
    confirmation: Type.Optional(fields.confirmation),
    atDeadline: Type.Optional(fields.atDeadline),
    addNewcomers: Type.Optional(fields.addNewcomers),
  },
  { additionalProperties: false, minProperties: 1 },
);

const Counts = Type.Record(Type.String(), Type.Integer());

export const LaunchReportSchema = Type.Object({
  audience: Type.Integer(),
  excluded: Type.Integer(),
  excludedByReason: Counts,
  launchedAt: Type.String(),
});

export const CampaignSchema = Type.Object({
  key: Type.String(),
  name: Type.String(),
  segment: Type.String(),
  purposes: Type.Array(Type.String()),
  channel: Type.String(),
  templates: Type.Object({ first: Type.String(), reminder: Type.String() }),
  startAt: Type.String(),
  cadenceDays: Type.Integer(),
  deadline: Type.String(),
  maxSends: Nullable(Type.Integer()),
  confirmation: Type.String(),
  atDeadline: Type.String(),
  addNewcomers: Type.Boolean(),
  status: Type.String(),
  launchReport: Nullable(LaunchReportSchema),
  launchedAt: Nullable(Type.String()),
  closedAt: Nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

const StepCounts = {
  audience: Type.Integer(),
  queued: Type.Integer(),
  sent: Type.Integer(),
  failed: Type.Integer(),
  cancelled: Type.Integer(),
  cancelledByReason: Counts,
  clicked: Type.Integer(),
  confirmed: Type.Integer(),
  unsubscribed: Type.Integer(),
  bounced: Type.Integer(),
  pending: Type.Integer(),
};

export const StatsSchema = Type.Object({
  campaign: Type.String(),
  status: Type.String(),
  totals: Type.Object({
    excluded: Type.Integer(),
    excludedByReason: Counts,
    ...StepCounts,
  }),
  steps: Type.Array(Type.Object({ step: Type.Integer(), dueAt: Type.String(), template: Type.String(), ...StepCounts })),
  daily: Type.Array(
    Type.Object({
      date: Type.String(),
      sent: Type.Integer(),
      clicked: Type.Integer(),
      confirmed: Type.Integer(),
      unsubscribed: Type.Integer(),
      bounced: Type.Integer(),
    }),
  ),
});

export const CampaignKeyParams = Type.Object({ key: Key });
export const PurgeBody = Type.Object({ dryRun: Type.Optional(Type.Boolean()) }, { additionalProperties: false });

import { Type } from 'typebox';
import { Nullable } from '../../platform/http.ts';

const Flag = Type.Union([Type.Literal('true'), Type.Literal('false')]);

export const ImportQuery = Type.Object(
  {
    map: Type.Optional(
      Type.Union([Type.String({ maxLength: 300 }), Type.Array(Type.String({ maxLength: 300 }), { maxItems: 200 })], {
        description:
          'A column mapping "<header name>=<target>" (repeat it): email, phone, firstName…, attributes.<key>, consent:<purpose>:<channel>[:at|:source|:wording|:ip|:doi_at], or - to ignore',
      }),
    ),
    ignoreUnknown: Type.Optional(Flag),
    onDuplicate: Type.Optional(Type.Union([Type.Literal('update'), Type.Literal('skip')])),
    dryRun: Type.Optional(Flag),
    force: Type.Optional(Flag),
    encoding: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('utf-8'), Type.Literal('windows-1252')])),
  },
  { additionalProperties: false },
);

export const ImportIdParams = Type.Object({ id: Type.String({ pattern: '^[0-9A-HJKMNP-TV-Z]{26}$' }) });

export const ImportAccepted = Type.Object({ id: Type.String(), status: Type.String() });

const Count = Type.Integer({ minimum: 0 });

const ReportSchema = Type.Object({
  rows: Count,
  encoding: Type.String(),
  delimiter: Type.String(),
  columns: Type.Record(Type.String(), Type.String()),
  ignored: Type.Array(Type.String()),
  warnings: Type.Array(Type.String()),
  events: Count,
  grades: Type.Object({ strong: Count, fair: Count, weak: Count }),
  consentsSuppressed: Count,
  consentsKept: Count,
  alreadyImported: Type.Optional(Type.Object({ id: Type.String(), completedAt: Nullable(Type.String()) })),
});

export const ImportSummarySchema = Type.Object({
  id: Type.String(),
  status: Type.Union([Type.Literal('running'), Type.Literal('completed'), Type.Literal('failed'), Type.Literal('interrupted')]),
  dryRun: Type.Boolean(),
  read: Count,
  written: Count,
  updated: Count,
  rejected: Count,
  skipped: Count,
  consents: Count,
  alreadyImported: Nullable(Type.String()),
  progress: Type.Object({ rows: Count, percent: Type.Integer({ minimum: 0, maximum: 100 }) }),
  report: Nullable(ReportSchema),
  error: Nullable(Type.String()),
  createdAt: Type.String(),
  completedAt: Nullable(Type.String()),
});

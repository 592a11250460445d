// The campaigns API: define, launch, pause/resume/cancel, stats, the non-responders report, purge.
import { Type } from 'typebox';
import type { AppContext } from '../../platform/context.ts';
import { type App, ListOf, problems } from '../../platform/http.ts';
import { CampaignKeyParams, CampaignSchema, CreateCampaignBody, PatchCampaignBody, PurgeBody, StatsSchema } from './campaigns.schema.ts';
import { createCampaign, getCampaign, launchCampaign, listCampaigns, patchCampaign, setCampaignStatus } from './campaigns.service.ts';
import { campaignStats, lastPurge, nonResponders, purgeCampaign } from './campaigns.stats.ts';

const tags = ['campaigns'];

const PurgeSchema = Type.Object({
  id: Type.Union([Type.String(), Type.Null()]),
  campaign: Type.String(),
  dryRun: Type.Boolean(),
  status: Type.String(),
  counts: Type.Object({
    nonResponders: Type.Integer(),
    erase: Type.Integer(),
    keptOtherBasis: Type.Integer(),
    keptByReason: Type.Record(Type.String(), Type.Integer()),
    alreadyErased: Type.Integer(),
  }),
  erased: Type.Integer(),
  startedAt: Type.String(),
  completedAt: Type.Union([Type.String(), Type.Null()]),
});

const ReportQuery = Type.Object({
  cursor: Type.Optional(Type.String({ pattern: '^[0-9A-HJKMNP-TV-Z]{26}$' })),
  limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$|^1000$', description: '1 to 1000 (default 100)' })),
});

const ReportSchema = Type.Object({
  campaign: Type.String(),
  status: Type.String(),
  deadline: Type.String(),
  closedAt: Type.Union([Type.String(), Type.Null()]),
  nonResponders: Type.Integer(),
  items: Type.Array(Type.Object({ contactId: Type.String(), sends: Type.Integer(), erased: Type.Boolean() })),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});

export function campaignRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/v1/campaigns',
    { config: { scope: 'read' }, schema: { tags, summary: 'List campaigns', response: { 200: ListOf(CampaignSchema), ...problems() } } },
    async () => ({ items: await listCampaigns(ctx), nextCursor: null }),
  );

  app.post(
    '/v1/campaigns',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        summary: 'Create a re-permission campaign (a draft)',
        body: CreateCampaignBody,
        response: { 201: CampaignSchema, ...problems(409) },
      },
    },
    async (request, reply) => reply.code(201).send(await createCampaign(ctx, request.body)),
  );

  app.get(
    '/v1/campaigns/:key',
    { config: { scope: 'read' }, schema: { tags, params: CampaignKeyParams, response: { 200: CampaignSchema, ...problems(404) } } },
    async (request) => getCampaign(ctx, request.params.key),
  );

  app.patch(
    '/v1/campaigns/:key',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        summary: 'Change a campaign (a launched one: name, templates, cadence, deadline, max sends, action at deadline)',
        params: CampaignKeyParams,
        body: PatchCampaignBody,
        response: { 200: CampaignSchema, ...problems(404, 409) },
      },
    },
    async (request) => patchCampaign(ctx, request.params.key, request.body),
  );

  app.post(
    '/v1/campaigns/:key/launch',
    {
      config: { scope: 'write' },
      schema: {
        tags,
        summary: 'Freeze the audience (exclusions with reasons) and start; step 1 goes at startAt',
        params: CampaignKeyParams,
        response: { 200: CampaignSchema, ...problems(404, 409) },
      },
    },
    async (request) => launchCampaign(ctx, request.params.key),
  );

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post(
      `/v1/campaigns/:key/${action}`,
      {
        config: { scope: 'write' },
        schema: {
          tags,
          summary: `${action[0]?.toUpperCase()}${action.slice(1)} a campaign`,
          params: CampaignKeyParams,
          response: { 200: CampaignSchema, ...problems(404, 409) },
        },
      },
      async (request) => setCampaignStatus(ctx, request.params.key, action),
    );
  }

  app.get(
    '/v1/campaigns/:key/stats',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'Counts per step, in total, and per day',
        params: CampaignKeyParams,
        response: { 200: StatsSchema, ...problems(404) },
      },
    },
    async (request) => campaignStats(ctx, request.params.key),
  );

  app.get(
    '/v1/campaigns/:key/report',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'The non-responders (paged)',
        params: CampaignKeyParams,
        querystring: ReportQuery,
        response: { 200: ReportSchema, ...problems(404) },
      },
    },
    async (request) => nonResponders(ctx, request.params.key, request.query.cursor, Number(request.query.limit ?? 100)),
  );

  app.post(
    '/v1/campaigns/:key/purge',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'After the deadline: erase the non-responders left without any legal basis ({ "dryRun": true } only counts)',
        params: CampaignKeyParams,
        body: Type.Optional(PurgeBody),
        response: { 200: PurgeSchema, ...problems(404, 409) },
      },
    },
    async (request) => purgeCampaign(ctx, request.requestContext, request.params.key, request.body?.dryRun ?? false),
  );

  app.get(
    '/v1/campaigns/:key/purge',
    {
      config: { scope: 'read' },
      schema: { tags, summary: 'The last purge’s report', params: CampaignKeyParams, response: { 200: PurgeSchema, ...problems(404) } },
    },
    async (request) => lastPurge(ctx, request.params.key),
  );
}

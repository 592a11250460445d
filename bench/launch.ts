// Launching a re-permission campaign on the 1,000,000-contact database: createCampaign then
// launchCampaign with startAt = now, i.e. the audience frozen (one INSERT … SELECT over the
// segment's condition with the exclusion CASE, then the counts of the launch report) and step 1
// enqueued (one INSERT … SELECT into deliveries), against a bare better-sqlite3
// INSERT INTO raw_deliveries (a table made like deliveries: same columns, constraint, indexes)
// SELECT … FROM contacts WHERE <the segment's consent condition> of the same contacts.
// Both run on one scratch copy of the bench database (the reusable file stays untouched), in
// alternating rounds, each round a new campaign key (ours) or a new campaign_key value (raw).
//
// Two segments: the issue's { consent: commercial-email × email, status none | withdrawn }
// (on the bench data every member withdrew, so the launch excludes them all and queues no one),
// and "no answer yet for a new purpose" (every contact a member, every member queued).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { closeContext, createContext } from '../src/boot.ts';
import { loadConfig } from '../src/config.ts';
import { createCampaign, launchCampaign } from '../src/modules/campaigns/index.ts';
import { createPurpose } from '../src/modules/purposes/purposes.service.ts';
import type { Filter } from '../src/modules/segments/index.ts';
import { createSegment } from '../src/modules/segments/segments.service.ts';
import { copyDatabase } from './append.ts';
import { fmtInt, fmtSeconds, log } from './common.ts';
import { DATA_DIR } from './dataset.ts';
import type { Measure } from './report.ts';
import { queryPlan, type StatementTime, timeStatements } from './sql-timer.ts';

export interface LaunchOptions {
  /** Alternating rounds per segment (raw, ours; ours, raw; …). */
  rounds: number;
}

interface Scenario {
  id: string;
  title: string;
  filter: Filter;
  purposes: string[];
  /** The same consent condition for the raw statement (contacts as c), and its parameters. */
  rawWhere: string;
  rawArgs: unknown[];
}

const NEW_PURPOSE = 'partner-offers';

const scenarios: Scenario[] = [
  {
    id: 'withdrawn',
    title: 'commercial-email × email: none or withdrawn',
    filter: { consent: { purpose: 'commercial-email', channel: 'email', status: ['none', 'withdrawn'] } },
    purposes: ['commercial-email'],
    rawWhere:
      'not exists (select 1 from consent_states cs where cs.contact_id = c.id and cs.purpose_key = ? and cs.channel_key = ? and cs.status not in (?))',
    rawArgs: ['commercial-email', 'email', 'withdrawn'],
  },
  {
    id: 'new-purpose',
    title: `${NEW_PURPOSE} × email: none (a new purpose nobody answered yet)`,
    filter: { consent: { purpose: NEW_PURPOSE, channel: 'email', status: ['none'] } },
    purposes: [NEW_PURPOSE],
    rawWhere: 'not exists (select 1 from consent_states cs where cs.contact_id = c.id and cs.purpose_key = ? and cs.channel_key = ?)',
    rawArgs: [NEW_PURPOSE, 'email'],
  },
];

interface Side {
  ms: number[];
}

export interface LaunchScenarioResult {
  scenario: Scenario;
  members: number;
  audience: number;
  excluded: Record<string, number>;
  queued: number;
  rawRows: number;
  ours: Side;
  raw: Side;
  /** Our time split by statement kind, summed over the measured rounds. */
  split: Record<string, number>;
  plans: { ours: Record<string, string[]>; raw: string[] };
}

export interface LaunchResult {
  scenarios: LaunchScenarioResult[];
  rounds: number;
  copyMs: number;
  contacts: number;
}

const DAY_MS = 86_400_000;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** What one of our statements does, for the split of the launch's time. */
function kindOf(sql: string): string {
  const s = sql.replace(/\s+/g, ' ').toLowerCase();
  if (s.startsWith('insert into "campaign_audience"')) return 'audience INSERT … SELECT';
  if (s.startsWith('insert into "deliveries"')) return 'step 1 INSERT … SELECT into deliveries';
  if (s.includes('from "campaign_audience"') && s.includes('group by')) return 'launch report counts';
  return 'other statements';
}

export async function benchLaunch(sourceFile: string, contacts: number, options: LaunchOptions): Promise<LaunchResult> {
  const scratch = join(DATA_DIR, 'scratch-launch.db');
  const clean = () => {
    for (const suffix of ['', '-wal', '-shm']) rmSync(scratch + suffix, { force: true });
  };
  clean();
  const copyMs = copyDatabase(sourceFile, scratch);
  log(`  scratch copy of the database made and flushed in ${fmtSeconds(copyMs)}`);

  const ctx = await createContext(loadConfig({ DATABASE_URL: `sqlite:${scratch}`, LOG_LEVEL: 'warn', SCHEDULER_INTERVAL_SECONDS: '0' }));
  const raw = new SqliteDatabase(scratch);
  const results: LaunchScenarioResult[] = [];
  try {
    // The raw connection has the app writer's settings (src/database.ts).
    raw.pragma('journal_mode = WAL');
    raw.pragma('synchronous = NORMAL');
    raw.pragma('foreign_keys = ON');
    raw.pragma('busy_timeout = 5000');
    // raw_deliveries: deliveries' own DDL (columns, unique constraint, indexes) under another name.
    const ddl = raw
      .prepare("select sql from sqlite_master where tbl_name = 'deliveries' and sql is not null order by type desc")
      .all() as Array<{ sql: string }>;
    for (const { sql } of ddl) raw.exec(sql.replace(/"deliveries/g, '"raw_deliveries'));
    const rawColumns = (raw.prepare("select name from pragma_table_info('raw_deliveries')").all() as Array<{ name: string }>).length;
    if (rawColumns === 0) throw new Error('bench launch: raw_deliveries was not created');

    await createPurpose(ctx, {
      key: NEW_PURPOSE,
      title: { fr: 'Offres de nos partenaires', en: 'Offers from our partners' },
      channels: ['email'],
      legalBasis: 'consent',
    });
    const checkpoint = () => raw.pragma('wal_checkpoint(TRUNCATE)');

    for (const scenario of scenarios) {
      const segment = `bench-launch-${scenario.id}`;
      await createSegment(ctx, { key: segment, name: scenario.title, filter: scenario.filter });
      const rawSql = `insert into raw_deliveries (campaign_key, step, contact_id, template, status, send_after, created_at)
        select ?, 1, c.id, 'first', 'queued', ?, ? from contacts c where c.erased_at is null and ${scenario.rawWhere}`;
      const rawInsert = raw.prepare(rawSql);
      // Warm-up (untimed): the segment counted once, which reads the tables both sides read.
      const members = (
        raw.prepare(`select count(*) as n from contacts c where c.erased_at is null and ${scenario.rawWhere}`).get(...scenario.rawArgs) as {
          n: number;
        }
      ).n;
      log(`  ${scenario.title}: ${fmtInt(members)} members`);

      const result: LaunchScenarioResult = {
        scenario,
        members,
        audience: 0,
        excluded: {},
        queued: 0,
        rawRows: 0,
        ours: { ms: [] },
        raw: { ms: [] },
        split: {},
        plans: { ours: {}, raw: queryPlan(raw, rawSql, ['plan', 'x', 'x', ...scenario.rawArgs]) },
      };
      const runOurs = async (r: number) => {
        const key = `bench-${scenario.id}-${r}`;
        const timer = timeStatements();
        let times: StatementTime[] = [];
        const started = performance.now();
        try {
          const now = Date.now();
          await createCampaign(ctx, {
            key,
            name: `Bench launch ${scenario.id} ${r}`,
            segment,
            purposes: scenario.purposes,
            channel: 'email',
            startAt: new Date(now).toISOString(),
            deadline: new Date(now + 30 * DAY_MS).toISOString(),
          });
          const campaign = await launchCampaign(ctx, key);
          const ms = performance.now() - started;
          times = timer.stop();
          const queued = raw.prepare('select queued from campaign_steps where campaign_key = ? and step = 1').get(key) as
            | { queued: number }
            | undefined;
          if (!campaign.launchReport || !queued) throw new Error(`bench launch: ${key} has no launch report or no step 1`);
          result.audience = campaign.launchReport.audience;
          result.excluded = campaign.launchReport.excludedByReason;
          result.queued = queued.queued;
          if (campaign.launchReport.audience + campaign.launchReport.excluded !== members)
            throw new Error(
              `bench launch: the audience of ${key} holds ${campaign.launchReport.audience} + ${campaign.launchReport.excluded}, the segment ${members}`,
            );
          return ms;
        } finally {
          if (times.length === 0) times = timer.stop();
          for (const t of times) {
            const kind = kindOf(t.sql);
            result.split[kind] = (result.split[kind] ?? 0) + t.ms;
            if (kind !== 'other statements' && !result.plans.ours[kind]) result.plans.ours[kind] = queryPlan(raw, t.sql, t.args);
          }
        }
      };
      const runRaw = (r: number) => {
        const now = new Date().toISOString();
        const started = performance.now();
        const info = rawInsert.run(`bench-raw-${scenario.id}-${r}`, now, now, ...scenario.rawArgs);
        const ms = performance.now() - started;
        result.rawRows = info.changes;
        if (info.changes !== members) throw new Error(`bench launch: the raw insert wrote ${info.changes} rows for ${members} members`);
        return ms;
      };

      for (let r = 0; r < options.rounds; r += 1) {
        const order: Array<'raw' | 'ours'> = r % 2 === 0 ? ['raw', 'ours'] : ['ours', 'raw'];
        for (const side of order) {
          const ms = side === 'ours' ? await runOurs(r) : runRaw(r);
          result[side].ms.push(ms);
          checkpoint();
        }
        log(
          `  round ${r + 1}/${options.rounds}: raw ${fmtSeconds(result.raw.ms.at(-1) as number)}, ours ${fmtSeconds(result.ours.ms.at(-1) as number)}`,
        );
      }
      for (const k of Object.keys(result.split)) result.split[k] = (result.split[k] as number) / options.rounds;
      log(
        `  ours, mean per launch: ${Object.entries(result.split)
          .sort((a, b) => b[1] - a[1])
          .map(([k, ms]) => `${k} ${fmtSeconds(ms)}`)
          .join(', ')}`,
      );
      if (process.env.BENCH_PROFILE) {
        for (const [kind, plan] of Object.entries(result.plans.ours)) log(`  plan of ${kind}:\n${plan.join('\n')}`);
        log(`  plan of the raw insert:\n${result.plans.raw.join('\n')}`);
      }
      results.push(result);
    }
    return { scenarios: results, rounds: options.rounds, copyMs, contacts };
  } finally {
    raw.close();
    await closeContext(ctx);
    clean();
  }
}

export function launchMeasures(r: LaunchResult): Measure[] {
  return r.scenarios.map((s) => {
    const ours = mean(s.ours.ms);
    const raw = mean(s.raw.ms);
    return {
      name: `launch on ${fmtInt(r.contacts)} contacts, segment ${s.scenario.title}: ${fmtInt(s.members)} members, ${fmtInt(s.audience)} in the audience, ${fmtInt(s.queued)} queued`,
      ours,
      unit: 'ms',
      baselineName: `raw INSERT … SELECT of the ${fmtInt(s.rawRows)} members`,
      baseline: raw,
      target: '≤ 3× raw (time)',
      pass: ours <= 3 * raw,
    };
  });
}

export function launchDetails(r: LaunchResult): string[] {
  const out = [
    `Launch: createCampaign + launchCampaign (startAt = now, so step 1 is enqueued in the call) timed together, on a scratch copy of the ${fmtInt(r.contacts)}-contact database (copied and flushed in ${fmtSeconds(r.copyMs)}, outside the measure); ${r.rounds} alternating rounds per segment (raw, ours; ours, raw; …) after one untimed count of the segment, each round a new campaign (ours) or a new campaign_key value (raw), a WAL checkpoint (TRUNCATE) after each, outside the measure. The figures are the means of the rounds.`,
    "Ours: the real path — the campaign row, then in one transaction the audience frozen with one INSERT … SELECT into campaign_audience over segmentWhere() with the exclusion CASE (no address, bounced, complained, suppressed, objected, withdrawn) per member, and the launch report counted; then runCampaignSteps → enqueueStep: one INSERT … SELECT from campaign_audience ⋈ contacts into deliveries (not erased, no confirmation/unsubscribe/bounce in this campaign, not already granted, the exclusion CASE again). Raw: bare better-sqlite3, one prepared INSERT INTO raw_deliveries (deliveries' own DDL under another name: same columns, unique constraint and three indexes) SELECT … FROM contacts c WHERE c.erased_at IS NULL AND <the segment's consent condition as NOT EXISTS on consent_states>, on a second connection with the app writer's settings.",
  ];
  for (const s of r.scenarios) {
    const ours = mean(s.ours.ms);
    const raw = mean(s.raw.ms);
    out.push(
      `Segment ${s.scenario.title}: ${fmtInt(s.members)} members; audience ${fmtInt(s.audience)}, excluded ${
        Object.entries(s.excluded)
          .map(([k, n]) => `${k} ${fmtInt(n)}`)
          .join(', ') || 'none'
      }; step 1 queued ${fmtInt(s.queued)}; the raw statement wrote ${fmtInt(s.rawRows)} rows. Ours ${fmtSeconds(ours)} (rounds ${s.ours.ms.map((x) => fmtSeconds(x)).join(', ')}), raw ${fmtSeconds(raw)} (rounds ${s.raw.ms.map((x) => fmtSeconds(x)).join(', ')}), ratio ${(ours / raw).toFixed(2)}×. Our time by statement (mean per launch): ${Object.entries(
        s.split,
      )
        .sort((a, b) => b[1] - a[1])
        .map(([k, ms]) => `${k} ${fmtSeconds(ms)}`)
        .join(', ')}.`,
    );
  }
  return out;
}

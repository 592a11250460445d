// Counting a segment with a consent condition on the 1,000,000-contact database: countSegment
// (the saved segment read, its filter compiled by segmentWhere, the count run through Kysely on
// the app's writer connection) against a bare better-sqlite3 prepared SELECT count(*) of the
// same condition, in alternating rounds. Reported side by side; the issue sets no target.
// The segments are saved in the bench database for the run and deleted afterwards.
import SqliteDatabase from 'better-sqlite3';
import { closeContext, createContext } from '../src/boot.ts';
import { loadConfig } from '../src/config.ts';
import type { Filter } from '../src/modules/segments/index.ts';
import { countSegment } from '../src/modules/segments/index.ts';
import { createSegment } from '../src/modules/segments/segments.service.ts';
import { fmtInt, log } from './common.ts';
import type { Measure } from './report.ts';
import { queryPlan, timeStatements } from './sql-timer.ts';

export interface SegmentCountOptions {
  /** Alternating rounds (raw, ours; ours, raw; …) after one warm-up count each. */
  rounds: number;
}

interface Scenario {
  id: string;
  title: string;
  filter: Filter;
  rawWhere: string;
  rawArgs: unknown[];
}

const scenarios: Scenario[] = [
  {
    id: 'none-or-withdrawn',
    title: 'commercial-email × email: none or withdrawn (NOT EXISTS)',
    filter: { consent: { purpose: 'commercial-email', channel: 'email', status: ['none', 'withdrawn'] } },
    rawWhere:
      'not exists (select 1 from consent_states cs where cs.contact_id = c.id and cs.purpose_key = ? and cs.channel_key = ? and cs.status not in (?))',
    rawArgs: ['commercial-email', 'email', 'withdrawn'],
  },
  {
    id: 'granted',
    title: 'commercial-sms × sms: granted (EXISTS)',
    filter: { consent: { purpose: 'commercial-sms', channel: 'sms', status: ['granted'] } },
    rawWhere:
      'exists (select 1 from consent_states cs where cs.contact_id = c.id and cs.purpose_key = ? and cs.channel_key = ? and cs.status in (?))',
    rawArgs: ['commercial-sms', 'sms', 'granted'],
  },
];

export interface SegmentCountScenarioResult {
  scenario: Scenario;
  count: number;
  ours: number[];
  raw: number[];
  oursSql: string;
  plans: { ours: string[]; raw: string[] };
}

export interface SegmentCountResult {
  scenarios: SegmentCountScenarioResult[];
  rounds: number;
  contacts: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

export async function benchSegmentCount(file: string, contacts: number, options: SegmentCountOptions): Promise<SegmentCountResult> {
  const ctx = await createContext(loadConfig({ DATABASE_URL: `sqlite:${file}`, LOG_LEVEL: 'warn', SCHEDULER_INTERVAL_SECONDS: '0' }));
  // The raw connection has the app writer's settings (src/database.ts), where countSegment runs.
  const raw = new SqliteDatabase(file);
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = NORMAL');
  raw.pragma('foreign_keys = ON');
  raw.pragma('busy_timeout = 5000');
  const prefix = `bench-count-${Date.now()}`;
  const results: SegmentCountScenarioResult[] = [];
  try {
    for (const scenario of scenarios) {
      const key = `${prefix}-${scenario.id}`;
      await createSegment(ctx, { key, name: scenario.title, filter: scenario.filter });
      const rawSql = `select count(*) as n from contacts c where c.erased_at is null and ${scenario.rawWhere}`;
      const rawCount = raw.prepare(rawSql);
      const result: SegmentCountScenarioResult = { scenario, count: 0, ours: [], raw: [], oursSql: '', plans: { ours: [], raw: [] } };
      const runOurs = async () => {
        const started = performance.now();
        const n = await countSegment(ctx, key);
        const ms = performance.now() - started;
        return { n, ms };
      };
      const runRaw = () => {
        const started = performance.now();
        const n = (rawCount.get(...scenario.rawArgs) as { n: number }).n;
        return { n, ms: performance.now() - started };
      };
      // Warm-up: one count each (pages into the OS cache, statements prepared); our SQL kept.
      const timer = timeStatements();
      const warm = await runOurs();
      const statements = timer.stop();
      const countStatement = statements.find((s) => /count\(\*\)/i.test(s.sql));
      if (countStatement) {
        result.oursSql = countStatement.sql;
        result.plans.ours = queryPlan(raw, countStatement.sql, countStatement.args);
      }
      result.plans.raw = queryPlan(raw, rawSql, scenario.rawArgs);
      const warmRaw = runRaw();
      if (warm.n !== warmRaw.n) throw new Error(`bench segment-count: countSegment says ${warm.n}, the raw count ${warmRaw.n}`);
      result.count = warm.n;
      log(`  ${scenario.title}: ${fmtInt(warm.n)} contacts`);
      for (let r = 0; r < options.rounds; r += 1) {
        const order: Array<'raw' | 'ours'> = r % 2 === 0 ? ['raw', 'ours'] : ['ours', 'raw'];
        for (const side of order) {
          const { n, ms } = side === 'ours' ? await runOurs() : runRaw();
          if (n !== result.count) throw new Error(`bench segment-count: ${side} counted ${n}, expected ${result.count}`);
          result[side].push(ms);
        }
      }
      log(
        `  countSegment median ${fmtInt(median(result.ours))} ms (${result.ours.map((x) => fmtInt(x)).join(', ')}), raw median ${fmtInt(median(result.raw))} ms (${result.raw.map((x) => fmtInt(x)).join(', ')})`,
      );
      if (process.env.BENCH_PROFILE) {
        log(`  our SQL: ${result.oursSql}\n  plan (ours):\n${result.plans.ours.join('\n')}\n  plan (raw):\n${result.plans.raw.join('\n')}`);
      }
      results.push(result);
    }
    return { scenarios: results, rounds: options.rounds, contacts };
  } finally {
    await ctx.db.kysely.deleteFrom('segments').where('key', 'like', `${prefix}-%`).execute();
    raw.close();
    await closeContext(ctx);
  }
}

export function segmentCountMeasures(r: SegmentCountResult): Measure[] {
  return r.scenarios.map((s) => ({
    name: `countSegment on ${fmtInt(r.contacts)} contacts, segment ${s.scenario.title}: ${fmtInt(s.count)} members (median)`,
    ours: median(s.ours),
    unit: 'ms',
    baselineName: 'raw prepared SELECT count(*)',
    baseline: median(s.raw),
    target: 'report only (no target)',
    pass: null,
  }));
}

/** A plan as one line, our subquery's alias (seg_cs) written as the raw statement's (cs). */
const planText = (plan: string[]) => plan.map((l) => l.trim().replace(/\bseg_cs\b/g, 'cs')).join('; ');

export function segmentCountDetails(r: SegmentCountResult): string[] {
  const samePlan = r.scenarios.every((s) => planText(s.plans.ours) === planText(s.plans.raw));
  return [
    `Segment count: countSegment(ctx, key) — the saved segment read, its filter compiled by segmentWhere(), SELECT count(*) through Kysely on the app's writer connection — against a bare better-sqlite3 prepared SELECT count(*) FROM contacts c WHERE c.erased_at IS NULL AND <the same consent condition> on a second connection with the writer's settings, on the ${fmtInt(r.contacts)}-contact database; one warm-up count each, then ${r.rounds} alternating rounds (raw, ours; ours, raw; …); medians of the rounds. Both counts agree in every round. SQLite's query plans of our statement and the raw one are ${samePlan ? "the same (but for the subquery's alias)" : 'different'} in each segment.`,
    ...r.scenarios.map(
      (s) =>
        `Segment ${s.scenario.title}: ${fmtInt(s.count)} members; countSegment ${s.ours.map((x) => fmtInt(x)).join(', ')} ms; raw ${s.raw.map((x) => fmtInt(x)).join(', ')} ms (medians ${fmtInt(median(s.ours))} and ${fmtInt(median(s.raw))} ms, ratio ${(median(s.ours) / median(s.raw)).toFixed(2)}×). Plan: ${planText(s.plans.raw)}${
          planText(s.plans.ours) === planText(s.plans.raw) ? '' : `; ours: ${planText(s.plans.ours)}`
        }.`,
    ),
  ];
}

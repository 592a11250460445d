// decide() in process, against a raw better-sqlite3 point lookup by email on the same file.
import SqliteDatabase from 'better-sqlite3';
import { Bench } from 'tinybench';
import { SQLITE_READER_PRAGMAS } from '../src/database.ts';
import { decide } from '../src/modules/consents/index.ts';
import type { AppContext } from '../src/platform/context.ts';
import { type Contender, fmtRate, interleaved, log, type Throughput } from './common.ts';
import { pairAt, type SampleContact } from './sample.ts';

export interface DecideResult {
  byId: Throughput;
  byEmail: Throughput;
  raw: Throughput;
  /** The same raw lookup timed by tinybench (a cross-check of the loop harness). */
  rawTinybench: number;
  reasons: Record<string, number>;
}

export async function benchDecide(ctx: AppContext, file: string, sample: SampleContact[], seconds: number): Promise<DecideResult> {
  const n = sample.length;
  const at = (i: number) => sample[i % n] as SampleContact;

  // What the decisions say over the sample: the loop decides real, varied cases.
  const reasons: Record<string, number> = {};
  for (let i = 0; i < Math.min(n, 30_000); i += 1) {
    const d = await decide(ctx, { contactId: at(i).id, ...pairAt(i) });
    reasons[d.reason] = (reasons[d.reason] ?? 0) + 1;
  }
  if (reasons.unknown_contact) throw new Error('decide() did not find sampled contacts: the sample or the lookup is wrong');

  // The baseline: the same file, a read-only connection set up like the app's reader, one
  // prepared statement.
  const raw = new SqliteDatabase(file, { readonly: true, fileMustExist: true });
  try {
    for (const pragma of SQLITE_READER_PRAGMAS) raw.pragma(pragma);
    const lookup = raw.prepare('select * from contacts where email = ?');

    const contenders: Contender[] = [
      { name: 'byId', op: (i) => decide(ctx, { contactId: at(i).id, ...pairAt(i) }) },
      { name: 'byEmail', op: (i) => decide(ctx, { email: at(i).email, ...pairAt(i) }) },
      { name: 'raw', op: (i) => lookup.get(at(i).email) },
    ];
    // Warm-up: one pass over the whole sample each, so that every connection's page cache and
    // memory map hold the sample's pages, as a long-running server's would.
    for (const c of contenders) for (let i = 0; i < n; i += 1) await c.op(i);
    const results = await interleaved(contenders, seconds * 1000, 500);
    const byId = results.get('byId') as Throughput;
    const byEmail = results.get('byEmail') as Throughput;
    const rawLoop = results.get('raw') as Throughput;
    const share = (t: Throughput) => `(this process got ${t.cpuShare.toFixed(2)} of a core)`;
    log(`  decide() by contactId: ${fmtRate(byId.rate)} ${share(byId)}`);
    log(`  decide() by email:     ${fmtRate(byEmail.rate)} ${share(byEmail)}`);
    log(`  raw lookup by email:   ${fmtRate(rawLoop.rate)} ${share(rawLoop)}`);

    let j = 0;
    const bench = new Bench({ time: 1000, warmupTime: 200 });
    bench.add('raw lookup by email', () => {
      lookup.get(at(j++).email);
    });
    await bench.run();
    const result = bench.tasks[0]?.result;
    const rawTinybench = result && 'period' in result ? 1000 / result.period : Number.NaN;
    log(`  raw lookup by email:   ${fmtRate(rawTinybench)} (tinybench cross-check)`);
    return { byId, byEmail, raw: rawLoop, rawTinybench, reasons };
  } finally {
    raw.close();
  }
}

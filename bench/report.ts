// The results: a table on the terminal and bench/RESULTS.md, every figure beside its baseline.
import { writeFileSync } from 'node:fs';
import { cpus, freemem, type as osType, release, totalmem } from 'node:os';
import { fmtInt, fmtPct, fmtRatio, fmtSeconds } from './common.ts';

export interface Measure {
  name: string;
  ours: number;
  unit: string;
  baselineName: string;
  baseline: number;
  target: string;
  pass: boolean;
}

export interface Report {
  command: string;
  startedAt: Date;
  /** 1-minute load average at the start and at the end of the run. */
  load: { start: number; end: number };
  totalMs: number;
  dataset: string[];
  measures: Measure[];
  details: string[];
  method: string[];
}

export function machine(): { cpu: string; cores: number; memory: string; node: string; os: string } {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB (${(freemem() / 2 ** 30).toFixed(1)} GiB free at the end)`,
    node: process.version,
    os: `${osType()} ${release()}`,
  };
}

const row = (m: Measure) => [
  m.name,
  `${fmtInt(m.ours)} ${m.unit}`,
  `${m.baselineName}: ${fmtInt(m.baseline)} ${m.unit}`,
  `${fmtRatio(m.ours / m.baseline)} (${fmtPct(m.ours / m.baseline)})`,
  m.target,
  m.pass ? 'PASS' : 'FAIL',
];

const header = ['Measure', 'Ours', 'Baseline (same run)', 'Ours / baseline', 'Target', 'Result'];

export function printTable(measures: Measure[]): string {
  const rows = [header, ...measures.map(row)];
  const widths = header.map((_, c) => Math.max(...rows.map((r) => (r[c] as string).length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c] as number)).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [line(header), rule, ...measures.map((m) => line(row(m)))].join('\n');
}

export function writeResults(file: string, report: Report): void {
  const m = machine();
  const passed = report.measures.filter((x) => x.pass).length;
  const text = [
    '# Benchmark results',
    '',
    `Produced by \`${report.command}\` on ${report.startedAt.toISOString()}; the whole run took ${fmtSeconds(report.totalMs)}.`,
    '',
    '## Machine',
    '',
    `- CPU: ${m.cpu}, ${m.cores} cores`,
    `- Memory: ${m.memory}`,
    `- Node.js ${m.node} on ${m.os}`,
    `- 1-minute load average: ${report.load.start.toFixed(2)} when the run started (other processes sharing the machine), ${report.load.end.toFixed(2)} at its end (the bench included); on 2 cores, other work running alongside depresses and scatters the figures`,
    '',
    '## Dataset',
    '',
    ...report.dataset.map((d) => `- ${d}`),
    '',
    `## Figures (${passed} of ${report.measures.length} targets met)`,
    '',
    printTable(report.measures),
    '',
    '## Details',
    '',
    ...report.details.map((d) => `- ${d}`),
    '',
    '## Method',
    '',
    ...report.method.map((d) => `- ${d}`),
    '',
  ].join('\n');
  writeFileSync(file, text);
}

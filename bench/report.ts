// The results: a table on the terminal and bench/RESULTS.md, every figure beside its baseline.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, freemem, type as osType, release, totalmem } from 'node:os';
import { fmtInt, fmtPct, fmtRatio, fmtSeconds } from './common.ts';

export interface Measure {
  name: string;
  ours: number;
  unit: string;
  baselineName: string;
  baseline: number;
  target: string;
  /** null: a figure reported beside its baseline with no target to meet. */
  pass: boolean | null;
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
  m.pass === null ? '—' : m.pass ? 'PASS' : 'FAIL',
];

/** "n of m targets met" (figures without a target are not counted). */
export const targetsMet = (measures: Measure[]): string => {
  const withTarget = measures.filter((x) => x.pass !== null);
  if (withTarget.length === 0) return 'no targets: reported only';
  return `${withTarget.filter((x) => x.pass).length} of ${withTarget.length} targets met`;
};

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
    `## Figures (${targetsMet(report.measures)})`,
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

/** One part measured in a run of its own (`--only=…`), kept in RESULTS.md beside the full run's table. */
export interface PartSection {
  /** The part's name for --only (the block's marker). */
  part: string;
  title: string;
  command: string;
  startedAt: Date;
  load: { start: number; end: number };
  totalMs: number;
  measures: Measure[];
  details: string[];
}

const SEPARATE_HEADING = '## Separate runs';
const SEPARATE_INTRO =
  'Parts measured in runs of their own (`npm run bench -- --only=…`) after the full run above; each block is replaced when its part runs again, and a full `npm run bench` rewrites the whole file.';

/**
 * Writes (or replaces) one part's block under "## Separate runs" in an existing RESULTS.md,
 * leaving the rest of the file as it was; blocks keep the order of `order`.
 */
export function upsertPartSection(file: string, section: PartSection, order: string[]): void {
  const m = machine();
  const begin = (part: string) => `<!-- bench:${part} -->`;
  const end = (part: string) => `<!-- /bench:${part} -->`;
  const block = [
    begin(section.part),
    `### ${section.title}`,
    '',
    `Produced by \`${section.command}\` on ${section.startedAt.toISOString()}; the run took ${fmtSeconds(section.totalMs)} on ${m.cpu}, ${m.cores} cores, Node.js ${m.node}. 1-minute load average ${section.load.start.toFixed(2)} at the start, ${section.load.end.toFixed(2)} at the end${
      section.load.start > m.cores / 2 ? ' (other work was sharing the machine: it depresses and scatters the figures)' : ''
    }.`,
    '',
    `Figures (${targetsMet(section.measures)}):`,
    '',
    printTable(section.measures),
    '',
    ...section.details.map((d) => `- ${d}`),
    end(section.part),
  ].join('\n');

  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n';
  const blocks = new Map<string, string>();
  const found = new RegExp(`${begin('([a-z0-9-]+)')}[\\s\\S]*?<!-- /bench:\\1 -->\\n?`, 'g');
  text = text.replace(found, (whole, part: string) => {
    blocks.set(part, whole.trimEnd());
    return '';
  });
  blocks.set(section.part, block);
  // Drop the old heading and intro (rebuilt below), then put the section before "## Method".
  text = text.replace(`${SEPARATE_HEADING}\n\n${SEPARATE_INTRO}\n`, '').replace(/\n{3,}/g, '\n\n');
  const rank = (part: string) => (order.includes(part) ? order.indexOf(part) : order.length);
  const sorted = [...blocks.entries()].sort((a, b) => rank(a[0]) - rank(b[0])).map(([, b]) => b);
  const separate = [SEPARATE_HEADING, '', SEPARATE_INTRO, '', sorted.join('\n\n'), ''].join('\n');
  const method = text.indexOf('\n## Method');
  text = method >= 0 ? `${text.slice(0, method + 1)}${separate}\n${text.slice(method + 1)}` : `${text.trimEnd()}\n\n${separate}`;
  writeFileSync(file, text);
}

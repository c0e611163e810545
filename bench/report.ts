// The suite's output (bench/suite.ts): its rows as Markdown tables and as an
// SVG bar chart of each row's ratio to its ceiling.
import { CEILINGS, type CeilingName, type CeilingRun } from './ceilings.js';
import { formatMs, formatNumber, formatPercent, formatSummary, markdownTable, ratios, summarize, type Comparison } from './common.js';

export const GROUPS = ['ceilings', 'log', 'durability', 'peers', 'sendfile', 'isolation'] as const;
export type Group = (typeof GROUPS)[number];

/**
 * One seglog figure per run beside what it is set against, per run: a
 * ceiling (baselineLabel names it) or a baseline measured beside it.
 */
export interface Row extends Comparison {
  group: Group;
  /** Other figures of the same measurement, for the reader (latency percentiles, records/s, CPU). */
  detail: string;
  /** seglog's and the baseline's i-th figures were measured together (turn by turn in one trial): the ratio is taken per trial. */
  paired?: boolean;
}

/**
 * seglog's speed as a fraction of its ceiling's: median ÷ median (for times,
 * ceiling time ÷ seglog time), and seglog's slowest and fastest run against
 * the same ceiling median. Medians, not run-by-run ratios: a ceiling run and
 * a seglog run of the same number were not measured at the same moment. A
 * paired row's were: its ratio is the median of the per-trial ratios, with
 * their min–max.
 */
export function ratio(r: Row): { median: number; low: number; high: number } {
  if (r.paired === true) {
    const p = summarize(ratios(r));
    return { median: p.median, low: p.min, high: p.max };
  }
  const s = summarize(r.seglog);
  const c = summarize(r.baseline).median;
  return r.kind === 'rate' ? { median: s.median / c, low: s.min / c, high: s.max / c } : { median: c / s.median, low: c / s.max, high: c / s.min };
}

/** A value in its unit: MB/s as whole numbers, times with their unit, ratios as 1.23x, counts with k/M suffixes. */
export function formatValue(unit: string, n: number): string {
  if (unit === 'ms') return formatMs(n);
  if (unit === 'x') return `${n.toFixed(2)}x`;
  if (unit === 'MB/s') return n >= 100 ? Math.round(n).toLocaleString('en-US') : String(Number(n.toPrecision(3)));
  return formatNumber(n);
}

export function ceilingsTable(runs: CeilingRun[]): string {
  return markdownTable(
    ['ceiling', 'median (min–max)', 'unit', 'how'],
    (Object.keys(CEILINGS) as CeilingName[]).map((name) => {
      const c = CEILINGS[name];
      return [c.label, formatSummary(summarize(runs.map((r) => r[name])), (n) => formatValue(c.unit, n)), c.kind === 'time' ? 'time' : c.unit, c.how];
    }),
    ['l', 'r', 'l', 'l'],
  );
}

export function rowsTable(rows: Row[]): string {
  return markdownTable(
    ['group', 'seglog row (unit)', 'seglog', 'ceiling or baseline', 'its figure', 'seglog ÷ it', 'detail'],
    rows.map((r) => {
      const format = (n: number) => formatValue(r.unit, n);
      return [
        r.group,
        `${r.name} (${unitLabel(r)})`,
        formatSummary(summarize(r.seglog), format),
        r.baselineLabel,
        formatSummary(summarize(r.baseline), format),
        formatPercent(ratio(r).median),
        r.detail,
      ];
    }),
    ['l', 'l', 'r', 'l', 'r', 'r', 'l'],
  );
}

/** The unit a row's name is shown with: times carry their own unit in each cell. */
function unitLabel(r: Row): string {
  return r.unit === 'ms' ? 'time' : r.unit;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const GROUP_COLORS: Record<Group, string> = { ceilings: '#7f7f7f', log: '#1f77b4', durability: '#ff7f0e', peers: '#d62728', sendfile: '#2ca02c', isolation: '#9467bd' };

/** Each row's ratio to its ceiling (median, with a min–max whisker) as horizontal bars, 100% marked. */
export function ratioChart(rows: Row[], title: string): string {
  const rowH = 22;
  const labels = rows.map((r) => `${r.group}: ${r.name} (${unitLabel(r)})`);
  // About 6.6 px per character of 12 px sans-serif.
  const left = 20 + Math.ceil(Math.max(...labels.map((l) => l.length)) * 6.6);
  const right = 70;
  const W = left + 520 + right;
  const top = 50;
  const bottom = 40;
  const H = top + rows.length * rowH + bottom;
  const figures = rows.map(ratio);
  // The axis reaches past 100% only as far as a ratio does, in quarter steps, and at most to 200%: longer bars are cut there (their label says how far they go).
  const xMax = Math.min(2, Math.max(1, Math.ceil(Math.max(...figures.map((f) => f.high)) * 4) / 4));
  const x = (f: number) => left + (Math.min(f, xMax) / xMax) * (W - left - right);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
    `<text x="${W / 2}" y="38" text-anchor="middle" fill="#555">seglog ÷ its ceiling or baseline, medians of the runs (whisker: seglog's slowest and fastest run); 100% = as fast as the ceiling</text>`,
  ];
  for (let f = 0; f <= xMax + 1e-9; f += 0.25) {
    out.push(`<line x1="${x(f)}" x2="${x(f)}" y1="${top}" y2="${H - bottom}" stroke="${f === 1 ? '#000' : '#ddd'}"/>`);
    out.push(`<text x="${x(f)}" y="${H - bottom + 16}" text-anchor="middle">${Math.round(f * 100)}%</text>`);
  }
  rows.forEach((r, i) => {
    const f = figures[i]!;
    const y = top + i * rowH;
    const mid = y + rowH / 2;
    out.push(`<text x="${left - 8}" y="${mid + 4}" text-anchor="end">${escapeXml(labels[i]!)}</text>`);
    out.push(`<rect x="${left}" y="${y + 4}" width="${(x(f.median) - left).toFixed(1)}" height="${rowH - 8}" fill="${GROUP_COLORS[r.group]}"/>`);
    out.push(`<line x1="${x(f.low).toFixed(1)}" x2="${x(f.high).toFixed(1)}" y1="${mid}" y2="${mid}" stroke="#000"/>`);
    out.push(`<text x="${x(f.high) + 6}" y="${mid + 4}">${formatPercent(f.median)}${f.median > xMax ? ' →' : ''}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

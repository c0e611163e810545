// The benchmark suite's plumbing: `seglog bench` hands its options to
// bench/suite.ts, and the report sets each row beside its ceiling. No figure
// is measured here: benchmarks report, tests do not time.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import type { CeilingRun } from '../bench/ceilings.js';
import { parseCpuTicks, stealSince } from '../bench/common.js';
import { ceilingsTable, ratio, ratioChart, rowsTable, type Row } from '../bench/report.js';

const root = fileURLToPath(new URL('..', import.meta.url));

function seglog(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts'), ...args], { cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? -1), stdout, stderr });
    });
  });
}

describe('seglog bench', () => {
  test('runs the suite with the options given: --help, and a bad --only exits 2', async () => {
    const help = await seglog('bench', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--only');
    expect(help.stdout).toContain('ceilings, log, durability, peers, sendfile, isolation');
    const bad = await seglog('bench', '--only', 'nope');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("no group 'nope'");
  });
});

describe('vCPU steal', () => {
  test("is the 8th number of /proc/stat's cpu line, set against all eight", () => {
    const stat = 'cpu  100 5 50 800 10 0 5 30 7 0\ncpu0 50 2 25 400 5 0 2 15 3 0\nintr 1 2 3\n';
    expect(parseCpuTicks(stat)).toEqual({ steal: 30, total: 1000 });
    expect(stealSince({ steal: 30, total: 1000 }, { steal: 130, total: 1400 })).toBe('25% of all CPU time (/proc/stat steal)');
  });

  test('is unknown without a cpu line or a later reading', () => {
    expect(parseCpuTicks('intr 1 2 3\n')).toBeUndefined();
    expect(parseCpuTicks('cpu  1 2 3\n')).toBeUndefined();
    expect(stealSince(undefined, { steal: 1, total: 2 })).toBe('unknown (no /proc/stat reading)');
    expect(stealSince({ steal: 1, total: 2 }, { steal: 1, total: 2 })).toBe('unknown (no /proc/stat reading)');
  });
});

describe('bench report', () => {
  const rows: Row[] = [
    { group: 'log', name: 'append', unit: 'MB/s', kind: 'rate', seglog: [400, 500, 450], baseline: [800, 1000, 900], baselineLabel: 'sequential write, buffered', detail: 'x' },
    { group: 'log', name: 'reopen', unit: 'ms', kind: 'time', seglog: [4], baseline: [1], baselineLabel: 'open + fstat', detail: '' },
    { group: 'isolation', name: 'tail p99 ratio', unit: 'x', kind: 'time', seglog: [0.1], baseline: [1], baselineLabel: 'no slowdown (1.00x)', detail: '' },
  ];

  test('each row shows seglog, its ceiling and the ratio, median (min–max)', () => {
    const table = rowsTable(rows).replace(/ +/g, ' ');
    expect(table).toContain('| log | append (MB/s) | 450 (400–500) | sequential write, buffered | 900 (800–1,000) | 50% | x |');
    // Times: ceiling time ÷ seglog time.
    expect(table).toContain('| reopen (time) | 4 ms | open + fstat | 1 ms | 25% |');
  });

  test('a paired row (figures measured together, trial by trial) takes its ratio per trial; others median ÷ median', () => {
    const row: Row = { group: 'peers', name: 'bookkeeping', unit: 'records/s', kind: 'rate', seglog: [180, 95, 50], baseline: [200, 100, 60], baselineLabel: 'plain', detail: '' };
    // Per trial 0.9, 0.95 and 0.83: the median is 0.9; 95 ÷ 100 across trials.
    const paired = ratio({ ...row, paired: true });
    expect([paired.median, paired.low, paired.high].map((x) => x.toFixed(3))).toEqual(['0.900', '0.833', '0.950']);
    expect(ratio(row).median).toBeCloseTo(0.95);
    expect(rowsTable([{ ...row, paired: true }]).replace(/ +/g, ' ')).toContain('| 90% |');
  });

  test('the chart has a bar per row and cuts bars past 200%, saying how far they go', () => {
    const svg = ratioChart(rows, 'title & more');
    expect(svg).toContain('title &amp; more');
    expect(svg).toContain('log: append (MB/s)');
    expect(svg).toContain('>50%<');
    expect(svg).toContain('1000% →');
    expect(svg.match(/<text[^>]*text-anchor="end">/g)).toHaveLength(rows.length);
  });

  test('the ceilings table has a line per ceiling', () => {
    const run: CeilingRun = {
      writeBuffered: 1000,
      writeSynced: 500,
      writeDirect: 600,
      fdatasyncP50: 0.3,
      fdatasyncP99: 2,
      fdatasyncPerSecond: 3000,
      readCold: 700,
      readWarm: 9000,
      randomReadsPerSecond: 20_000,
      sendfile: 2500,
    };
    const table = ceilingsTable([run, { ...run, readWarm: 11_000 }]);
    expect(table.split('\n')).toHaveLength(2 + Object.keys(run).length);
    expect(table).toContain('10,000 (9,000–11,000)');
    expect(table).toContain('300 µs');
  });
});

// Durability benchmark (M3): appends of 1 KiB records from 1, 8 and 64
// concurrent producers under each flush policy — records/s, MB/s and append
// latency percentiles — beside the raw 4 KiB write+fdatasync latency and the
// raw sequential write bandwidth of the same directory, in the same run.
// Under 'always' each producer count is also set against the native group
// loop: one File.writevDatasync (write + fdatasync in one threadpool job) of
// that many records' batches after another, which is what a perfect group
// commit of every producer would do. appendCell() and groupLoopCell() are
// exported for the suite (bench/suite.ts).
//
//   npx tsx bench/durability.ts [--dir <path>] [--seconds <n>] [--runs <n>]
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { File } from '../src/io.js';
import { encodeBatch, Log, type FlushPolicy } from '../src/seglog.js';
import { fdatasyncLatency, sequentialWrite } from './ceilings.js';
import { benchDir, describeMachine, formatBytes, formatMachine, formatMs, formatNumber, formatPercent, markdownTable, now, percentile, progress, summarize, warmPageCache } from './common.js';

const RECORD = Buffer.alloc(1024, 0x61);
export const PRODUCERS = [1, 8, 64];
export const POLICIES: Array<[string, FlushPolicy]> = [
  ['always', 'always'],
  ['interval 10 ms', { intervalMs: 10 }],
  ['none', 'none'],
];
/** Bytes of the raw sequential write ceiling. */
const SEQUENTIAL_BYTES = 1024 * 1024 * 1024;

const USAGE = 'usage: npx tsx bench/durability.ts [--dir <path>] [--seconds <n>] [--runs <n>]';

export interface Cell {
  recordsPerSecond: number;
  bytesPerSecond: number;
  p50: number;
  p99: number;
  p999: number;
}

/** `producers` loops, each appending one record and awaiting it, for `ms`; every acknowledged record must be in the log. */
export async function appendCell(dir: string, policy: FlushPolicy, producers: number, ms: number): Promise<Cell> {
  const log = await Log.open(dir, { flush: policy, segmentBytes: 256 * 1024 * 1024 });
  const latencies: number[] = [];
  const start = now();
  const end = start + ms;
  let bytes = 0;
  await Promise.all(
    Array.from({ length: producers }, async () => {
      while (now() < end) {
        const t = now();
        const r = await log.append([{ value: RECORD }]);
        latencies.push(now() - t);
        bytes += r.bytes;
      }
    }),
  );
  const elapsed = (now() - start) / 1000;
  await log.close();
  if (log.endOffset !== latencies.length) throw new Error(`verification: log holds ${log.endOffset} records, ${latencies.length} were acknowledged`);
  latencies.sort((a, b) => a - b);
  return {
    recordsPerSecond: latencies.length / elapsed,
    bytesPerSecond: bytes / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
  };
}

/**
 * The native group loop: `records` one-record batches written as one group
 * and made durable by one fdatasync, group after group, for `ms`; records/s.
 * Each group is read back and checked at the end.
 */
export async function groupLoopCell(dir: string, records: number, ms: number): Promise<number> {
  await mkdir(dir, { recursive: true });
  const batch = encodeBatch([{ value: RECORD }], { baseOffset: 0 });
  const group = Buffer.concat(Array.from({ length: records }, () => batch));
  const file = await File.open(join(dir, 'group-loop'), { create: true, truncate: true });
  try {
    const start = now();
    let groups = 0;
    while (now() - start < ms) {
      await file.writevDatasync([group], groups * group.length);
      groups++;
    }
    const elapsed = (now() - start) / 1000;
    if ((await file.size()) !== groups * group.length) throw new Error(`verification: the group loop wrote ${groups} groups, the file holds ${await file.size()} bytes`);
    const back = Buffer.alloc(group.length);
    for (let g = 0; g < groups; g++) {
      await file.read(back, g * group.length);
      if (!back.equals(group)) throw new Error(`verification: group ${g} of the group loop reads back different bytes`);
    }
    return (groups * records) / elapsed;
  } finally {
    await file.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { dir: { type: 'string' }, seconds: { type: 'string', default: '3' }, runs: { type: 'string', default: '3' }, help: { type: 'boolean' } },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const seconds = Number(values.seconds);
  const runs = Number(values.runs);
  if (!(seconds > 0) || !Number.isInteger(runs) || runs < 1) {
    console.error(USAGE);
    process.exit(2);
  }
  const parent = await benchDir(values.dir);
  try {
    const machine = describeMachine(parent.path);
    const fsyncRuns: Array<Awaited<ReturnType<typeof fdatasyncLatency>>> = [];
    const seqRuns: number[] = [];
    const cells = new Map<string, Cell[]>();
    const groupLoops = new Map<number, number[]>();
    warmPageCache(parent.path, 512 * 1024 * 1024);
    for (let run = 0; run < runs; run++) {
      progress(`run ${run + 1}/${runs}: raw fdatasync latency`);
      fsyncRuns.push(await fdatasyncLatency(join(parent.path, `raw-fdatasync-${run}`), seconds * 1000));
      progress(`run ${run + 1}/${runs}: raw sequential write`);
      seqRuns.push((await sequentialWrite(join(parent.path, `raw-sequential-${run}`), SEQUENTIAL_BYTES, false)).synced * 1e6);
      for (const [name, policy] of POLICIES) {
        for (const producers of PRODUCERS) {
          if (policy === 'always') {
            progress(`run ${run + 1}/${runs}: native group loop of ${producers} records`);
            const loop = await groupLoopCell(join(parent.path, `group-loop-${run}-${producers}`), producers, seconds * 1000);
            groupLoops.set(producers, [...(groupLoops.get(producers) ?? []), loop]);
          }
          progress(`run ${run + 1}/${runs}: ${name}, ${producers} producers`);
          const key = `${name}|${producers}`;
          const cell = await appendCell(join(parent.path, `log-${run}-${name.replace(/\W/g, '')}-${producers}`), policy, producers, seconds * 1000);
          cells.set(key, [...(cells.get(key) ?? []), cell]);
        }
      }
    }
    const med = (xs: number[]) => summarize(xs).median;
    const rawP99 = med(fsyncRuns.map((r) => r.p99));
    const rawSeq = med(seqRuns);
    console.log(`# seglog durability benchmark\n\n${formatMachine(machine, { Records: '1 KiB, one per append', Runs: `${runs} x ${seconds} s per cell` })}\n`);
    console.log('## Ceilings measured in this run\n');
    console.log(
      markdownTable(
        ['baseline', 'median', 'min–max'],
        [
          ['raw 4 KiB write + fdatasync p50', formatMs(med(fsyncRuns.map((r) => r.p50))), ''],
          ['raw 4 KiB write + fdatasync p99', formatMs(rawP99), `${formatMs(Math.min(...fsyncRuns.map((r) => r.p99)))}–${formatMs(Math.max(...fsyncRuns.map((r) => r.p99)))}`],
          ['raw 4 KiB write + fdatasync p99.9', formatMs(med(fsyncRuns.map((r) => r.p999))), ''],
          ['raw sequential write (1 MiB blocks + fdatasync)', `${formatBytes(rawSeq)}/s`, `${formatBytes(Math.min(...seqRuns))}/s–${formatBytes(Math.max(...seqRuns))}/s`],
        ],
        ['l', 'r', 'r'],
      ),
    );
    console.log('\n## seglog appends (medians over runs)\n');
    const rows: string[][] = [];
    for (const [name] of POLICIES) {
      for (const producers of PRODUCERS) {
        const c = cells.get(`${name}|${producers}`)!;
        const bps = med(c.map((x) => x.bytesPerSecond));
        const p99 = med(c.map((x) => x.p99));
        rows.push([
          name,
          String(producers),
          formatNumber(med(c.map((x) => x.recordsPerSecond))),
          `${formatBytes(bps)}/s`,
          formatPercent(bps / rawSeq),
          formatMs(med(c.map((x) => x.p50))),
          formatMs(p99),
          formatMs(med(c.map((x) => x.p999))),
          name === 'always' ? `${(p99 / rawP99).toFixed(2)}x` : '',
          name === 'always' ? `${(med(c.map((x) => x.recordsPerSecond)) / med(groupLoops.get(producers)!)).toFixed(2)}x of ${formatNumber(med(groupLoops.get(producers)!))}` : '',
        ]);
      }
    }
    console.log(
      markdownTable(
        ['policy', 'producers', 'records/s', 'MB/s', '÷ raw seq write', 'p50', 'p99', 'p99.9', 'p99 ÷ raw fdatasync p99', 'records/s ÷ native group loop (records/s)'],
        rows,
        ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
  } finally {
    await parent.remove();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();

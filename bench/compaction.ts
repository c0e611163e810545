// A compaction pass at disk speed (issue #17 item 6): a log of N keys each
// updated U times (100 B values, 10 records a batch, 8 MiB segments) is
// cleaned by log.compact() while an appender keeps appending one-record
// batches to its tail. Per trial (each a fresh log), in the same run: the
// pass's MB/s read (the bytes it cleaned) and written (what replaced them)
// beside the buffered sequential write and warm sequential read ceilings
// of a file as large as the log, the memory its key map takes, the RSS it
// adds, and the latency of a producer at the tail (one append due every
// millisecond) during the pass against a second of the same just before it.
//
//   npm run bench:compaction -- [--dir <path>] [--trials <n>] [--keys <n>] [--updates <n>]
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { keyMapBytes, SLOT_BYTES } from '../src/log/key-map.js';
import { CLEANER_MEMORY_BYTES } from '../src/log/options.js';
import { encodeBatch, Log } from '../src/seglog.js';
import { sequentialRead, sequentialWrite } from './ceilings.js';
import { benchDir, describeMachine, formatBytes, formatMachine, formatMs, loadAverage, markdownTable, now, percentile, summarize, usageError } from './common.js';

const USAGE = `usage: npm run bench:compaction -- [--dir <path>] [--trials <n>] [--keys <n>] [--updates <n>]
  --dir      parent directory for the benchmark's files (default: the OS temp dir)
  --trials   trials, each a fresh log (default 5)
  --keys     distinct keys (default 20000)
  --updates  records per key (default 20)`;

const VALUE_BYTES = 100;
const BATCH_RECORDS = 10;
const SEGMENT_BYTES = 8 * 1024 * 1024;

export interface CompactionTrial {
  passMs: number;
  bytesBefore: number;
  bytesAfter: number;
  recordsRemoved: number;
  /** What the pass's key map allocates for the records it mapped. */
  mapBytes: number;
  /** Largest RSS growth seen during the pass. */
  rssGrowth: number;
  /** Tail append latency (ms) before the pass and during it. */
  before: { p50: number; p99: number; count: number };
  during: { p50: number; p99: number; count: number };
}

/** Appends N keys × U updates (keys cycling, so every key's latest is in the last round) and rolls. */
async function build(dir: string, keys: number, updates: number): Promise<Log> {
  const log = await Log.open(dir, { cleanupPolicy: 'compact', segmentBytes: SEGMENT_BYTES });
  const value = Buffer.alloc(VALUE_BYTES, 0x61);
  const total = keys * updates;
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < total; i += BATCH_RECORDS) {
    const records = Array.from({ length: Math.min(BATCH_RECORDS, total - i) }, (_, j) => ({ key: `key-${(i + j) % keys}`, value }));
    pending.push(log.appendBatches(encodeBatch(records)));
    if (pending.length >= 64) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  await log.roll();
  return log;
}

/** A producer at the tail: a one-record batch every millisecond until `done()`; the latency of each (ms), from when it was due. */
async function tailAppends(log: Log, done: () => boolean): Promise<number[]> {
  const latencies: number[] = [];
  const value = Buffer.alloc(VALUE_BYTES, 0x62);
  for (let i = 0; !done(); i++) {
    const due = now();
    await log.append([{ key: `tail-${i % 100}`, value }]);
    latencies.push(now() - due);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return latencies;
}

function latencySummary(ms: number[]): { p50: number; p99: number; count: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), count: s.length };
}

/** One trial in `dir`: build, a baseline phase of tail appends, then the pass with tail appends. */
export async function compactionTrial(dir: string, keys: number, updates: number, baselineMs = 1000): Promise<CompactionTrial> {
  const log = await build(dir, keys, updates);
  try {
    const baselineEnd = now() + baselineMs;
    const before = latencySummary(await tailAppends(log, () => now() >= baselineEnd));
    await log.roll();
    const rss = process.memoryUsage.rss();
    let rssPeak = rss;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 20);
    let finished = false;
    const start = now();
    const pass = log.compact().finally(() => (finished = true));
    const during = tailAppends(log, () => finished);
    const result = await pass;
    const passMs = now() - start;
    clearInterval(sampler);
    const latencies = await during;
    // Checked, not trusted: every key is there once below the active segment.
    let kept = 0;
    for await (const r of log.records(log.startOffset)) if (r.key?.toString().startsWith('key-')) kept++;
    if (kept !== keys) throw new Error(`verification: ${kept} records of the ${keys} keys after the pass`);
    const mapped = keys * updates;
    return {
      passMs,
      bytesBefore: result.bytesBefore,
      bytesAfter: result.bytesAfter,
      recordsRemoved: result.recordsRemoved,
      mapBytes: keyMapBytes(CLEANER_MEMORY_BYTES, mapped),
      rssGrowth: rssPeak - rss,
      before,
      during: latencySummary(latencies),
    };
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({ options: { dir: { type: 'string' }, trials: { type: 'string' }, keys: { type: 'string' }, updates: { type: 'string' }, help: { type: 'boolean' } } }));
  } catch (err) {
    usageError((err as Error).message, USAGE);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const trials = Number(values.trials ?? 5);
  const keys = Number(values.keys ?? 20_000);
  const updates = Number(values.updates ?? 20);
  if (![trials, keys, updates].every((n) => Number.isInteger(n) && n >= 1)) usageError('--trials, --keys and --updates take positive integers', USAGE);
  const root = await benchDir(values.dir);
  try {
    console.log(formatMachine(describeMachine(root.path)));
    const runs: Array<CompactionTrial & { write: number; read: number }> = [];
    for (let t = 0; t < trials; t++) {
      const trial = await compactionTrial(join(root.path, `log-${t}`), keys, updates);
      // The ceilings right after, over a file as large as what the pass read.
      const file = join(root.path, `ceiling-${t}`);
      const { written } = await sequentialWrite(file, trial.bytesBefore, false);
      const read = await sequentialRead(file, Math.ceil(trial.bytesBefore / (1 << 20)) * (1 << 20), false, 500);
      await rm(file, { force: true });
      runs.push({ ...trial, write: written, read });
      console.error(`trial ${t + 1}/${trials}: pass ${formatMs(trial.passMs)}, load ${loadAverage()}`);
    }
    const col = (f: (r: (typeof runs)[number]) => number) => summarize(runs.map(f));
    const fmt = (s: { median: number; min: number; max: number }, f: (n: number) => string) => `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
    const mb = (n: number) => n.toFixed(1);
    const r = runs[0]!;
    console.log(
      `\n${keys} keys × ${updates} updates (${VALUE_BYTES} B values, ${BATCH_RECORDS} per batch): ${formatBytes(r.bytesBefore)} cleaned to ${formatBytes(r.bytesAfter)}, ` +
        `${r.recordsRemoved} records removed; ${trials} trials, medians (min–max)\n`,
    );
    console.log(
      markdownTable(
        ['figure', 'value', 'against'],
        [
          ['pass', fmt(col((x) => x.passMs), formatMs), ''],
          ['read, MB/s', fmt(col((x) => x.bytesBefore / 1e3 / x.passMs), mb), `warm sequential read ${fmt(col((x) => x.read), mb)}; per trial ${fmt(col((x) => x.bytesBefore / 1e3 / x.passMs / x.read), (n) => n.toFixed(3))}`],
          ['written, MB/s', fmt(col((x) => x.bytesAfter / 1e3 / x.passMs), mb), `buffered sequential write ${fmt(col((x) => x.write), mb)}`],
          ['key map', formatBytes(r.mapBytes), `${SLOT_BYTES} B a slot, ${keys * updates} records mapped`],
          ['RSS growth during the pass', fmt(col((x) => x.rssGrowth), formatBytes), ''],
          ['tail append p50, ms', fmt(col((x) => x.during.p50), (n) => n.toFixed(3)), `before the pass ${fmt(col((x) => x.before.p50), (n) => n.toFixed(3))}`],
          ['tail append p99, ms', fmt(col((x) => x.during.p99), (n) => n.toFixed(3)), `before the pass ${fmt(col((x) => x.before.p99), (n) => n.toFixed(3))}`],
          ['tail appends, one due each ms', fmt(col((x) => x.during.count / x.passMs), (n) => `${(n * 1000).toFixed(0)}/s`), `before the pass ${fmt(col((x) => x.before.count), (n) => `${n.toFixed(0)}/s`)}`],
        ],
        ['l', 'r', 'l'],
      ),
    );
  } finally {
    await root.remove();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();

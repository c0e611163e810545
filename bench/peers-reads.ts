// Read workloads of the `peers` comparison: seglog beside what a Node user
// would pick instead, on the same records in the same run, page cache warm.
//
//   npx tsx bench/peers-reads.ts [--dir <path>] [--runs <n>] [--records <n>] [--sizes 1024,100] [--clock wall|cpu]
//
// Records are written 100 per batch. Sequential: every record read from the
// first on and verified (length, its number in the first 4 bytes, its last
// byte). Random: one record by its offset (number), verified the same way,
// and seglog's offsetForTimestamp of a record's timestamp (checked).
// Own cache mode's logs are reopened, so every read of them misses the tail
// cache: its sequential reads are catch-up reads from disk (O_DIRECT), its
// point reads come from the read cache (cache.readCacheBytes). One own log
// has a read cache that holds every batch, filled before the runs (the warm
// comparison); another has one a quarter that size, so most of its point
// reads go to disk (the miss path).
// A row's figures are medians over runs with min–max; ratios are per run.
// `--clock cpu` divides by this process's CPU time (user + system, all its
// threads) instead of wall time: on a machine shared with other work, wall
// time measures the scheduler as much as the code. Every read here is of
// warm pages, so no phase waits on the disk.
// Prints one Markdown table on stdout; progress goes to stderr. The suite's
// `peers` group runs the same workloads through readPeers().
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { open as openAsync } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { open as openLmdb, type RootDatabase } from 'lmdb';
import { Log, type RecordInput } from '../src/seglog.js';
import type { PeerRow } from './peers.js';
import { benchDir, formatNumber, formatPercent, formatSummary, markdownTable, opsPerSecond, progress, rng, settle, summarize, usageError, warmUp } from './common.js';

const USAGE = 'usage: tsx bench/peers-reads.ts [--dir <path>] [--runs <n>] [--records <n>] [--sizes 1024,100] [--clock wall|cpu]';
const PER_BATCH = 100;
const MiB = 1024 * 1024;
const SCAN_CHUNK = MiB;
const RANDOM_MS = 600;
/** Bytes of records (values and their framing) each peer holds per record size, by default. */
const DATA_BYTES = 64 * 1024 * 1024;
/** Record i's timestamp is T0 + i, so a time lookup has one right answer. */
const T0 = 1_700_000_000_000;

/** The record with number `i`: `size` bytes, i in the first 4 (big-endian), i's low byte last. */
function recordValue(i: number, size: number): Buffer {
  const b = Buffer.alloc(size, 0x61 + (i % 26));
  b.writeUInt32BE(i, 0);
  b[size - 1] = i & 0xff;
  return b;
}

/** Every read phase checks what it read: a phase that checked less would look faster. */
function verify(value: Uint8Array | null | undefined, i: number, size: number): void {
  if (value == null || value.length !== size || value[size - 1] !== (i & 0xff) || ((value[0]! << 24) | (value[1]! << 16) | (value[2]! << 8) | value[3]!) >>> 0 !== i) {
    throw new Error(`record ${i}: wrong bytes read`);
  }
}

interface Peers {
  log: Log;
  /** The same records in a log with the own cache mode, reopened so that reads miss the tail cache; its read cache holds them all. */
  own: Log;
  /** The same again, with a read cache of a quarter of the records. */
  ownSmall: Log;
  /** The read cache budgets of `own` and `ownSmall`. */
  readCacheBytes: { fits: number; small: number };
  /** Length-prefixed file ([u32 length][bytes] per record) and its in-memory index. */
  flatPath: string;
  flatFd: number;
  positions: Float64Array;
  lmdb: RootDatabase<Buffer, number>;
}

async function build(dir: string, count: number, size: number): Promise<Peers> {
  const log = await Log.open(join(dir, 'log'));
  let own = await Log.open(join(dir, 'own'), { cache: { mode: 'own' } });
  let ownSmall = await Log.open(join(dir, 'own-small'), { cache: { mode: 'own' } });
  const flatPath = join(dir, 'flat.bin');
  const fd = openSync(flatPath, 'w+');
  const positions = new Float64Array(count);
  const lmdb = openLmdb<Buffer, number>({ path: join(dir, 'lmdb'), encoding: 'binary' });
  let position = 0;
  for (let first = 0; first < count; first += PER_BATCH) {
    const values: Buffer[] = [];
    for (let i = first; i < Math.min(count, first + PER_BATCH); i++) values.push(recordValue(i, size));
    const records = values.map((value, k): RecordInput => ({ value, timestamp: T0 + first + k }));
    await Promise.all([log.append(records), own.append(records), ownSmall.append(records)]);
    const chunk = Buffer.allocUnsafe(values.length * (4 + size));
    values.forEach((v, k) => {
      positions[first + k] = position + k * (4 + size);
      chunk.writeUInt32BE(size, k * (4 + size));
      v.copy(chunk, k * (4 + size) + 4);
    });
    writeSync(fd, chunk, 0, chunk.length, position);
    position += chunk.length;
    lmdb.transactionSync(() => values.forEach((v, k) => lmdb.putSync(first + k, v)));
  }
  await log.flush();
  // Whole MiBs, above the log's size (batches held are the log's bytes; the segment index adds nothing to it).
  const fits = Math.ceil((own.size * 1.05) / MiB) * MiB;
  const readCacheBytes = { fits, small: Math.ceil(fits / 4 / MiB) * MiB };
  await Promise.all([own.close(), ownSmall.close()]);
  own = await Log.open(join(dir, 'own'), { cache: { mode: 'own', readCacheBytes: readCacheBytes.fits } });
  ownSmall = await Log.open(join(dir, 'own-small'), { cache: { mode: 'own', readCacheBytes: readCacheBytes.small } });
  settle(join(dir, 'log'));
  settle(dir);
  return { log, own, ownSmall, readCacheBytes, flatPath, flatFd: fd, positions, lmdb };
}

/** An own-mode point-read subject, named with its read cache budget. */
function ownReadName(readCacheBytes: number, holds: string): string {
  return `seglog own readRecord (readCacheBytes ${readCacheBytes / MiB} MiB: ${holds})`;
}

type Clock = 'wall' | 'cpu';
let clock: Clock = 'wall';

/** Milliseconds on the chosen clock. */
function clockMs(): number {
  if (clock === 'wall') return performance.now();
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** Records per second of `scan`, which must return how many records it read and verified. */
async function rate(count: number, scan: () => Promise<number> | number): Promise<number> {
  const start = clockMs();
  const n = await scan();
  const ms = clockMs() - start;
  if (n !== count) throw new Error(`scan read ${n} records, expected ${count}`);
  return (n * 1000) / ms;
}

/** Parses [u32 length][bytes] records out of chunks read by `readAt`; records cross chunk boundaries. */
async function scanFlat(size: number, readAt: (buf: Buffer, position: number) => number | Promise<number>): Promise<number> {
  let buf = Buffer.allocUnsafe(SCAN_CHUNK);
  let filePos = 0;
  let have = 0;
  let i = 0;
  for (;;) {
    const n = await readAt(buf.subarray(have), filePos);
    filePos += n;
    have += n;
    let p = 0;
    while (have - p >= 4) {
      const length = buf.readUInt32BE(p);
      if (have - p < 4 + length) break;
      verify(buf.subarray(p + 4, p + 4 + length), i++, size);
      p += 4 + length;
    }
    if (n === 0) return i;
    // Keep the partial record at the front of a fresh buffer (the old one may still be viewed).
    const rest = buf.subarray(p, have);
    buf = Buffer.allocUnsafe(Math.max(SCAN_CHUNK, rest.length + 4 + size));
    rest.copy(buf);
    have = rest.length;
  }
}

type Sample = Record<string, number>;

async function sequential(p: Peers, count: number, size: number): Promise<Sample> {
  const out: Sample = {};
  out['seglog records(0)'] = await rate(count, async () => {
    let i = 0;
    for await (const r of p.log.records(0)) verify(r.value, i++, size);
    return i;
  });
  out['seglog batches(0)'] = await rate(count, async () => {
    let i = 0;
    for await (const batch of p.log.batches(0)) for (const r of batch.records) verify(r.value, i++, size);
    return i;
  });
  out['seglog own records(0)'] = await rate(count, async () => {
    let i = 0;
    for await (const r of p.own.records(0)) verify(r.value, i++, size);
    return i;
  });
  out['fs.readSync'] = await rate(count, () => scanFlat(size, (b, at) => readSync(p.flatFd, b, 0, b.length, at)));
  const handle = await openAsync(p.flatPath, 'r');
  try {
    out['fs.promises'] = await rate(count, () => scanFlat(size, async (b, at) => (await handle.read(b, 0, b.length, at)).bytesRead));
  } finally {
    await handle.close();
  }
  out['lmdb getRange'] = await rate(count, () => {
    let i = 0;
    for (const { key, value } of p.lmdb.getRange({ start: 0 })) {
      if (key !== i) throw new Error(`lmdb key ${key}, expected ${i}`);
      verify(value, i++, size);
    }
    return i;
  });
  return out;
}

async function random(p: Peers, count: number, size: number, seed: number, randomMs = RANDOM_MS): Promise<Sample> {
  const out: Sample = {};
  const buf = Buffer.allocUnsafe(size);
  const ops: Record<string, (i: number) => unknown> = {
    'seglog readRecord': async (i) => verify((await p.log.readRecord(i))?.value, i, size),
    [ownReadName(p.readCacheBytes.fits, 'holds every batch, filled first')]: async (i) => verify((await p.own.readRecord(i))?.value, i, size),
    [ownReadName(p.readCacheBytes.small, 'a quarter of the batches')]: async (i) => verify((await p.ownSmall.readRecord(i))?.value, i, size),
    'seglog offsetForTimestamp': async (i) => {
      const offset = await p.log.offsetForTimestamp(T0 + i);
      if (offset !== i) throw new Error(`offsetForTimestamp(T0 + ${i}) gave ${offset}`);
    },
    'fs.readSync': (i) => {
      if (readSync(p.flatFd, buf, 0, size, p.positions[i]! + 4) !== size) throw new Error('short read');
      verify(buf, i, size);
    },
    'lmdb get': (i) => verify(p.lmdb.get(i), i, size),
  };
  for (const [name, op] of Object.entries(ops)) {
    // The same offsets for every peer.
    const next = rng(seed);
    const pick = () => Math.floor(next() * count);
    await warmUp(() => op(pick()), 100);
    const start = clockMs();
    const { ops } = await opsPerSecond(() => op(pick()), randomMs);
    out[name] = (ops * 1000) / (clockMs() - start);
  }
  return out;
}

/** One row per workload (median, min–max over runs), then one per ratio [a, b]: a ÷ b taken per run. */
function table(title: string, runs: Sample[], ratios: Array<[string, string]>): string {
  const cell = (values: number[], f: (n: number) => string) => formatSummary(summarize(values), f);
  const rows = [
    ...Object.keys(runs[0]!).map((n) => [n, cell(runs.map((r) => r[n]!), formatNumber)]),
    ...ratios.map(([a, b]) => [`${a} ÷ ${b}`, cell(runs.map((r) => r[a]! / r[b]!), formatPercent)]),
  ];
  return markdownTable([title, `${runs.length} runs`], rows, ['l', 'r']);
}

/** Writes `count` records of `size` B to every peer, warms the page cache, then runs the sequential and random workloads `runs` times. */
async function measureSize(parent: string | undefined, size: number, count: number, runs: number, randomMs?: number): Promise<{ seq: Sample[]; rnd: Sample[] }> {
  const dir = await benchDir(parent);
  try {
    progress(`peers-reads: writing ${count} records of ${size} B to each peer`);
    const peers = await build(dir.path, count, size);
    try {
      await sequential(peers, count, size); // untimed pass: the page cache holds every peer's data
      // Every batch of the own log in its read cache (which holds them all); and a check that it did.
      for (let i = 0; i < count; i += PER_BATCH) await peers.own.readRecord(i);
      const filled = peers.own.cacheStats();
      for (let i = 0; i < count; i += PER_BATCH) await peers.own.readRecord(i);
      if (peers.own.cacheStats().readCacheHits - filled.readCacheHits !== Math.ceil(count / PER_BATCH)) throw new Error('the own log\'s read cache does not hold every batch');
      const seq: Sample[] = [];
      const rnd: Sample[] = [];
      for (let run = 0; run < runs; run++) {
        progress(`peers-reads: ${size} B run ${run + 1}/${runs}`);
        seq.push(await sequential(peers, count, size));
        rnd.push(await random(peers, count, size, 1000 + run, randomMs));
      }
      return { seq, rnd };
    } finally {
      await Promise.all([peers.log.close(), peers.own.close(), peers.ownSmall.close()]);
      peers.lmdb.close();
      closeSync(peers.flatFd);
    }
  } finally {
    await dir.remove();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { dir: { type: 'string' }, runs: { type: 'string', default: '3' }, records: { type: 'string' }, sizes: { type: 'string', default: '1024,100' }, clock: { type: 'string', default: 'wall' } },
  });
  if (values.clock !== 'wall' && values.clock !== 'cpu') usageError('--clock must be wall or cpu', USAGE);
  clock = values.clock;
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) usageError('--runs must be a positive integer', USAGE);
  const sizes = values.sizes!.split(',').map(Number);
  if (sizes.some((s) => !Number.isInteger(s) || s < 4)) usageError('--sizes must be integers >= 4', USAGE);
  const per = clock === 'cpu' ? ' per CPU second' : '';
  const out: string[] = [`## peers: reads (page cache warm, records written 100 per batch${clock === 'cpu' ? ', rates per CPU second of this process' : ''})`, ''];
  for (const size of sizes) {
    const count = values.records === undefined ? Math.round(DATA_BYTES / (size + 64)) : Number(values.records);
    const { seq, rnd } = await measureSize(values.dir, size, count, runs);
    out.push(`### ${size} B records, ${formatNumber(count)} records`, '');
    const seqRatios = ['seglog records(0)', 'seglog batches(0)'].flatMap((s): Array<[string, string]> => [
      [s, 'lmdb getRange'],
      [s, 'fs.readSync'],
    ]);
    out.push(table(`sequential, every record verified (records/s${per})`, seq, [...seqRatios, ['seglog own records(0)', 'seglog records(0)']]), '');
    const rndRatios: Array<[string, string]> = [
      ['seglog readRecord', 'lmdb get'],
      ['seglog readRecord', 'fs.readSync'],
      ...Object.keys(rnd[0]!)
        .filter((k) => k.startsWith('seglog own readRecord'))
        .map((k): [string, string] => [k, 'seglog readRecord']),
    ];
    out.push(table(`random read by offset, verified (reads/s${per})`, rnd, rndRatios), '');
  }
  console.log(out.join('\n'));
}

/**
 * The same workloads as rows for the suite's `peers` group: per record size,
 * a sequential and a random workload whose subjects each get one figure per
 * run (the peers' data built once per size, as main() does).
 */
export async function readPeers(parent: string | undefined, runs: number, options: { sizes: number[]; dataBytes?: number; randomMs?: number }): Promise<PeerRow[]> {
  const rows: PeerRow[] = [];
  for (const size of options.sizes) {
    const count = Math.round((options.dataBytes ?? DATA_BYTES) / (size + 64));
    const { seq, rnd } = await measureSize(parent, size, count, runs, options.randomMs);
    const add = (workload: string, unit: string, samples: Sample[]) => {
      for (const subject of Object.keys(samples[0]!)) {
        const values = samples.map((x) => x[subject]!);
        rows.push({ workload, subject, unit, ...summarize(values), samples: values });
      }
    };
    add(`sequential read ${size} B records, each verified`, 'records/s', seq);
    add(`random read ${size} B record by offset, verified`, 'reads/s', rnd);
  }
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();

// Log benchmark (M2): append, sequential read+decode, random read by offset,
// offset lookups and reopen of a ~1 GB log of 1 KiB records in batches of
// 100, each beside a raw fs baseline on the same data in the same run.
//
//   npx tsx bench/log.ts [--dir <path>] [--gb <n>] [--runs <n>]
//
// Every run builds a fresh log; figures are medians over runs with min–max.
// Reads are warm-cache: the data was just written and nothing is evicted.
// The seglog side of each phase is exported for the suite (bench/suite.ts),
// which sets it against the machine's ceilings instead.
import { closeSync, fstatSync, fsyncSync, openSync, readdirSync, readFileSync, readSync, rmSync, unlinkSync, writevSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { crc32cHardware, File, OffsetIndex } from '../src/io.js';
import { CLEAN_SHUTDOWN_FILE } from '../src/layout.js';
import {
  checkBatch,
  decodeBatch,
  encodeBatch,
  Log,
  readBatchHeader,
  type LogOptions,
  type LogRecord,
  type RecordInput,
} from '../src/seglog.js';
import {
  benchDir,
  comparisonTable,
  describeMachine,
  formatBytes,
  formatMachine,
  formatMs,
  formatNumber,
  now,
  opsPerSecond,
  progress,
  rng,
  settle,
  summarize,
  timed,
  usageError,
  warmPageCache,
  warmUp,
  type Comparison,
} from './common.js';

export const RECORD_BYTES = 1024;
export const BATCH_RECORDS = 100;
const SEGMENT_BYTES = 256 * 1024 * 1024;
// Distinct record values, cycled by offset; prime so consecutive batches differ.
const VALUE_POOL = 997;
const READ_CHUNK = 1024 * 1024;
const WARM_UP_MS = 300;
const RANDOM_MS = 2000;
const LOOKUP_MS = 1000;
// Lookups take well under a microsecond: time them in blocks so the clock read is not what gets measured.
const LOOKUP_BLOCK = 1000;
const CLEAN_REOPENS = 5;
/** The many-segment reopen: this many segments of MANY_SEGMENT_BATCHES batches each, reopened MANY_REOPENS times. */
export const MANY_SEGMENTS = 100;
const MANY_SEGMENT_BATCHES = 2;
const MANY_REOPENS = 11;
// Appends in flight for the pipelined row: enough for group commit to write several batches per pwritev.
export const APPEND_DEPTH = 8;
// Every SAMPLE_EVERY-th record of a sequential read has its contents compared.
const SAMPLE_EVERY = 1009;
// Every CRC_EVERY-th batch of a fetch-by-fetch read has its CRC checked (all have their offsets checked).
const CRC_EVERY = 16;

const USAGE = `usage: npx tsx bench/log.ts [--dir <path>] [--gb <n>] [--runs <n>]
  --dir   parent directory for the benchmark's files (default: the OS temp dir);
          a fresh subdirectory is created there and removed at the end
  --gb    log size in GiB of record values (default 1)
  --runs  repetitions; figures are medians with min–max (default 3)`;

function options(): { dir: string | undefined; gb: number; runs: number } {
  let values;
  try {
    ({ values } = parseArgs({
      options: { dir: { type: 'string' }, gb: { type: 'string', default: '1' }, runs: { type: 'string', default: '3' }, help: { type: 'boolean' } },
    }));
  } catch (err) {
    usageError((err as Error).message, USAGE);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const gb = Number(values.gb);
  const runs = Number(values.runs);
  if (!(gb > 0) || !Number.isFinite(gb)) usageError(`--gb must be a positive number, got ${values.gb}`, USAGE);
  if (!Number.isInteger(runs) || runs < 1) usageError(`--runs must be a positive integer, got ${values.runs}`, USAGE);
  return { dir: values.dir, gb, runs };
}

// ---------------------------------------------------------------- data

/** Deterministic record contents: the value of offset o is VALUES[o % VALUE_POOL]. */
const VALUES = (() => {
  const next = rng(42);
  return Array.from({ length: VALUE_POOL }, () => Buffer.from(Array.from({ length: RECORD_BYTES }, () => Math.floor(next() * 256))));
})();

/** The records of the batch whose first offset is o, prebuilt for every o % VALUE_POOL so appends measure seglog, not object building. */
const BATCHES: RecordInput[][] = Array.from({ length: VALUE_POOL }, (_, start) =>
  Array.from({ length: BATCH_RECORDS }, (_, i) => ({ value: VALUES[(start + i) % VALUE_POOL]! })),
);

function recordsAt(baseOffset: number): RecordInput[] {
  return BATCHES[baseOffset % VALUE_POOL]!;
}

function checkRecord(r: LogRecord, offset: number): void {
  if (r.offset !== offset) throw new Error(`verification: expected offset ${offset}, got ${r.offset}`);
  if (r.key !== null || r.headers.length !== 0 || r.value === null || !r.value.equals(VALUES[offset % VALUE_POOL]!)) {
    throw new Error(`verification: record ${offset} has the wrong contents`);
  }
}

/** Checks that `batch` (one whole batch) holds `offset` with the right contents. */
function checkBatchHolds(batch: Buffer, offset: number): void {
  const record = decodeBatch(batch).find((r) => r.offset === offset);
  if (record === undefined) throw new Error(`verification: batch does not hold offset ${offset}`);
  checkRecord(record, offset);
}

export interface Workload {
  batches: number;
  records: number;
  /** Bytes of one encoded batch on disk (all batches are the same size). */
  batchBytes: number;
  logBytes: number;
  /** encoded[k]: BATCHES[k] as append() encodes it before the log sets its offsets. */
  encoded: Buffer[];
  /** Batch b is appended with timestamp firstTimestamp + b, so a time lookup knows its answer. */
  firstTimestamp: number;
}

/** A log of about `valueBytes` of record values. */
export function workload(valueBytes: number): Workload {
  const batches = Math.max(1, Math.round(valueBytes / (RECORD_BYTES * BATCH_RECORDS)));
  const encoded = BATCHES.map((records) => encodeBatch(records));
  const batchBytes = encoded[0]!.length;
  if (encoded.some((b) => b.length !== batchBytes)) throw new Error('batches of equal records should encode to equal sizes');
  return { batches, records: batches * BATCH_RECORDS, batchBytes, logBytes: batches * batchBytes, encoded, firstTimestamp: Date.now() };
}

/** The bytes the raw baselines write for batch `b`: the same records seglog appends there. */
function encodedAt(w: Workload, b: number): Buffer {
  return w.encoded[(b * BATCH_RECORDS) % VALUE_POOL]!;
}

// ---------------------------------------------------------------- raw helpers

export function logFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => /^\d{20}\.log$/.test(n))
    .sort()
    .map((n) => join(dir, n));
}

/** Sequential fs.readSync of whole files in 1 MiB chunks; returns bytes read after checking each file starts with a v2 batch. */
function rawSequentialRead(paths: string[], buf: Buffer): number {
  let total = 0;
  for (const path of paths) {
    const fd = openSync(path, 'r');
    try {
      for (let position = 0; ; ) {
        const n = readSync(fd, buf, 0, buf.length, position);
        if (n === 0) break;
        if (position === 0 && buf[16] !== 2) throw new Error(`verification: ${path} does not start with a v2 batch`);
        position += n;
        total += n;
      }
    } finally {
      closeSync(fd);
    }
  }
  return total;
}

/** Floor search over sorted `keys`: index of the last key <= target, or -1. */
function floorIndex(keys: number[], target: number): number {
  let lo = 0;
  let hi = keys.length - 1;
  if (hi < 0 || keys[0]! > target) return -1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (keys[mid]! <= target) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// ---------------------------------------------------------------- seglog phases

/** Options every phase opens the log with; `cache` picks the read path. */
export function logOptions(cache?: LogOptions['cache']): LogOptions {
  return cache === undefined ? { segmentBytes: SEGMENT_BYTES } : { segmentBytes: SEGMENT_BYTES, cache };
}

/**
 * Appends batches 0..count-1 keeping up to `depth` appends in flight (1: each
 * awaited before the next), checking every offset seglog assigns.
 */
async function appendAll(log: Log, w: Workload, depth: number): Promise<void> {
  const inflight: Array<Promise<void>> = [];
  for (let b = 0; b < w.batches; b++) {
    const base = b * BATCH_RECORDS;
    inflight.push(
      log.append(recordsAt(base), { timestamp: w.firstTimestamp + b }).then((r) => {
        if (r.baseOffset !== base || r.lastOffset !== base + BATCH_RECORDS - 1) throw new Error(`verification: batch ${b} got offsets ${r.baseOffset}..${r.lastOffset}`);
      }),
    );
    if (inflight.length >= depth) await inflight.shift();
  }
  await Promise.all(inflight);
}

/**
 * Writes the workload into a fresh log at `path` with `depth` appends in
 * flight, after an untimed warm-up on a scratch log beside it. Returns the
 * open log, its contents checked and its data fsynced (untimed).
 */
export async function appendLog(path: string, w: Workload, depth: number): Promise<{ log: Log; ms: number }> {
  const scratch = `${path}.warm-up`;
  const warm = await Log.open(scratch, logOptions());
  await warmUp((i) => warm.append(recordsAt(i * BATCH_RECORDS)), WARM_UP_MS);
  await warm.close();
  rmSync(scratch, { recursive: true });
  const log = await Log.open(path, logOptions());
  const t = await timed(() => appendAll(log, w, depth));
  if (log.endOffset !== w.records || log.size !== w.logBytes) {
    throw new Error(`verification: log holds ${log.endOffset} records in ${log.size} bytes, expected ${w.records} in ${w.logBytes}`);
  }
  settle(path);
  return { log, ms: t.ms };
}

/** log.records(0) to the end, after a short warm-up: milliseconds, every offset and a sample of values checked. */
export async function readRecords(log: Log, w: Workload): Promise<number> {
  await warmUp(async () => {
    const records = log.records(0);
    for (let i = 0; i < 10 * BATCH_RECORDS; i++) await records.next();
    await records.return(undefined);
  }, WARM_UP_MS);
  const read = await timed(async () => {
    let expected = 0;
    for await (const r of log.records(0)) {
      if (expected % SAMPLE_EVERY === 0) checkRecord(r, expected);
      else if (r.offset !== expected) throw new Error(`verification: expected offset ${expected}, got ${r.offset}`);
      expected++;
    }
    return expected;
  });
  if (read.result !== w.records) throw new Error(`verification: read ${read.result} records, expected ${w.records}`);
  return read.ms;
}

/**
 * log.read() fetch after fetch of up to `maxBytes` from offset 0 to the end,
 * as a consumer fetches: milliseconds. Every batch's offsets are checked and
 * every CRC_EVERY-th batch's CRC, so a read of the wrong bytes fails.
 */
export async function readFetches(log: Log, w: Workload, maxBytes: number): Promise<number> {
  const read = await timed(async () => {
    let batches = 0;
    for (let next = 0; next < log.endOffset; ) {
      const { bytes, nextOffset } = await log.read(next, { maxBytes });
      for (let p = 0; p < bytes.length; batches++) {
        const h = readBatchHeader(bytes, p);
        if (h.baseOffset !== batches * BATCH_RECORDS || h.recordsCount !== BATCH_RECORDS) throw new Error(`verification: batch ${batches} read back as offset ${h.baseOffset}`);
        if (batches % CRC_EVERY === 0 && !checkBatch(bytes, p, p + h.size).ok) throw new Error(`verification: batch ${batches} fails its CRC`);
        p += h.size;
      }
      next = nextOffset;
    }
    return batches;
  });
  if (read.result !== w.batches) throw new Error(`verification: read ${read.result} batches, expected ${w.batches}`);
  return read.ms;
}

/** log.read() of one batch at random offsets for `ms`, after a warm-up: reads per second, a sample of them decoded and checked. */
export async function randomReads(log: Log, w: Workload, ms: number, seed: number): Promise<number> {
  const kept: Array<{ offset: number; batch: Buffer }> = [];
  const read = (next: () => number) => async (i: number) => {
    const offset = Math.floor(next() * w.records);
    const { bytes, nextOffset } = await log.read(offset, { maxBytes: 1 });
    const base = offset - (offset % BATCH_RECORDS);
    if (bytes.length !== w.batchBytes || bytes.readUInt32BE(4) !== base || nextOffset !== base + BATCH_RECORDS) {
      throw new Error(`verification: read(${offset}) returned ${bytes.length} bytes up to ${nextOffset}`);
    }
    // Decoding is not part of the figure: keep a sample to check afterwards.
    if (i % 64 === 0) kept.push({ offset, batch: bytes });
  };
  await warmUp(read(rng(1)), WARM_UP_MS);
  kept.length = 0;
  const rate = await opsPerSecond(read(rng(seed)), ms);
  for (const k of kept) checkBatchHolds(k.batch, k.offset);
  return rate.perSecond;
}

/** log.offsetForTimestamp() of random batches' timestamps for `ms`: lookups per second, each answer checked. */
export async function timeLookups(log: Log, w: Workload, ms: number, seed: number): Promise<number> {
  const lookup = (next: () => number) => async () => {
    const b = Math.floor(next() * w.batches);
    const offset = await log.offsetForTimestamp(w.firstTimestamp + b);
    if (offset !== b * BATCH_RECORDS) throw new Error(`verification: offsetForTimestamp(batch ${b}'s time) gave ${offset}, expected ${b * BATCH_RECORDS}`);
  };
  await warmUp(lookup(rng(3)), WARM_UP_MS);
  return (await opsPerSecond(lookup(rng(seed)), ms)).perSecond;
}

/**
 * OffsetIndex.lookup on the closed log's own index files for `ms`, beside a
 * binary search over JS arrays of the same entries: lookups per second each.
 */
export async function offsetLookups(logDir: string, w: Workload, ms: number, seed: number): Promise<{ seglog: number; baseline: number }> {
  const paths = logFiles(logDir);
  const bases = paths.map((p) => Number(p.slice(-24, -4)));
  const indexes = await Promise.all(bases.map((base, i) => OffsetIndex.open(paths[i]!.replace(/\.log$/, '.index'), base, { writable: false })));
  // The baseline's arrays come from the files' bytes, not from seglog, so a wrong lookup cannot agree with them by construction.
  const arrays = paths.map((p, i) => {
    const bytes = readFileSync(p.replace(/\.log$/, '.index'));
    const offsets: number[] = [];
    const positions: number[] = [];
    for (let at = 0; at < bytes.length; at += 8) {
      offsets.push(bases[i]! + bytes.readInt32BE(at));
      positions.push(bytes.readInt32BE(at + 4));
    }
    return { offsets, positions };
  });
  if (arrays.some((a, i) => a.offsets.length !== indexes[i]!.entries)) throw new Error('verification: index entry counts differ');
  // Targets and their segments are picked up front: both sides time the in-segment search only.
  const pick = rng(seed);
  const targets = Array.from({ length: 1 << 16 }, () => {
    const offset = Math.floor(pick() * w.records);
    return { segment: floorIndex(bases, offset), offset };
  });
  const arrayLookup = (segment: number, offset: number) => {
    const a = arrays[segment]!;
    const slot = floorIndex(a.offsets, offset);
    return slot < 0 ? { offset: bases[segment]!, position: 0 } : { offset: a.offsets[slot]!, position: a.positions[slot]! };
  };
  for (const t of targets) {
    const got = indexes[t.segment]!.lookup(t.offset);
    const want = arrayLookup(t.segment, t.offset);
    if (got.offset !== want.offset || got.position !== want.position) {
      throw new Error(`verification: lookup(${t.offset}) gave ${got.offset}@${got.position}, the entries say ${want.offset}@${want.position}`);
    }
  }
  const mask = targets.length - 1;
  // Results are summed so the work cannot be optimised away.
  let sink = 0;
  const seglogLookups = (block: number) => {
    for (let i = block * LOOKUP_BLOCK, end = i + LOOKUP_BLOCK; i < end; i++) {
      const t = targets[i & mask]!;
      sink += indexes[t.segment]!.lookup(t.offset).position;
    }
  };
  const arrayLookups = (block: number) => {
    for (let i = block * LOOKUP_BLOCK, end = i + LOOKUP_BLOCK; i < end; i++) {
      const t = targets[i & mask]!;
      sink += arrayLookup(t.segment, t.offset).position;
    }
  };
  await warmUp(seglogLookups, WARM_UP_MS);
  await warmUp(arrayLookups, WARM_UP_MS);
  const seglogRate = await opsPerSecond(seglogLookups, ms);
  const arrayRate = await opsPerSecond(arrayLookups, ms);
  if (!Number.isFinite(sink)) throw new Error('unreachable');
  await Promise.all(indexes.map((x) => x.close()));
  return { seglog: seglogRate.perSecond * LOOKUP_BLOCK, baseline: arrayRate.perSecond * LOOKUP_BLOCK };
}

/** readdir + open + fstat of every segment file in `logDir`: what a clean reopen is set against. Returns the descriptors. */
function openEverySegmentFile(logDir: string): number[] {
  const fds = readdirSync(logDir)
    .filter((n) => /^\d{20}\.(log|index|timeindex)$/.test(n))
    .map((n) => openSync(join(logDir, n), 'r'));
  for (const fd of fds) fstatSync(fd);
  return fds;
}

/**
 * Log.open of the cleanly closed log at `logDir`, `times` times, each
 * followed by readdir + open + fstat of every segment file (the same run,
 * interleaved): median milliseconds of each. Each open is checked against
 * `expect` and closed.
 */
async function reopenCleanly(logDir: string, options: LogOptions, times: number, expect: { records: number; bytes: number; segments?: number }): Promise<{ seglog: number; baseline: number }> {
  const seglog: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < times; i++) {
    const opened = await timed(() => Log.open(logDir, options));
    const log = opened.result;
    if (log.endOffset !== expect.records || log.size !== expect.bytes || (expect.segments !== undefined && log.segmentCount !== expect.segments)) {
      throw new Error('verification: clean reopen lost data');
    }
    seglog.push(opened.ms);
    await log.close();
    const raw = await timed(() => openEverySegmentFile(logDir));
    raw.result.forEach((fd) => closeSync(fd));
    baseline.push(raw.ms);
  }
  return { seglog: summarize(seglog).median, baseline: summarize(baseline).median };
}

/** Log.open of the cleanly closed log at `logDir`, CLEAN_REOPENS times, beside readdir + open + fstat of every segment file. */
export function reopenClean(logDir: string, w: Workload): Promise<{ seglog: number; baseline: number }> {
  return reopenCleanly(logDir, logOptions(), CLEAN_REOPENS, { records: w.records, bytes: w.logBytes });
}

/**
 * The same for a log of MANY_SEGMENTS segments built in `logDir` (what a
 * clean reopen must not pay per segment), MANY_REOPENS times; one record of
 * each segment is read back after the last reopen, from segments not read
 * since it.
 */
export async function reopenCleanMany(logDir: string, w: Workload): Promise<{ seglog: number; baseline: number }> {
  const options: LogOptions = { segmentBytes: MANY_SEGMENT_BATCHES * w.batchBytes };
  const log = await Log.open(logDir, options);
  for (let b = 0; b < MANY_SEGMENTS * MANY_SEGMENT_BATCHES; b++) await log.append(recordsAt(b * BATCH_RECORDS), { timestamp: w.firstTimestamp + b });
  if (log.segmentCount !== MANY_SEGMENTS) throw new Error(`verification: ${log.segmentCount} segments, not ${MANY_SEGMENTS}`);
  const expect = { records: log.endOffset, bytes: log.size, segments: MANY_SEGMENTS };
  await log.close();
  const result = await reopenCleanly(logDir, options, MANY_REOPENS, expect);
  const reopened = await Log.open(logDir, options);
  for (let offset = 0; offset < expect.records; offset += MANY_SEGMENT_BATCHES * BATCH_RECORDS) {
    const record = await reopened.readRecord(offset + 1);
    if (record === undefined) throw new Error(`verification: record ${offset + 1} missing after a clean reopen`);
    checkRecord(record, offset + 1);
  }
  await reopened.close();
  return result;
}

/** Log.open of the closed log at `logDir` as if it had crashed (full CRC scan): milliseconds, then a sample of reads checked. */
export async function reopenUnclean(logDir: string, w: Workload, seed: number): Promise<number> {
  unlinkSync(join(logDir, CLEAN_SHUTDOWN_FILE));
  const recovered = await timed(() => Log.open(logDir, logOptions()));
  const log = recovered.result;
  if (log.endOffset !== w.records || log.size !== w.logBytes) throw new Error('verification: recovery lost data');
  const probe = rng(seed);
  for (let i = 0; i < 20; i++) {
    const offset = Math.floor(probe() * w.records);
    checkBatchHolds((await log.read(offset, { maxBytes: 1 })).bytes, offset);
  }
  await log.close();
  return recovered.ms;
}

// ---------------------------------------------------------------- one run

type Samples = Record<string, { seglog: number; baseline: number }>;

async function oneRun(parent: string, w: Workload, run: number): Promise<Samples> {
  const out: Samples = {};
  const dir = join(parent, `run-${run}`);
  const logDir = join(dir, 'log');
  await mkdir(dir, { recursive: true });
  const tag = `run ${run + 1}`;

  // -------- append: four writes of the same bytes; each file but the log is deleted before the next
  const raw = join(dir, 'raw.bin');
  const scratch = join(dir, 'warm-up');
  progress(`${tag}: page-cache warm-up (untimed)`);
  warmPageCache(dir, 2 * w.logBytes);

  progress(`${tag}: append, raw writevSync baseline`);
  const warmFd = openSync(scratch, 'w');
  await warmUp((i) => writevSync(warmFd, [encodedAt(w, i)]), WARM_UP_MS);
  closeSync(warmFd);
  // Warm-up goes to its own file: rewriting pages already cached would flatter the timed run.
  rmSync(scratch);
  const rawFd = openSync(raw, 'w');
  const rawWrite = await timed(() => {
    for (let b = 0; b < w.batches; b++) writevSync(rawFd, [encodedAt(w, b)], b * w.batchBytes);
  });
  if (fstatSync(rawFd).size !== w.logBytes) throw new Error('verification: raw file has the wrong size');
  fsyncSync(rawFd);
  closeSync(rawFd);
  rmSync(raw);

  progress(`${tag}: append, raw async pwrite baseline`);
  const warmFile = await File.open(scratch, { create: true });
  await warmUp((i) => warmFile.write(encodedAt(w, i), i * w.batchBytes), WARM_UP_MS);
  await warmFile.close();
  rmSync(scratch);
  const rawFile = await File.open(raw, { create: true });
  const asyncWrite = await timed(async () => {
    for (let b = 0; b < w.batches; b++) await rawFile.write(encodedAt(w, b), b * w.batchBytes);
  });
  if ((await rawFile.size()) !== w.logBytes) throw new Error('verification: raw file has the wrong size');
  await rawFile.sync();
  await rawFile.close();
  rmSync(raw);

  progress(`${tag}: append, seglog, ${APPEND_DEPTH} in flight`);
  const pipelined = await appendLog(join(dir, 'pipelined'), w, APPEND_DEPTH);
  await pipelined.log.close();
  rmSync(join(dir, 'pipelined'), { recursive: true });
  // The log the read phases use is written last, so no other write phase ran with it in the page cache.
  progress(`${tag}: append, seglog, 1 in flight`);
  const awaited = await appendLog(logDir, w, 1);
  const log = awaited.log;
  const mbs = (ms: number) => w.logBytes / 1e3 / ms;
  out.appendMBs = { seglog: mbs(awaited.ms), baseline: mbs(rawWrite.ms) };
  out.appendRecords = { seglog: (w.records * 1e3) / awaited.ms, baseline: (w.records * 1e3) / rawWrite.ms };
  out.appendPipelined = { seglog: mbs(pipelined.ms), baseline: mbs(rawWrite.ms) };
  out.appendAsync = { seglog: mbs(awaited.ms), baseline: mbs(asyncWrite.ms) };

  // -------- sequential read
  progress(`${tag}: sequential read`);
  const paths = logFiles(logDir);
  const chunk = Buffer.allocUnsafe(READ_CHUNK);
  const rawRead = await timed(() => rawSequentialRead(paths, chunk));
  if (rawRead.result !== w.logBytes) throw new Error(`verification: raw read ${rawRead.result} bytes, expected ${w.logBytes}`);
  const seqMs = await readRecords(log, w);
  out.seqMBs = { seglog: w.logBytes / 1e3 / seqMs, baseline: w.logBytes / 1e3 / rawRead.ms };
  // Raw pread decodes nothing; its records/s is the rate its bytes carry records at.
  out.seqRecords = { seglog: (w.records * 1e3) / seqMs, baseline: (w.records * 1e3) / rawRead.ms };

  // -------- random reads
  progress(`${tag}: random reads`);
  const fds = paths.map((p) => openSync(p, 'r'));
  const batchesPerFile = paths.map((_, i) => fstatSync(fds[i]!).size / w.batchBytes);
  if (batchesPerFile.some((n) => !Number.isInteger(n))) throw new Error('verification: a segment does not hold whole batches of the expected size');
  const fileOfBatch = (b: number) => {
    let f = 0;
    while (b >= batchesPerFile[f]!) b -= batchesPerFile[f++]!;
    return { fd: fds[f]!, position: b * w.batchBytes };
  };
  const batchBuf = Buffer.allocUnsafe(w.batchBytes);
  const rawRandom = (next: () => number) => () => {
    const b = Math.floor(next() * w.batches);
    const { fd, position } = fileOfBatch(b);
    if (readSync(fd, batchBuf, 0, w.batchBytes, position) !== w.batchBytes || batchBuf.readUInt32BE(4) !== b * BATCH_RECORDS) {
      throw new Error(`verification: raw pread of batch ${b} returned the wrong bytes`);
    }
  };
  await warmUp(rawRandom(rng(1)), WARM_UP_MS);
  const rawRandomRate = await opsPerSecond(rawRandom(rng(2 + run)), RANDOM_MS);
  fds.forEach((fd) => closeSync(fd));
  out.random = { seglog: await randomReads(log, w, RANDOM_MS, 2 + run), baseline: rawRandomRate.perSecond };
  await log.close();

  // -------- offset lookups, on the log's own index files
  progress(`${tag}: offset lookups`);
  out.lookups = await offsetLookups(logDir, w, LOOKUP_MS, 7 + run);

  // -------- reopen
  progress(`${tag}: reopen after clean shutdown`);
  out.reopenClean = await reopenClean(logDir, w);
  progress(`${tag}: reopen after unclean shutdown`);
  const recoveredMs = await reopenUnclean(logDir, w, 11 + run);
  const scan = await timed(() => rawSequentialRead(logFiles(logDir), chunk));
  if (scan.result !== w.logBytes) throw new Error('verification: raw scan read the wrong number of bytes');
  out.reopenUnclean = { seglog: recoveredMs, baseline: scan.ms };

  rmSync(dir, { recursive: true });
  return out;
}

// ---------------------------------------------------------------- report

const ROWS: Array<Omit<Comparison, 'seglog' | 'baseline'> & { key: string }> = [
  { key: 'appendMBs', name: 'append 100 × 1 KiB, 1 in flight', unit: 'MB/s', kind: 'rate', baselineLabel: 'fs.writevSync of the same encoded batches, one per call, to a plain file' },
  { key: 'appendRecords', name: 'append 100 × 1 KiB, 1 in flight', unit: 'records/s', kind: 'rate', baselineLabel: 'the same writevSync run, in records' },
  { key: 'appendPipelined', name: `append 100 × 1 KiB, ${APPEND_DEPTH} in flight`, unit: 'MB/s', kind: 'rate', baselineLabel: 'the same writevSync run (group commit may merge batches into one pwritev)' },
  {
    key: 'appendAsync',
    name: 'append 100 × 1 KiB, 1 in flight, vs async write',
    unit: 'MB/s',
    kind: 'rate',
    baselineLabel: "awaited File.write (the addon's pwrite on the libuv threadpool) of the same batches: the ceiling for a write that does not block the event loop",
  },
  { key: 'seqMBs', name: 'sequential read + decode, log.records(0)', unit: 'MB/s', kind: 'rate', baselineLabel: 'fs.readSync of the .log files in 1 MiB chunks' },
  { key: 'seqRecords', name: 'sequential read + decode', unit: 'records/s', kind: 'rate', baselineLabel: 'same pread run, records its bytes hold (nothing decoded)' },
  { key: 'random', name: 'random read by offset, maxBytes 1 (one batch)', unit: 'reads/s', kind: 'rate', baselineLabel: 'fs.readSync of one batch at a random batch position' },
  { key: 'lookups', name: 'offset lookup, OffsetIndex.lookup', unit: 'lookups/s', kind: 'rate', baselineLabel: 'binary search over JS arrays of the same entries' },
  { key: 'reopenClean', name: 'reopen after clean shutdown', unit: 'time', kind: 'time', baselineLabel: `readdir + open + fstat of every segment file (median of ${CLEAN_REOPENS} per run)` },
  { key: 'reopenUnclean', name: 'reopen after unclean shutdown (full CRC scan)', unit: 'time', kind: 'time', baselineLabel: 'fs.readSync of every .log byte in 1 MiB chunks' },
];

async function main(): Promise<void> {
  const opts = options();
  const w = workload(opts.gb * 2 ** 30);
  const batchBytes = w.batchBytes;

  const dir = await benchDir(opts.dir);
  const started = now();
  try {
    const machine = describeMachine(dir.path);
    const runs: Samples[] = [];
    for (let run = 0; run < opts.runs; run++) runs.push(await oneRun(dir.path, w, run));
    const rows: Comparison[] = ROWS.map(({ key, ...row }) => ({
      ...row,
      seglog: runs.map((r) => r[key]!.seglog),
      baseline: runs.map((r) => r[key]!.baseline),
    }));
    const segments = Math.ceil(w.logBytes / (Math.floor(SEGMENT_BYTES / batchBytes) * batchBytes));
    console.log(`# seglog log benchmark\n`);
    console.log(
      formatMachine(machine, {
        'CRC-32C': crc32cHardware ? 'hardware (SSE4.2)' : 'software table',
        Target: dir.path,
      }),
    );
    console.log(
      `\nWorkload: ${formatNumber(w.records)} records of ${RECORD_BYTES} B values, ${BATCH_RECORDS} per batch ` +
        `(${batchBytes} B per batch on disk), ${formatBytes(w.logBytes)} of log in ${segments} segments of ${formatBytes(SEGMENT_BYTES)}; ` +
        `flush policy none; ${opts.runs} run(s), each on a fresh log.\n`,
    );
    console.log(comparisonTable(rows, (c, n) => (c.kind === 'time' ? formatMs(n) : formatNumber(n))));
    console.log(
      `\nCells: median (min–max) over runs. Ratio = seglog speed ÷ baseline speed per run (for times: baseline time ÷ seglog time); 100% = as fast as the baseline. MB = 10^6 bytes.`,
    );
    console.log(
      `Reads are warm-cache: the log was just written and nothing is evicted, so reads come from the page cache. ` +
        `Before the writes of each run, ${formatBytes(2 * w.logBytes)} is written and deleted (untimed) so every timed write lands in memory the system has used before; ` +
        `dirty data is fsynced (untimed) between phases so one phase's writeback does not run during the next.`,
    );
    console.log(`\nBaselines:`);
    for (const r of ROWS) console.log(`- ${r.name} (${r.unit}): ${r.baselineLabel}`);
    console.log(`\nTotal time ${formatMs(now() - started)}.`);
  } finally {
    await dir.remove();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();

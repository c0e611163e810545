// The ceilings the suite (bench/suite.ts) sets every seglog figure against:
// what this machine's disk, kernel and loopback do for the simplest program
// doing the same job, measured in-process through the addon seglog itself
// uses (src/native.ts), on the same directory, in the same run. With fio or
// iperf3 installed, they measure the same things from outside as a
// cross-check that the in-process ceilings are not themselves held back.
//
// Every 4 KiB of a ceiling file starts with its page number, so a read that
// returns the wrong place, stale bytes or nothing fails instead of looking fast.
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { allocAligned, File, freeAligned } from '../src/io.js';
import { now, opsPerSecond, percentile, progress, rng, warmUp } from './common.js';
import { openSegments, rawSendfile, serve, type Receiver } from './sendfile.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Transfer size of the sequential ceilings. */
const BLOCK = MiB;
const STAMP_EVERY = 4 * KiB;
const FSYNC_BLOCK = 4 * KiB;
const WARM_UP_MS = 200;
/** A warm sequential read of the page cache is quick: repeat it for at least this long so the clock resolves it. */
const WARM_READ_MS = 500;

export interface CeilingSizes {
  /** Bytes of each sequential write and read (rounded up to whole 1 MiB blocks). */
  bytes: number;
  /** How long the write + fdatasync loop runs. */
  latencyMs: number;
  /** How long the random reads run. */
  randomMs: number;
  /** Length of each random read: the size of a seglog batch, so random reads of the log have a like-for-like ceiling. */
  readBytes: number;
}

/** One run of every ceiling. Rates are MB/s (10^6 bytes) unless named otherwise; times are ms. */
export interface CeilingRun {
  writeBuffered: number;
  writeSynced: number;
  writeDirect: number;
  fdatasyncP50: number;
  fdatasyncP99: number;
  fdatasyncPerSecond: number;
  readCold: number;
  readWarm: number;
  randomReadsPerSecond: number;
  sendfile: number;
}

export type CeilingName = keyof CeilingRun;

export const CEILINGS: Record<CeilingName, { label: string; unit: string; kind: 'rate' | 'time'; how: string }> = {
  writeBuffered: { label: 'sequential write, buffered', unit: 'MB/s', kind: 'rate', how: '1 MiB File.write calls into the page cache, one at a time, until the file is written (no fdatasync)' },
  writeSynced: { label: 'sequential write, buffered + fdatasync', unit: 'MB/s', kind: 'rate', how: 'the same run, until its closing fdatasync returned: the rate data reaches the disk' },
  writeDirect: { label: 'sequential write, O_DIRECT', unit: 'MB/s', kind: 'rate', how: '1 MiB File.write calls from an allocAligned buffer to a file opened with direct: true' },
  fdatasyncP50: { label: '4 KiB write + fdatasync, p50', unit: 'ms', kind: 'time', how: 'File.write of 4 KiB at the end of a file, then File.datasync, back to back' },
  fdatasyncP99: { label: '4 KiB write + fdatasync, p99', unit: 'ms', kind: 'time', how: 'the same loop' },
  fdatasyncPerSecond: { label: '4 KiB write + fdatasync', unit: 'ops/s', kind: 'rate', how: 'the same loop' },
  readCold: { label: 'sequential read, cold (O_DIRECT)', unit: 'MB/s', kind: 'rate', how: '1 MiB File.read calls with direct: true of a file written with O_DIRECT: every byte from the device' },
  readWarm: { label: 'sequential read, warm', unit: 'MB/s', kind: 'rate', how: '1 MiB File.read calls of a file whose pages are all in the page cache' },
  randomReadsPerSecond: { label: 'random read, warm, one batch', unit: 'reads/s', kind: 'rate', how: 'File.read of one seglog batch length at random 4 KiB-aligned positions of a cached file' },
  sendfile: { label: 'sendfile over loopback', unit: 'MB/s', kind: 'rate', how: "the addon's sendfile(2) of a cached file to a TCP socket read by another process" },
};

// ---------------------------------------------------------------- stamped files

/** Writes the page numbers of `block`'s pages into it, the block starting at file position `position`. */
function stamp(block: Buffer, position: number): void {
  for (let at = 0; at < block.length; at += STAMP_EVERY) block.writeUInt32LE((position + at) / STAMP_EVERY, at);
}

/** Throws unless `bytes` read at file position `position` carries the stamps of the first and the last page it holds. */
function checkStamps(bytes: Buffer, n: number, position: number, path: string): void {
  const last = Math.floor((n - 1) / STAMP_EVERY) * STAMP_EVERY;
  for (const at of [0, last]) {
    if (bytes.readUInt32LE(at) !== (position + at) / STAMP_EVERY) throw new Error(`verification: ${path} at ${position + at} does not hold what was written there`);
  }
}

/** A buffer for 1 MiB transfers: page aligned for O_DIRECT, freed by the returned function. */
function blockBuffer(direct: boolean): { block: Buffer; free: () => void } {
  if (!direct) return { block: Buffer.allocUnsafe(BLOCK), free: () => undefined };
  const block = allocAligned(BLOCK);
  return { block, free: () => freeAligned(block) };
}

/**
 * Writes a stamped file of `bytes` (rounded up to whole 1 MiB blocks), then
 * fdatasyncs it: MB/s up to the last write and up to the fdatasync.
 */
export async function sequentialWrite(path: string, size: number, direct: boolean): Promise<{ written: number; synced: number }> {
  const bytes = wholeBlocks(size);
  const { block, free } = blockBuffer(direct);
  // Random filler: nothing on the way can shortcut zeros or repeats.
  randomFillSync(block);
  const file = await File.open(path, { create: true, truncate: true, direct });
  try {
    const start = now();
    for (let position = 0; position < bytes; position += BLOCK) {
      stamp(block, position);
      await file.write(block, position);
    }
    const written = now();
    await file.datasync();
    const synced = now();
    if ((await file.size()) !== bytes) throw new Error(`verification: ${path} holds ${await file.size()} bytes, ${bytes} were written`);
    return { written: bytes / 1e3 / (written - start), synced: bytes / 1e3 / (synced - start) };
  } finally {
    await file.close();
    free();
  }
}

/** Reads the stamped file at `path` in 1 MiB blocks, whole passes until `minMs` passed (one pass at least), checking every block: MB/s. */
export async function sequentialRead(path: string, bytes: number, direct: boolean, minMs: number): Promise<number> {
  const { block, free } = blockBuffer(direct);
  const file = await File.open(path, { direct });
  try {
    let read = 0;
    const start = now();
    do {
      for (let position = 0; position < bytes; position += BLOCK) {
        const n = await file.read(block, position);
        if (n !== Math.min(BLOCK, bytes - position)) throw new Error(`verification: read ${n} bytes of ${path} at ${position}`);
        checkStamps(block, n, position, path);
        read += n;
      }
    } while (now() - start < minMs);
    return read / 1e3 / (now() - start);
  } finally {
    await file.close();
    free();
  }
}

/** Reads of `length` bytes at random page-aligned positions of the cached stamped file for `ms`: reads per second, each checked. */
async function randomReads(path: string, bytes: number, length: number, ms: number, seed: number): Promise<number> {
  const file = await File.open(path);
  const into = Buffer.allocUnsafe(length);
  const pages = Math.floor((bytes - length) / STAMP_EVERY);
  const read = (next: () => number) => async () => {
    const position = Math.floor(next() * pages) * STAMP_EVERY;
    const n = await file.read(into, position);
    if (n !== length) throw new Error(`verification: read ${n} bytes of ${path} at ${position}, wanted ${length}`);
    checkStamps(into, n, position, path);
  };
  try {
    await warmUp(read(rng(seed + 1000)), WARM_UP_MS);
    return (await opsPerSecond(read(rng(seed)), ms)).perSecond;
  } finally {
    await file.close();
  }
}

/** 4 KiB writes at the end of a file, each followed by fdatasync, for `ms`: the latency of the smallest durable append. */
export async function fdatasyncLatency(path: string, ms: number): Promise<{ p50: number; p99: number; p999: number; perSecond: number }> {
  const file = await File.open(path, { create: true, truncate: true });
  const block = Buffer.alloc(FSYNC_BLOCK, 0x62);
  const latencies: number[] = [];
  try {
    const start = now();
    for (let position = 0; now() - start < ms; position += block.length) {
      const t = now();
      await file.write(block, position);
      await file.datasync();
      latencies.push(now() - t);
    }
    if ((await file.size()) !== latencies.length * FSYNC_BLOCK) throw new Error(`verification: ${path} has the wrong size`);
    const elapsed = now() - start;
    latencies.sort((a, b) => a - b);
    return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), p999: percentile(latencies, 99.9), perSecond: (latencies.length * 1000) / elapsed };
  } finally {
    await file.close();
  }
}

function wholeBlocks(bytes: number): number {
  return Math.ceil(bytes / BLOCK) * BLOCK;
}

/**
 * One run of every ceiling in `dir`, files removed afterwards. `seed` varies
 * the random positions between runs; `tag` prefixes the progress messages.
 * The page cache should have been warmed (common.ts warmPageCache) before
 * the first run.
 */
export async function measureCeilings(dir: string, sizes: CeilingSizes, receiver: Receiver, seed: number, tag: string): Promise<CeilingRun> {
  const step = (what: string) => progress(`${tag}: ${what}`);
  const bytes = wholeBlocks(sizes.bytes);
  const buffered = join(dir, 'ceiling-buffered');
  const direct = join(dir, 'ceiling-direct');
  const fsync = join(dir, 'ceiling-fdatasync');
  try {
    step('sequential write, buffered');
    const write = await sequentialWrite(buffered, bytes, false);
    step('sequential write, O_DIRECT');
    const writeDirect = (await sequentialWrite(direct, bytes, true)).written;
    step('4 KiB write + fdatasync');
    const latency = await fdatasyncLatency(fsync, sizes.latencyMs);
    step('sequential read, cold (O_DIRECT)');
    const readCold = await sequentialRead(direct, bytes, true, 0);
    rmSync(direct);
    step('sequential read, warm');
    // One untimed pass makes sure every page is cached: the write left them there unless memory ran short.
    await sequentialRead(buffered, bytes, false, 0);
    const readWarm = await sequentialRead(buffered, bytes, false, WARM_READ_MS);
    step('random reads, warm');
    const randomReadsPerSecond = await randomReads(buffered, bytes, sizes.readBytes, sizes.randomMs, seed);
    const segments = await openSegments([buffered]);
    try {
      const served = await serve(receiver, segments, [{ name: `${tag}: sendfile over loopback`, send: rawSendfile(segments) }], 1);
      return {
        writeBuffered: write.written,
        writeSynced: write.synced,
        writeDirect,
        fdatasyncP50: latency.p50,
        fdatasyncP99: latency.p99,
        fdatasyncPerSecond: latency.perSecond,
        readCold,
        readWarm,
        randomReadsPerSecond,
        sendfile: served.samples[0]![0]!.gbps * 1000,
      };
    } finally {
      await Promise.all(segments.files.map((f) => f.close()));
    }
  } finally {
    for (const path of [buffered, direct, fsync]) rmSync(path, { force: true });
  }
}

// ---------------------------------------------------------------- fio cross-check

interface FioJob {
  read: { bw_bytes: number; iops: number };
  write: { bw_bytes: number; iops: number };
}

/** Runs one fio job on `file` and returns its figures; throws with fio's message if it fails. */
function fio(file: string, args: string[]): FioJob {
  const r = spawnSync('fio', ['--name=ceiling', `--filename=${file}`, '--ioengine=psync', '--output-format=json', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`fio ${args.join(' ')} failed: ${(r.stderr || r.stdout).slice(0, 300)}`);
  return (JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: FioJob[] }).jobs[0]!;
}

/**
 * The same ceilings measured by fio, when it is installed: a figure per
 * ceiling name (same units), or why there are none.
 */
export function fioCeilings(dir: string, sizes: CeilingSizes): Partial<Record<CeilingName, number>> | string {
  if (spawnSync('fio', ['--version']).error !== undefined) return 'not installed';
  const file = join(dir, 'ceiling-fio');
  const size = `--size=${wholeBlocks(sizes.bytes)}`;
  const seconds = (ms: number) => [`--runtime=${Math.max(1, Math.round(ms / 1000))}`, '--time_based'];
  try {
    const out: Partial<Record<CeilingName, number>> = {};
    // end_fsync: fio's write figure then counts the closing fsync, like writeSynced.
    out.writeSynced = fio(file, ['--rw=write', '--bs=1M', size, '--end_fsync=1']).write.bw_bytes / 1e6;
    out.writeDirect = fio(file, ['--rw=write', '--bs=1M', size, '--direct=1']).write.bw_bytes / 1e6;
    out.readCold = fio(file, ['--rw=read', '--bs=1M', size, '--direct=1']).read.bw_bytes / 1e6;
    // invalidate=0 keeps the pages fio would otherwise drop before the job; the first pass caches them.
    fio(file, ['--rw=read', '--bs=1M', size, '--invalidate=0']);
    out.readWarm = fio(file, ['--rw=read', '--bs=1M', size, '--invalidate=0', ...seconds(WARM_READ_MS)]).read.bw_bytes / 1e6;
    out.randomReadsPerSecond = fio(file, ['--rw=randread', `--bs=${Math.ceil(sizes.readBytes / STAMP_EVERY) * STAMP_EVERY}`, size, '--invalidate=0', ...seconds(sizes.randomMs)]).read.iops;
    rmSync(file, { force: true });
    out.fdatasyncPerSecond = fio(file, ['--rw=write', `--bs=${FSYNC_BLOCK}`, '--size=256M', '--fdatasync=1', ...seconds(sizes.latencyMs)]).write.iops;
    return out;
  } catch (err) {
    return (err as Error).message;
  } finally {
    rmSync(file, { force: true });
  }
}

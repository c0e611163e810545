// seglog beside what a Node user would pick instead, in the same run: plain
// fs (sync and promises: a length-prefixed file with an in-memory index) and
// LMDB. Append workloads: 100 records per append, each append awaited before
// the next, at 100 B, 1 KiB and 16 KiB records, and single 100 B records;
// durable appends pay one fdatasync per append, beside the native write +
// fdatasync (one threadpool job per append, File.writevDatasync) as their
// ceiling. Trials interleave the subjects so that each sees the
// same machine state; every trial starts on fresh files.
//
//   npm run bench:peers -- [--dir <path>] [--trials <n>] [--ms <n>] [--sizes 100,1024,16384]
//
// The shape other files plug into (the read path adds its workloads the same
// way): a PeerWorkload is a name, a unit and subjects; a subject's trial
// returns one figure (bigger is better) and optional notes (event-loop delay,
// RSS). runPeers() runs workloads and returns one PeerRow per workload and
// subject; peersTable() prints them with seglog's ratio to each peer.
import { closeSync, fdatasyncSync, openSync, writevSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { open as openLmdb } from 'lmdb';
import { File } from '../src/io.js';
import { Log, type LogOptions, type RecordInput } from '../src/seglog.js';
import { benchDir, formatNumber, markdownTable, now, progress, summarize, usageError } from './common.js';

export interface PeerRow {
  workload: string;
  /** 'seglog ...' rows are the ones compared; every other subject is a peer. */
  subject: string;
  unit: string;
  median: number;
  min: number;
  max: number;
  /** One figure per trial, in trial order. */
  samples: number[];
  /** Notes beside the figure, e.g. the longest event-loop delay and RSS. */
  extra?: string;
  /** The workload's subjects were measured in the same trials, turn by turn: sample i of each together. */
  paired?: boolean;
}

export interface TrialResult {
  value: number;
  /** Longest event-loop delay during the trial, and the process's largest RSS (seglog rows). */
  loopDelayMs?: number;
  rssMiB?: number;
}

export interface PeerSubject {
  name: string;
  /** One trial in the empty directory `dir`. */
  trial(dir: string): Promise<TrialResult>;
}

export interface PeerWorkload {
  name: string;
  unit: string;
  subjects: PeerSubject[];
}

const RECORDS_PER_APPEND = 100;
const APPEND = { append: true };
/** Bytes one trial writes at most, so 16 KiB trials stay within the page cache. */
const TRIAL_BYTES = 1024 * 1024 * 1024;
export const RECORD_SIZES = [100, 1024, 16 * 1024];

function records(size: number, count: number): RecordInput[] {
  return Array.from({ length: count }, (_, i) => ({ value: Buffer.alloc(size, 0x61 + (i % 26)) }));
}

/** Repeats awaited `append`s of `count` records for `ms` (or TRIAL_BYTES); records/s plus the longest event-loop delay and RSS when `notes`. */
async function appendLoop(ms: number, count: number, bytesPerAppend: number, append: () => unknown, notes: boolean): Promise<TrialResult & { appends: number }> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const limit = Math.max(1, Math.floor(TRIAL_BYTES / bytesPerAppend));
  const start = now();
  let appends = 0;
  let rss = 0;
  while (appends < limit && now() - start < ms) {
    await append();
    appends++;
    if ((appends & 63) === 0) rss = Math.max(rss, process.memoryUsage.rss());
  }
  const elapsed = now() - start;
  delay.disable();
  rss = Math.max(rss, process.memoryUsage.rss());
  const value = (appends * count) / (elapsed / 1000);
  if (!notes) return { value, appends };
  return { value, appends, loopDelayMs: delay.max / 1e6, rssMiB: rss / 2 ** 20 };
}

function seglogSubject(name: string, options: LogOptions, size: number, ms: number, count = RECORDS_PER_APPEND): PeerSubject {
  return {
    name,
    async trial(dir) {
      // One batch per append: 100 records of 16 KiB exceed Kafka's default maxMessageBytes (1 MiB), as they would a broker's.
      const log = await Log.open(join(dir, 'log'), { maxMessageBytes: Math.max(1048588, 2 * (size + 64) * count), ...options });
      const batch = records(size, count);
      try {
        const r = await appendLoop(ms, count, size * count, () => log.append(batch), true);
        // Every acknowledged record must be there.
        if (log.endOffset !== r.appends * count || r.appends === 0) throw new Error(`verification: log ends at ${log.endOffset} after ${r.appends} appends of ${count}`);
        return r;
      } finally {
        await log.close();
      }
    },
  };
}

/** A plain file of [u32 length][value] records and an in-memory offset -> position index, as a Node user writes it. */
class PlainFile {
  readonly index: number[] = [];
  position = 0;
  readonly #values: Buffer[];

  constructor(size: number, count: number) {
    this.#values = records(size, count).map((r) => r.value as Buffer);
  }

  /** The iovecs of one append (length prefixes and values), indexing each record. */
  chunks(): Buffer[] {
    const prefixes = Buffer.allocUnsafe(4 * this.#values.length);
    const out: Buffer[] = [];
    let at = this.position;
    this.#values.forEach((v, i) => {
      prefixes.writeUInt32LE(v.length, 4 * i);
      out.push(prefixes.subarray(4 * i, 4 * i + 4), v);
      this.index.push(at);
      at += 4 + v.length;
    });
    return out;
  }

  wrote(bytes: number): void {
    this.position += bytes;
  }
}

function fsSyncSubject(name: string, size: number, ms: number, durable: boolean, count = RECORDS_PER_APPEND): PeerSubject {
  return {
    name,
    async trial(dir) {
      const fd = openSync(join(dir, 'plain.log'), 'w');
      const file = new PlainFile(size, count);
      try {
        return await appendLoop(
          ms,
          count,
          size * count,
          () => {
            file.wrote(writevSync(fd, file.chunks(), file.position));
            if (durable) fdatasyncSync(fd);
          },
          // Synchronous: the loop never yields to the event loop, so its delay is the whole trial.
          false,
        );
      } finally {
        closeSync(fd);
      }
    },
  };
}

/** The same plain file made durable the native way: writev and fdatasync in one threadpool job per append (File.writevDatasync). */
function nativeDurableSubject(size: number, ms: number): PeerSubject {
  return {
    name: 'native write + fdatasync (File.writevDatasync)',
    async trial(dir) {
      const handle = await File.open(join(dir, 'plain.log'), { create: true, truncate: true });
      const file = new PlainFile(size, RECORDS_PER_APPEND);
      try {
        return await appendLoop(ms, RECORDS_PER_APPEND, size * RECORDS_PER_APPEND, async () => file.wrote(await handle.writevDatasync(file.chunks(), file.position)), false);
      } finally {
        await handle.close();
      }
    },
  };
}

function fsPromisesSubject(size: number, ms: number, count = RECORDS_PER_APPEND): PeerSubject {
  return {
    name: 'fs.promises filehandle.writev',
    async trial(dir) {
      const handle = await openFile(join(dir, 'plain.log'), 'w');
      const file = new PlainFile(size, count);
      try {
        return await appendLoop(ms, count, size * count, async () => file.wrote((await handle.writev(file.chunks(), file.position)).bytesWritten), false);
      } finally {
        await handle.close();
      }
    },
  };
}

function lmdbSubject(size: number, ms: number, count = RECORDS_PER_APPEND): PeerSubject {
  return {
    name: 'lmdb (append mode, noSync, sync txn)',
    async trial(dir) {
      // noSync: commits go to the page cache only, as seglog's no-fsync appends do.
      const db = openLmdb<Buffer, number>({ path: join(dir, 'lmdb'), keyEncoding: 'uint32', encoding: 'binary', noSync: true });
      const values = records(size, count).map((r) => r.value as Buffer);
      let key = 0;
      try {
        return await appendLoop(
          ms,
          count,
          size * count,
          // A synchronous write transaction: lmdb's fastest way to commit 100 puts (the async one pays a thread hop).
          () =>
            db.transactionSync(() => {
              for (const v of values) db.putSync(key++, v, APPEND);
            }),
          false,
        );
      } finally {
        await db.close();
      }
    },
  };
}

/** The append workloads of the issue, at each record size; durable ones at 1 KiB. */
export function appendWorkloads(ms: number, sizes: number[] = RECORD_SIZES): PeerWorkload[] {
  const out: PeerWorkload[] = [];
  for (const size of sizes) {
    out.push({
      name: `append ${size} B x ${RECORDS_PER_APPEND}, no fsync`,
      unit: 'records/s',
      subjects: [
        seglogSubject('seglog', {}, size, ms),
        seglogSubject('seglog own cache', { cache: { mode: 'own' } }, size, ms),
        fsSyncSubject('fs.writevSync + index', size, ms, false),
        fsPromisesSubject(size, ms),
        lmdbSubject(size, ms),
      ],
    });
  }
  out.push({
    name: 'append 100 B x 1, no fsync',
    unit: 'records/s',
    subjects: [
      seglogSubject('seglog', {}, 100, ms, 1),
      seglogSubject('seglog own cache', { cache: { mode: 'own' } }, 100, ms, 1),
      fsSyncSubject('fs.writevSync + index', 100, ms, false, 1),
      fsPromisesSubject(100, ms, 1),
      lmdbSubject(100, ms, 1),
    ],
  });
  out.push({
    name: `append 1024 B x ${RECORDS_PER_APPEND}, one fdatasync per append`,
    unit: 'records/s',
    subjects: [
      seglogSubject("seglog flush: 'always'", { flush: 'always' }, 1024, ms),
      fsSyncSubject('fs.writevSync + fdatasyncSync', 1024, ms, true),
      nativeDurableSubject(1024, ms),
    ],
  });
  return out;
}

/** Runs every workload `trials` times, subjects interleaved within a trial, each trial in a fresh directory under `parent`. */
export async function runPeers(parent: string | undefined, workloads: PeerWorkload[], trials: number): Promise<PeerRow[]> {
  const rows: PeerRow[] = [];
  for (const w of workloads) {
    const results = w.subjects.map(() => [] as TrialResult[]);
    for (let t = 0; t < trials; t++) {
      for (const [i, s] of w.subjects.entries()) {
        progress(`${w.name}: ${s.name}, trial ${t + 1}/${trials}`);
        const dir = await benchDir(parent);
        try {
          results[i]!.push(await s.trial(dir.path));
        } finally {
          await dir.remove();
        }
      }
    }
    w.subjects.forEach((s, i) => {
      const samples = results[i]!.map((r) => r.value);
      const { median, min, max } = summarize(samples);
      const delays = results[i]!.flatMap((r) => (r.loopDelayMs === undefined ? [] : [r.loopDelayMs]));
      const rss = Math.max(0, ...results[i]!.map((r) => r.rssMiB ?? 0));
      const extra = delays.length === 0 ? undefined : `loop delay max ${Math.max(...delays).toFixed(1)} ms (median trial ${summarize(delays).median.toFixed(1)}), RSS peak ${Math.round(rss)} MiB`;
      rows.push({ workload: w.name, subject: s.name, unit: w.unit, median, min, max, samples, extra });
    });
  }
  return rows;
}

/** One line per row, and per workload seglog's median ÷ each peer's median. */
export function peersTable(rows: PeerRow[]): string {
  const body = rows.map((r) => {
    const seglog = rows.find((s) => s.workload === r.workload && s.subject.startsWith('seglog'));
    const ratio = seglog === undefined || r.subject.startsWith('seglog') ? '' : `${(seglog.median / r.median).toFixed(2)}x`;
    return [r.workload, r.subject, `${formatNumber(r.median)} (${formatNumber(r.min)}–${formatNumber(r.max)})`, r.unit, ratio, r.extra ?? ''];
  });
  return markdownTable(['workload', 'subject', `median (min–max), ${rows[0]?.samples.length ?? 0} trials`, 'unit', 'first seglog row ÷ it', 'notes'], body, [
    'l',
    'l',
    'r',
    'l',
    'r',
    'l',
  ]);
}

async function main(): Promise<void> {
  const usage = 'usage: npm run bench:peers -- [--dir <path>] [--trials <n>] [--ms <n>] [--sizes 100,1024,16384]';
  let values;
  try {
    ({ values } = parseArgs({ options: { dir: { type: 'string' }, trials: { type: 'string', default: '3' }, ms: { type: 'string', default: '1500' }, sizes: { type: 'string' } } }));
  } catch (err) {
    usageError((err as Error).message, usage);
  }
  const trials = Number(values.trials);
  const ms = Number(values.ms);
  const sizes = values.sizes === undefined ? RECORD_SIZES : values.sizes.split(',').map(Number);
  if (!Number.isInteger(trials) || trials < 1 || !(ms > 0) || sizes.some((s) => !Number.isInteger(s) || s < 1)) usageError('bad --trials, --ms or --sizes', usage);
  console.log(peersTable(await runPeers(values.dir, appendWorkloads(ms, sizes), trials)));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();

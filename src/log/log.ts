// Log: one partition as a directory of segments. Assigns offsets, appends,
// rolls, reads whole batches, recovers on open, truncates for followers.
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { SeglogError } from '../errors.js';
import { freeBytes, fsyncDir } from '../native.js';
import { mkdirDurable, writeFileAtomic } from '../store/checkpoint.js';
import { Scheduler } from '../store/scheduler.js';
import { checkBatch, decodeBatch, encodeBatch, readBatchHeader, setBaseOffset, setLogAppendTime, type BatchHeader, type LogRecord, type RecordInput } from '../segment/batch.js';
import { CacheGroup, logCacheStats } from '../pagecache/group.js';
import type { LogCache, SegmentSource } from '../pagecache/log-cache.js';
import { checkCacheOptions, type CacheConfig, type CacheOptions } from '../pagecache/options.js';
import { residency, type CacheStats, type Residency } from '../pagecache/stats.js';
import { Segment, type SegmentConfig } from '../segment/segment.js';
import { sendParts, type Part } from '../sendfile/send.js';
import { checkBoolean, checkBytes, checkInteger, checkOptions, checkString } from '../validate.js';

/** Present while a log is closed cleanly; its absence on open means recovery. */
export const CLEAN_SHUTDOWN_FILE = '.clean-shutdown';
/** A standalone log's start offset when deleteRecordsBefore moved it inside a segment. */
export const LOG_START_OFFSET_FILE = '.log-start-offset';
/** Suffix of segment files removed by retention, unlinked after fileDeleteDelayMs. */
export const DELETED_SUFFIX = '.deleted';
const SEGMENT_NAME = /^(\d{20})\.log$/;
const INT32_MAX = 0x7fffffff;

/**
 * When appended data is forced to disk (fdatasync) and what an append's
 * promise means:
 * - 'none': the kernel writes back when it likes; the promise means "written".
 * - { intervalMs, bytes, messages }: fdatasync in the background every
 *   intervalMs and/or once that many bytes or records are unflushed; the
 *   promise still means "written".
 * - 'always': the promise resolves only after the data is durable. Appends
 *   queued meanwhile are group-committed: one pwritev, one fdatasync.
 */
export type FlushPolicy = 'none' | 'always' | { intervalMs?: number; bytes?: number; messages?: number };

export interface LogOptions {
  /** Roll to a new segment before a segment's .log would exceed this. Default 1 GiB. */
  segmentBytes?: number;
  /** Roll once the active segment's first append is this old. Default 7 days. */
  segmentMs?: number;
  /** Bytes of log between offset index entries. Default 4096. */
  indexIntervalBytes?: number;
  /** Preallocated size of each index file. Default 10 MiB. */
  segmentIndexBytes?: number;
  /** On open, cut corrupt data (and everything after it) instead of refusing to open. Default false. */
  repair?: boolean;
  /** Compression for append(). Default 'none'. */
  compression?: string;
  /** Durability policy. Default 'none'. */
  flush?: FlushPolicy;
  /** Bytes of appends that may wait to be written; further appends wait for room. Default 64 MiB. */
  maxPendingBytes?: number;
  /** Refuse to create a segment when the filesystem has fewer free bytes than this (0: no check). Default 64 MiB. */
  minFreeBytes?: number;
  /** Delay before segment files removed by retention are unlinked. Default 60 s. */
  fileDeleteDelayMs?: number;
  /** Read path and its memory: { mode: 'pagecache' } (default) or { mode: 'own', ... }, see CacheOptions. In a LogStore, set for the whole store. */
  cache?: CacheOptions;
}

/** @internal What a LogStore hands the logs it opens. */
export interface LogContext {
  scheduler: Scheduler;
  /** Offsets below it were durable at the last checkpoint: recovery starts from its segment. */
  recoveryPoint: number;
  logStartOffset: number;
  /** Makes a new log start offset durable before segment files go. */
  persistStartOffset(offset: number): Promise<void>;
  /** The store's cache mode, budget and totals; the log's own `cache` option must then be absent. */
  cache: CacheGroup;
}

export interface AppendResult {
  baseOffset: number;
  lastOffset: number;
  /** Bytes written to the log. */
  bytes: number;
  /** The batches' timestamp when LogAppendTime was applied, else -1. */
  logAppendTime: number;
}

export interface AppendOptions {
  /** Timestamp (ms) for records that have none. Default Date.now(). */
  timestamp?: number;
}

export interface AppendBatchesOptions {
  /** When set, each batch becomes LogAppendTime with this timestamp (ms). */
  logAppendTime?: number;
}

export interface RecordsOptions {
  /** Wait for new appends at the end instead of finishing. Default false. */
  follow?: boolean;
  /** Aborts the iteration (the generator throws the abort reason). */
  signal?: AbortSignal;
  /** Bytes of batches read per step. Default 1 MiB. */
  maxBytes?: number;
}

export interface RetentionPolicy {
  /** Delete segments whose newest record is older than this (ms). */
  retentionMs?: number;
  /** Delete oldest segments while the log is larger than this. */
  retentionBytes?: number;
  /** The clock `retentionMs` is measured against. Default Date.now(). */
  now?: number;
}

export interface ReadOptions {
  /** Bytes of whole batches to return at most (at least one batch is returned, however large). Default 1 MiB. */
  maxBytes?: number;
  /** Exclusive upper bound: no batch holding an offset >= maxOffset is returned. Default: the log end. */
  maxOffset?: number;
}

export interface ReadResult {
  /** Whole batches, as stored. Empty at the end of the log. */
  bytes: Buffer;
  /** Offset to read from next. */
  nextOffset: number;
}

export interface SendToOptions extends ReadOptions {
  /**
   * Bytes to send just before the batches, made once their size is known
   * (e.g. a length-prefixed response header); they share the batches' place
   * in the socket's write order.
   */
  prefix?: (range: SendToResult) => Uint8Array;
}

export interface SendToResult {
  /** Bytes of whole batches sent, the prefix not included. */
  bytes: number;
  /** Offset to read from next. */
  nextOffset: number;
}

interface FlushConfig {
  always: boolean;
  intervalMs: number;
  bytes: number;
  messages: number;
}

const NEVER = Number.MAX_SAFE_INTEGER;

const DEFAULTS = {
  segmentBytes: 1024 * 1024 * 1024,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 4096,
  segmentIndexBytes: 10 * 1024 * 1024,
  repair: false,
  compression: 'none',
  flush: { always: false, intervalMs: NEVER, bytes: NEVER, messages: NEVER } as FlushConfig,
  maxPendingBytes: 64 * 1024 * 1024,
  minFreeBytes: 64 * 1024 * 1024,
  fileDeleteDelayMs: 60_000,
};

type Config = typeof DEFAULTS & { cache: CacheConfig };

function checkFlushPolicy(policy: unknown): FlushConfig {
  if (policy === undefined || policy === 'none') return DEFAULTS.flush;
  if (policy === 'always') return { ...DEFAULTS.flush, always: true };
  if (typeof policy === 'string') throw new RangeError(`options.flush must be 'none', 'always' or an object, got '${policy}'`);
  const o = checkOptions<{ intervalMs?: number; bytes?: number; messages?: number }>('options.flush', policy);
  if (o.intervalMs === undefined && o.bytes === undefined && o.messages === undefined) {
    throw new RangeError('options.flush needs at least one of intervalMs, bytes, messages');
  }
  return {
    always: false,
    intervalMs: o.intervalMs === undefined ? NEVER : checkInteger('options.flush.intervalMs', o.intervalMs, 1),
    bytes: o.bytes === undefined ? NEVER : checkInteger('options.flush.bytes', o.bytes, 1),
    messages: o.messages === undefined ? NEVER : checkInteger('options.flush.messages', o.messages, 1),
  };
}

function checkLogOptions(options: unknown): Config {
  const o = checkOptions<LogOptions>('options', options);
  return {
    segmentBytes: o.segmentBytes === undefined ? DEFAULTS.segmentBytes : checkInteger('options.segmentBytes', o.segmentBytes, 1024, INT32_MAX),
    segmentMs: o.segmentMs === undefined ? DEFAULTS.segmentMs : checkInteger('options.segmentMs', o.segmentMs, 1),
    indexIntervalBytes:
      o.indexIntervalBytes === undefined ? DEFAULTS.indexIntervalBytes : checkInteger('options.indexIntervalBytes', o.indexIntervalBytes, 0, INT32_MAX),
    segmentIndexBytes:
      o.segmentIndexBytes === undefined ? DEFAULTS.segmentIndexBytes : checkInteger('options.segmentIndexBytes', o.segmentIndexBytes, 64, INT32_MAX),
    repair: o.repair === undefined ? DEFAULTS.repair : checkBoolean('options.repair', o.repair),
    compression: o.compression === undefined ? DEFAULTS.compression : checkString('options.compression', o.compression),
    flush: checkFlushPolicy(o.flush),
    maxPendingBytes: o.maxPendingBytes === undefined ? DEFAULTS.maxPendingBytes : checkInteger('options.maxPendingBytes', o.maxPendingBytes, 1),
    minFreeBytes: o.minFreeBytes === undefined ? DEFAULTS.minFreeBytes : checkInteger('options.minFreeBytes', o.minFreeBytes),
    fileDeleteDelayMs:
      o.fileDeleteDelayMs === undefined ? DEFAULTS.fileDeleteDelayMs : checkInteger('options.fileDeleteDelayMs', o.fileDeleteDelayMs),
    cache: checkCacheOptions('options.cache', o.cache),
  };
}

/** One append waiting for its turn; batches are checked and carry their headers. */
interface PendingAppend {
  data: Buffer;
  checks: CheckedBatch[];
  logAppendTime: number;
  resolve(result: AppendResult): void;
  reject(err: unknown): void;
}

/** Work that must run alone between append groups (truncation, roll, retention). */
interface ExclusiveWork {
  work(): Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

type CheckedBatch = Extract<ReturnType<typeof checkBatch>, { ok: true }>;

/** Receives one segment's part of a read: [start, end) of its .log, while the segment is pinned, and the source that has its bytes in memory if the cache holds them. */
type RangeTaker = (segment: Segment, start: number, end: number, source: SegmentSource) => Promise<void> | void;

/** Most bytes one group commit writes with one pwritev. */
const MAX_GROUP_BYTES = 16 * 1024 * 1024;

export class Log {
  readonly dir: string;
  readonly #config: Config;
  readonly #segmentConfig: SegmentConfig;
  readonly #context: LogContext;
  readonly #ownScheduler: boolean;
  /** Sorted by base offset; the last one is active. */
  #segments: Segment[];
  /** End of the data readers may see (and, under 'always', durable). */
  #nextOffset: number;
  #logStartOffset: number;
  /** Durable end: every offset below it survived an fdatasync. */
  #flushedOffset: number;
  /** Segments rolled away from but not yet fdatasync'd. */
  #unflushed: Segment[] = [];
  #unflushedBytes = 0;
  #unflushedMessages = 0;
  #flushing: Promise<void> | undefined;
  #nextFlush: Promise<void> | undefined;
  /** Set by a failed fdatasync (or a failed cleanup of a failed write): the log stops accepting appends. */
  #failure: unknown;
  /** Appends and exclusive work, run one at a time in call order. */
  #queue: Array<PendingAppend | ExclusiveWork> = [];
  #pendingBytes = 0;
  #pumpRun: Promise<void> | undefined;
  /** Appends waiting for room in the queue (backpressure), in call order. */
  #roomWaiters: Array<() => void> = [];
  #cancelInterval: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  /** Wakes followers when the log grows or closes. */
  #waiters: Array<() => void> = [];
  /** Where reads come from and what happens to written pages (src/pagecache/). */
  readonly #cache: LogCache;

  private constructor(dir: string, config: Config, segments: Segment[], context: LogContext, ownScheduler: boolean) {
    this.dir = dir;
    this.#config = config;
    const f = config.flush;
    this.#cache = context.cache.attach(
      (err) => this.#fail(err),
      f.always ? 'always' : f.intervalMs !== NEVER || f.bytes !== NEVER || f.messages !== NEVER ? 'periodic' : 'none',
    );
    this.#segmentConfig = { indexIntervalBytes: config.indexIntervalBytes, segmentIndexBytes: config.segmentIndexBytes };
    this.#segments = segments;
    this.#context = context;
    this.#ownScheduler = ownScheduler;
    this.#nextOffset = segments[segments.length - 1]!.nextOffset;
    this.#flushedOffset = this.#nextOffset;
    this.#logStartOffset = Math.max(context.logStartOffset, segments[0]!.baseOffset);
    if (config.flush.intervalMs !== NEVER) {
      this.#cancelInterval = context.scheduler.every(config.flush.intervalMs, () => this.#flushNow());
    }
  }

  /**
   * Opens the log in `dir`, creating it if needed. After an unclean shutdown
   * (no clean-shutdown marker) every segment from the recovery point on is
   * scanned: torn tails are cut, indexes rebuilt, and corruption followed by
   * valid data is refused (ECORRUPT) unless `repair`.
   */
  static async open(dir: string, options?: LogOptions, context?: LogContext): Promise<Log> {
    checkString('dir', dir);
    const config = checkLogOptions(options);
    const segmentConfig = { indexIntervalBytes: config.indexIntervalBytes, segmentIndexBytes: config.segmentIndexBytes };
    await mkdirDurable(dir);
    const names = await readdir(dir);
    // Leftovers of retention that the process did not live to unlink.
    const leftovers = names.filter((n) => n.endsWith(DELETED_SUFFIX));
    await Promise.all(leftovers.map((n) => rm(join(dir, n), { force: true })));
    const bases = names
      .map((n) => SEGMENT_NAME.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    for (const b of bases) {
      if (!Number.isSafeInteger(b)) throw new SeglogError('ECORRUPT', `segment name beyond the safe offset range in ${dir}`, { path: dir });
    }
    const ctx = context ?? (await standaloneContext(dir, config.cache));
    const clean = names.includes(CLEAN_SHUTDOWN_FILE);
    const segments: Segment[] = [];
    try {
      for (let i = 0; i < bases.length; i++) {
        const last = i === bases.length - 1;
        // Segments wholly below the recovery point were durable already.
        let recover = !clean && (last || bases[i + 1]! > ctx.recoveryPoint);
        // Recovery rewrites indexes, so a recovered segment opens writable and is sealed after.
        let segment = await Segment.open(dir, bases[i]!, segmentConfig, last || recover);
        if (!recover && !segment.wellFormed) {
          // Trusted, yet its batches do not end where the file does (damage or a bad index): recover it after all.
          recover = true;
          if (!last) {
            await segment.close();
            segment = await Segment.open(dir, bases[i]!, segmentConfig, true);
          }
        }
        segments.push(segment);
        if (recover) {
          await Log.#recoverSegment(segment, config.repair, last);
          if (!last) await segment.seal();
        }
        const prev = segments[segments.length - 2];
        if (prev !== undefined && prev.nextOffset > segment.baseOffset) {
          throw new SeglogError('ECORRUPT', `segment ${segment.log.path} starts at ${segment.baseOffset}, inside the previous segment (which ends at ${prev.nextOffset - 1})`, {
            path: segment.log.path,
            position: 0,
          });
        }
      }
      if (segments.length === 0) segments.push(await Segment.create(dir, Math.max(0, ctx.logStartOffset), segmentConfig));
      // From here on a crash must be detected: the marker goes before any write.
      if (clean) {
        await rm(join(dir, CLEAN_SHUTDOWN_FILE));
        await fsyncDir(dir);
      }
    } catch (err) {
      await Promise.allSettled(segments.map((s) => s.close()));
      if (context === undefined) ctx.scheduler.stop();
      throw err;
    }
    return new Log(dir, config, segments, ctx, context === undefined);
  }

  static async #recoverSegment(segment: Segment, repair: boolean, isLast: boolean): Promise<void> {
    const r = await segment.recover({ repair });
    if (r.corruptAt !== undefined) {
      throw new SeglogError('ECORRUPT', `corrupt batch in ${segment.log.path} at position ${r.corruptAt} (${r.corruptReason}), followed by valid data; open with repair: true to cut it`, {
        path: segment.log.path,
        position: r.corruptAt,
      });
    }
    // Only the last segment may legitimately have a torn tail; elsewhere a cut is a repair.
    if (!isLast && r.truncatedBytes > 0 && !repair) {
      throw new SeglogError('ECORRUPT', `invalid data at the end of ${segment.log.path} at position ${r.validBytes}, which is not the last segment; open with repair: true to cut it`, {
        path: segment.log.path,
        position: r.validBytes,
      });
    }
  }

  /** First offset still in the log. */
  get startOffset(): number {
    return Math.max(this.#logStartOffset, this.#segments[0]!.baseOffset);
  }

  /** Offset the next appended record will get. */
  get endOffset(): number {
    return this.#nextOffset;
  }

  /** Every offset below this has been made durable with fdatasync (Kafka's recovery point). */
  get flushedOffset(): number {
    return this.#flushedOffset;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The error that stopped the log (a failed fdatasync), or undefined while healthy. */
  get failure(): unknown {
    return this.#failure;
  }

  /** Number of segments, the active one included. */
  get segmentCount(): number {
    return this.#segments.length;
  }

  /** Total bytes of all .log files. */
  get size(): number {
    return this.#segments.reduce((n, s) => n + s.size, 0);
  }

  /** This log's read counters and cache memory (see CacheStats); the same figures in both cache modes. */
  cacheStats(): CacheStats {
    return logCacheStats(this.#cache);
  }

  /** How much of the log's .log files sits in the page cache now (mincore). */
  residency(): Promise<Residency> {
    try {
      this.#checkOpen();
      return residency(this.#segments);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw new SeglogError('ECLOSED', `log is closed: ${this.dir}`, { path: this.dir });
  }

  #checkWritable(): void {
    this.#checkOpen();
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Runs `work` alone, after every append queued before it. */
  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve: resolve as (v: unknown) => void, reject });
      void this.#pump();
    });
  }

  /** Encodes `records` as one batch at the log end and writes it. */
  append(records: RecordInput[], options?: AppendOptions): Promise<AppendResult> {
    try {
      this.#checkWritable();
      const o = checkOptions<AppendOptions>('options', options);
      const now = o.timestamp === undefined ? Date.now() : checkInteger('options.timestamp', o.timestamp);
      // Encoded before queueing so a bad record is rejected at once; the base offset is set when its turn comes.
      const batch = encodeBatch(records, { baseOffset: 0, compression: this.#config.compression, now });
      // Just encoded: its header is known good, no need to recompute the CRC.
      return this.#enqueue(batch, [{ ok: true, header: readBatchHeader(batch, 0) }], -1);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * A broker's path: appends one or more already-encoded v2 batches as they
   * are, after checking size, magic, CRC and record counts. Offsets are
   * assigned by rewriting each baseOffset; with `logAppendTime` each batch
   * becomes LogAppendTime with that timestamp (and a recomputed CRC).
   */
  appendBatches(buffer: Uint8Array, options?: AppendBatchesOptions): Promise<AppendResult> {
    try {
      this.#checkWritable();
      checkBytes('buffer', buffer);
      const o = checkOptions<AppendBatchesOptions>('options', options);
      const logAppendTime = o.logAppendTime === undefined ? -1 : checkInteger('options.logAppendTime', o.logAppendTime);
      if (buffer.length === 0) throw new RangeError('buffer holds no batch');
      // Our own copy: the caller may reuse its buffer while the write is queued.
      const data = Buffer.from(buffer);
      const checks: CheckedBatch[] = [];
      for (let position = 0; position < data.length; ) {
        const c = checkBatch(data, position, data.length);
        if (!c.ok) {
          throw new SeglogError('ECORRUPT', `invalid batch at position ${position} of the appended buffer: ${c.reason}`, { position });
        }
        checks.push(c);
        position += c.header.size;
      }
      return this.#enqueue(data, checks, logAppendTime);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async #enqueue(data: Buffer, checks: CheckedBatch[], logAppendTime: number): Promise<AppendResult> {
    if (data.length > this.#config.segmentBytes) {
      throw new RangeError(`append of ${data.length} bytes exceeds segmentBytes ${this.#config.segmentBytes}`);
    }
    // Backpressure: wait (in call order) while the queue holds too many bytes.
    if (this.#roomWaiters.length > 0 || (this.#pendingBytes > 0 && this.#pendingBytes + data.length > this.#config.maxPendingBytes)) {
      await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
      this.#checkWritable();
    }
    this.#pendingBytes += data.length;
    return new Promise<AppendResult>((resolve, reject) => {
      this.#queue.push({ data, checks, logAppendTime, resolve, reject });
      void this.#pump();
    });
  }

  #releaseRoom(bytes: number): void {
    this.#pendingBytes -= bytes;
    while (this.#roomWaiters.length > 0 && (this.#pendingBytes === 0 || this.#pendingBytes < this.#config.maxPendingBytes)) {
      const next = this.#roomWaiters.shift()!;
      next();
      // The woken append adds its bytes in a later microtask; let one through at a time past the bound.
      if (this.#pendingBytes >= this.#config.maxPendingBytes) break;
    }
  }

  /** Drains the queue: consecutive appends go out as one group, exclusive work alone. */
  #pump(): Promise<void> {
    this.#pumpRun ??= this.#drain();
    return this.#pumpRun;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const head = this.#queue[0]!;
        if ('work' in head) {
          this.#queue.shift();
          try {
            head.resolve(await head.work());
          } catch (err) {
            head.reject(err);
          }
          continue;
        }
        await this.#commitGroup(this.#takeGroup());
      }
    } finally {
      this.#pumpRun = undefined;
    }
  }

  /** The appends at the head of the queue that one pwritev can write into one segment. */
  #takeGroup(): PendingAppend[] {
    const group: PendingAppend[] = [];
    const active = this.#active;
    // The first append always goes (after a roll if it does not fit); the rest only if they fit.
    const room = Math.max(this.#config.segmentBytes - active.size, this.#queue[0] && 'data' in this.#queue[0] ? this.#queue[0].data.length : 0);
    let bytes = 0;
    while (this.#queue.length > 0) {
      const next = this.#queue[0]!;
      if (!('data' in next)) break;
      if (group.length > 0 && (bytes + next.data.length > room || bytes + next.data.length > MAX_GROUP_BYTES)) break;
      bytes += next.data.length;
      group.push(next);
      this.#queue.shift();
    }
    return group;
  }

  /** Numbers, writes and (under 'always') syncs one group, then settles its appends. */
  async #commitGroup(group: PendingAppend[]): Promise<void> {
    const bytes = group.reduce((n, a) => n + a.data.length, 0);
    try {
      if (this.#failure !== undefined) throw this.#failure;
      const headers: BatchHeader[] = [];
      const results: AppendResult[] = [];
      let offset = this.#nextOffset;
      let records = 0;
      for (const a of group) {
        const baseOffset = offset;
        let position = 0;
        for (const { header: h } of a.checks) {
          setBaseOffset(a.data, position, offset);
          if (a.logAppendTime >= 0) setLogAppendTime(a.data, position, a.logAppendTime);
          const maxTimestamp = a.logAppendTime >= 0 ? a.logAppendTime : h.maxTimestamp;
          headers.push({ ...h, baseOffset: offset, lastOffset: offset + h.lastOffsetDelta, maxTimestamp });
          offset += h.lastOffsetDelta + 1;
          records += h.recordsCount;
          position += h.size;
        }
        results.push({ baseOffset, lastOffset: offset - 1, bytes: a.data.length, logAppendTime: a.logAppendTime });
      }
      if (!Number.isSafeInteger(offset)) throw new RangeError(`offset ${offset} is beyond the safe integer range`);
      await this.#rollIfNeeded(bytes, offset - 1);
      const active = this.#active;
      const position = active.size;
      const chunks = group.map((a) => a.data);
      try {
        await active.append(chunks, headers);
      } catch (err) {
        // No partial batch may stay: cut the file back to the last good end, or stop.
        await active.log.truncate(active.size).catch((cutErr) => this.#fail(cutErr));
        throw err;
      }
      if (this.#config.flush.always) {
        try {
          await active.log.datasync();
        } catch (err) {
          throw this.#fail(err);
        }
        this.#flushedOffset = offset;
      }
      // Only bytes on file (under 'always': durable) are cached, before readers can ask for them.
      this.#cache.appended(active, position, chunks, headers);
      this.#nextOffset = offset;
      this.#unflushedBytes += bytes;
      this.#unflushedMessages += records;
      group.forEach((a, i) => a.resolve(results[i]!));
      this.#wake();
      const f = this.#config.flush;
      // Not awaited: appends do not wait for a threshold flush; its failure stops the log.
      if (!f.always && (this.#unflushedBytes >= f.bytes || this.#unflushedMessages >= f.messages)) void this.#flushNow().catch(() => undefined);
    } catch (err) {
      for (const a of group) a.reject(err);
    } finally {
      this.#releaseRoom(bytes);
    }
  }

  /** Enters the failed state: every queued and later append is rejected with `err`. */
  #fail(err: unknown): unknown {
    if (this.#failure === undefined) {
      this.#failure = err;
      for (const item of this.#queue.splice(0)) {
        if ('data' in item) {
          this.#releaseRoom(item.data.length);
          item.reject(err);
        } else {
          this.#queue.push(item);
        }
      }
    }
    return this.#failure;
  }

  get #active(): Segment {
    return this.#segments[this.#segments.length - 1]!;
  }

  async #rollIfNeeded(bytes: number, lastOffset: number, now = Date.now()): Promise<void> {
    const s = this.#active;
    if (s.isEmpty) return;
    const full = s.size + bytes > this.#config.segmentBytes;
    const old = s.firstAppendAt !== undefined && now - s.firstAppendAt >= this.#config.segmentMs;
    // Relative offsets in the indexes are i32.
    const overflow = lastOffset - s.baseOffset > INT32_MAX;
    if (full || old || overflow || s.indexesFull) await this.#roll();
  }

  /** Starts a new active segment at the log end (a no-op when the active one is empty). */
  roll(): Promise<void> {
    try {
      this.#checkWritable();
      return this.#exclusive(() => this.#roll());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async #roll(): Promise<void> {
    const s = this.#active;
    if (s.isEmpty) return;
    if (this.#config.minFreeBytes > 0) {
      const free = await freeBytes(this.dir);
      if (free < this.#config.minFreeBytes) {
        throw new SeglogError('ENOSPC', `refusing to roll ${this.dir}: ${free} bytes free, below the floor of ${this.#config.minFreeBytes} (minFreeBytes)`, {
          path: this.dir,
        });
      }
    }
    const next = await Segment.create(this.dir, this.#nextOffset, this.#segmentConfig);
    try {
      await s.seal();
    } catch (err) {
      // The roll did not happen: its files go, or a later truncation would leave them as a segment past the log end.
      await next.delete().catch(() => undefined);
      throw err;
    }
    this.#segments.push(next);
    // Under 'always' everything in it is durable already.
    if (!this.#config.flush.always) this.#unflushed.push(s);
    this.#cache.sealed(s);
  }

  /** The segment that holds `offset` or, in a gap, the first after it. */
  #segmentIndexFor(offset: number): number {
    let lo = 0;
    let hi = this.#segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#segments[mid]!.baseOffset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * Bytes of whole batches from the batch holding `offset`, across segment
   * boundaries, up to `maxBytes` (at least one batch). Empty at the log end;
   * EOFFSETRANGE before the start or past the end.
   */
  async read(offset: number, options?: ReadOptions): Promise<ReadResult> {
    const parts: Buffer[] = [];
    const { bytes, nextOffset } = await this.#range(offset, options, async (segment, start, end, source) => {
      // Copies from the cache: what read() returns is the caller's to change.
      parts.push(...((await source.bytes(start, end, true)) ?? [await segment.readRange(start, end)]));
    });
    return { bytes: parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes), nextOffset };
  }

  /**
   * Sends what read() would return to `socket` without copying it through JS:
   * sendfile(2) on a plain TCP or Unix socket, a copying fallback for TLS and
   * other streams (src/sendfile/send.ts). The batches take their place in the
   * socket's write order at this call, so a header written before and one
   * written after frame them even if the caller does not await. Each segment
   * stays open until the transfer ends, whatever retention or truncation do
   * meanwhile. Bad arguments and an offset outside the log reject without
   * touching the socket; a failure after that destroys it (see sendParts).
   */
  sendTo(socket: Writable, offset: number, options?: SendToOptions): Promise<SendToResult> {
    try {
      const o = checkOptions<SendToOptions>('options', options);
      if (o.prefix !== undefined && typeof o.prefix !== 'function') throw new TypeError('options.prefix must be a function');
      let transferEnded!: () => void;
      const ended = new Promise<void>((resolve) => (transferEnded = resolve));
      const slices: Part[] = [];
      const range = this.#range(offset, o, async (segment, start, end, source) => {
        // In own mode the bytes come from memory (the tail cache or a catch-up read), not the file.
        const held = await source.bytes(start, end, false);
        if (held !== undefined) {
          slices.push(...held);
          return;
        }
        // Pinned on until the transfer ends, so the file stays usable if retention or truncation close it.
        slices.push({ file: segment.log, position: start, length: end - start });
        void segment.log.pin(() => ended);
      });
      const parts = range.then((r) => (o.prefix === undefined ? slices : [o.prefix(r), ...slices]));
      const sent = sendParts(socket, parts).finally(transferEnded);
      this.#cache.sending(sent);
      return Promise.all([range, sent]).then(([r]) => r);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The whole batches read() returns: checks the arguments at once (throwing),
   * then hands `take` each segment's byte range, in order, while it is pinned.
   */
  #range(offset: number, options: ReadOptions | undefined, take: RangeTaker): Promise<SendToResult> {
    this.#checkOpen();
    checkInteger('offset', offset);
    const o = checkOptions<ReadOptions>('options', options);
    const maxBytes = o.maxBytes === undefined ? 1024 * 1024 : checkInteger('options.maxBytes', o.maxBytes, 1, INT32_MAX);
    // Written but not yet visible (under 'always': not yet durable) batches stay hidden.
    const maxOffset = Math.min(this.#nextOffset, o.maxOffset === undefined ? Number.MAX_SAFE_INTEGER : checkInteger('options.maxOffset', o.maxOffset));
    this.#checkRange(offset);
    return this.#scan(offset, maxBytes, maxOffset, take);
  }

  async #scan(offset: number, maxBytes: number, maxOffset: number, take: RangeTaker): Promise<SendToResult> {
    let total = 0;
    let next = offset;
    for (let segment: Segment | undefined = this.#segments[this.#segmentIndexFor(offset)]; segment !== undefined && total < maxBytes; ) {
      const current: Segment = segment;
      // Pinned: retention or truncation may drop the segment meanwhile, but its file stays open until this read is done.
      const done = await this.#pinned(current, async () => {
        // The file (pagecache mode), or in own mode the tail cache or a catch-up read.
        const source = this.#cache.source(current, next);
        try {
          const at = await source.locate(next);
          if (at === undefined) return false;
          if (at.header.lastOffset >= maxOffset) return true;
          // After the first batch, the rest must fit: Kafka returns one oversized batch only when it comes first.
          const budget = total === 0 ? maxBytes : maxBytes - total;
          const range = await source.rangeFrom(at, budget, maxOffset);
          if (range.end === at.position || (total > 0 && range.end - at.position > budget)) return true;
          await take(current, at.position, range.end, source);
          total += range.end - at.position;
          next = range.nextOffset;
          return range.nextOffset < current.nextOffset;
        } finally {
          source.release();
        }
      });
      if (done) break;
      // Retention, truncation and rolls change #segments meanwhile: what follows is found by offset, not by
      // position in the array, and once bytes were taken only a segment that continues them will do.
      segment = this.#segments.find((s) => s.baseOffset > current.baseOffset);
      if (segment !== undefined && total > 0 && segment.baseOffset !== next) break;
    }
    return { bytes: total, nextOffset: total === 0 ? offset : next };
  }

  /** Runs `work` with the segment's file held open; a segment closed before that was removed: EOFFSETRANGE. */
  async #pinned<T>(segment: Segment, work: () => Promise<T>): Promise<T> {
    if (segment.log.closed) {
      this.#checkOpen();
      throw new SeglogError('EOFFSETRANGE', `segment ${segment.log.path} was removed (start offset is now ${this.startOffset})`, { path: this.dir });
    }
    return segment.log.pin(work);
  }

  #checkRange(offset: number): void {
    if (offset < this.startOffset || offset > this.#nextOffset) {
      throw new SeglogError('EOFFSETRANGE', `offset ${offset} is outside the log's range [${this.startOffset}, ${this.#nextOffset}]`, { path: this.dir });
    }
  }

  /**
   * Decoded records from `fromOffset` on. With `follow`, waits for new appends
   * at the end instead of finishing (until the log closes or `signal` aborts).
   */
  async *records(fromOffset: number, options?: RecordsOptions): AsyncGenerator<LogRecord> {
    checkInteger('fromOffset', fromOffset);
    const o = checkOptions<RecordsOptions>('options', options);
    const follow = o.follow === undefined ? false : checkBoolean('options.follow', o.follow);
    const signal = o.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('options.signal must be an AbortSignal');
    const maxBytes = o.maxBytes === undefined ? 1024 * 1024 : checkInteger('options.maxBytes', o.maxBytes, 1, INT32_MAX);
    let next = fromOffset;
    for (;;) {
      signal?.throwIfAborted();
      if (this.closed) return;
      if (next >= this.#nextOffset) {
        if (!follow) return;
        await this.#waitForAppend(next, signal);
        continue;
      }
      const { bytes, nextOffset } = await this.read(next, { maxBytes });
      // Nothing before the end: a truncation is under way (its segments are gone, the end not yet moved).
      // Reads that need no I/O would spin on microtasks and starve it: let it finish.
      if (bytes.length === 0) await new Promise((resolve) => setImmediate(resolve));
      for (let p = 0; p < bytes.length; ) {
        const size = bytes.readInt32BE(p + 8) + 12;
        for (const r of decodeBatch(bytes.subarray(p, p + size))) if (r.offset >= next) yield r;
        p += size;
      }
      next = nextOffset;
    }
  }

  #waitForAppend(offset: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#nextOffset > offset || this.closed) return resolve();
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== wake);
        reject(signal!.reason);
      };
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(wake);
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** First offset whose record timestamp is >= `timestamp`, or undefined if none is. */
  async offsetForTimestamp(timestamp: number): Promise<number | undefined> {
    this.#checkOpen();
    checkInteger('timestamp', timestamp, -1);
    for (const segment of this.#segments) {
      const at = await segment.findByTimestamp(timestamp);
      if (at === undefined) continue;
      const batch = await segment.readRange(at.position, at.position + at.header.size);
      const record = decodeBatch(batch).find((r) => r.timestamp >= timestamp);
      if (record !== undefined) return record.offset;
    }
    return undefined;
  }

  /**
   * Removes every record at or after `offset` (a follower matching its
   * leader). A batch holding `offset` goes whole, so the new end may be below
   * `offset`. Returns the new endOffset.
   */
  truncateTo(offset: number): Promise<number> {
    try {
      this.#checkWritable();
      checkInteger('offset', offset);
      return this.#exclusive(async () => {
        if (offset >= this.#nextOffset) return this.#nextOffset;
        if (offset < this.startOffset) throw new SeglogError('EOFFSETRANGE', `cannot truncate to ${offset}, before the log start ${this.startOffset}`, { path: this.dir });
        const keep = this.#segmentIndexFor(offset);
        const doomed = this.#segments.splice(keep + 1);
        this.#unflushed = this.#unflushed.filter((s) => !doomed.includes(s));
        this.#cache.removed(doomed);
        for (const s of doomed.reverse()) await s.delete();
        // Gone for good before the kept segment is cut: a power cut in between leaves a prefix of the log, not a gap.
        if (doomed.length > 0) await fsyncDir(this.dir);
        const kept = this.#segments[keep]!;
        // Cut through a new Segment (writable: it is the active one now), published only once cut: closing the
        // old one waits for the reads and sendTo transfers under way on it, so none sees bytes change under it.
        this.#unflushed = this.#unflushed.filter((s) => s !== kept);
        this.#cache.removed([kept]);
        await kept.close();
        let segment: Segment | undefined;
        let end: number;
        try {
          segment = await Segment.open(this.dir, kept.baseOffset, this.#segmentConfig, true);
          end = await segment.truncateTo(offset);
          // Durable before it is reported, or a power cut could bring the cut records back (fdatasync persists the new size).
          await segment.log.datasync();
        } catch (err) {
          await segment?.close().catch(() => undefined);
          throw this.#fail(err);
        }
        this.#segments[keep] = segment;
        this.#nextOffset = end;
        this.#cache.truncated();
        this.#flushedOffset = Math.min(this.#flushedOffset, this.#nextOffset);
        return this.#nextOffset;
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Makes every record before `offset` unreadable (Kafka's DeleteRecords):
   * the start offset moves there durably, then whole segments below it go.
   */
  deleteRecordsBefore(offset: number): Promise<number> {
    try {
      this.#checkWritable();
      checkInteger('offset', offset);
      return this.#exclusive(async () => {
        if (offset > this.#nextOffset) {
          throw new SeglogError('EOFFSETRANGE', `cannot delete records before ${offset}, past the log end ${this.#nextOffset}`, { path: this.dir });
        }
        if (offset > this.#logStartOffset) {
          this.#logStartOffset = offset;
          await this.#context.persistStartOffset(offset);
        }
        await this.#removeSegmentsBelow(this.startOffset);
        return this.startOffset;
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Deletes whole oldest segments (never the active one) while they are older
   * than `retentionMs` (by their newest record) or the log is larger than
   * `retentionBytes`. Returns the number of segments removed.
   */
  applyRetention(policy: RetentionPolicy): Promise<number> {
    try {
      this.#checkWritable();
      const o = checkOptions<RetentionPolicy>('policy', policy);
      const retentionMs = o.retentionMs === undefined ? NEVER : checkInteger('policy.retentionMs', o.retentionMs);
      const retentionBytes = o.retentionBytes === undefined ? NEVER : checkInteger('policy.retentionBytes', o.retentionBytes);
      const now = o.now === undefined ? Date.now() : checkInteger('policy.now', o.now);
      return this.#exclusive(async () => {
        let size = this.size;
        let cut = 0;
        for (const s of this.#segments.slice(0, -1)) {
          const expired = s.maxTimestamp >= 0 && now - s.maxTimestamp > retentionMs;
          const oversize = size - s.size >= retentionBytes;
          if (!expired && !oversize) break;
          size -= s.size;
          cut++;
        }
        if (cut === 0) return 0;
        const newStart = this.#segments[cut]!.baseOffset;
        if (newStart > this.#logStartOffset) {
          this.#logStartOffset = newStart;
          await this.#context.persistStartOffset(newStart);
        }
        return this.#removeSegmentsBelow(newStart);
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Removes inactive segments that hold nothing at or after `start`: renamed
   * to *.deleted at once (a crash cannot bring them back), closed once calls
   * under way on them finish, unlinked after fileDeleteDelayMs.
   */
  async #removeSegmentsBelow(start: number): Promise<number> {
    const doomed: Segment[] = [];
    while (this.#segments.length > 1 && this.#segments[1]!.baseOffset <= start) doomed.push(this.#segments.shift()!);
    if (doomed.length === 0) return 0;
    this.#unflushed = this.#unflushed.filter((s) => !doomed.includes(s));
    this.#cache.removed(doomed);
    const renamed: string[] = [];
    for (const s of doomed) {
      for (const path of Object.values(Segment.paths(this.dir, s.baseOffset))) {
        await rename(path, path + DELETED_SUFFIX).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
        renamed.push(path + DELETED_SUFFIX);
      }
    }
    await fsyncDir(this.dir);
    // Not awaited: a slow reader of these files must not hold up appends.
    for (const s of doomed) void s.close().catch(() => undefined);
    this.#context.scheduler.once(this.#config.fileDeleteDelayMs, async () => {
      await Promise.all(renamed.map((p) => rm(p, { force: true })));
      await fsyncDir(this.dir);
    });
    return doomed.length;
  }

  /** Forces every record appended before the call to disk; flushedOffset then covers them. */
  flush(): Promise<void> {
    try {
      this.#checkWritable();
      return this.#flushNow();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** One fdatasync pass at a time; callers during a pass share the next one, which covers their data. */
  #flushNow(): Promise<void> {
    if (this.#flushing === undefined) {
      this.#flushing = this.#flushPass().finally(() => (this.#flushing = undefined));
      return this.#flushing;
    }
    this.#nextFlush ??= this.#flushing
      .catch(() => undefined)
      .then(() => {
        this.#nextFlush = undefined;
        return this.#flushNow();
      });
    return this.#nextFlush;
  }

  async #flushPass(): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    const end = this.#nextOffset;
    const segments = [...this.#unflushed, this.#active];
    this.#unflushedBytes = 0;
    this.#unflushedMessages = 0;
    let replaced = false;
    for (const s of segments) {
      try {
        const size = s.size;
        await s.log.datasync();
        this.#cache.synced(s, size);
      } catch (err) {
        if ((err as SeglogError).code !== 'ECLOSED') throw this.#fail(err);
        // Closed meanwhile: dropped by retention or truncation (nothing of it needs to be durable), or still
        // listed because truncateTo is replacing it (and makes what stays durable itself, before it resolves).
        replaced ||= this.#segments.includes(s);
      }
    }
    this.#unflushed = this.#unflushed.filter((s) => !segments.includes(s));
    if (!replaced) this.#flushedOffset = Math.max(this.#flushedOffset, Math.min(end, this.#nextOffset));
  }

  /**
   * Lets queued appends finish, makes everything durable, closes the files
   * and writes the clean-shutdown marker (not after a failure: reopening then
   * runs recovery). Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = (async () => {
        while (this.#pumpRun !== undefined) await this.#pumpRun;
        this.#cancelInterval?.();
        this.#wake();
        let clean = this.#failure === undefined;
        if (clean) await this.#flushNow().catch(() => (clean = false));
        await this.#context.cache.detach(this.#cache);
        await Promise.all(this.#segments.map((s) => s.close()));
        if (this.#ownScheduler) this.#context.scheduler.stop();
        if (clean) {
          await writeFile(join(this.dir, CLEAN_SHUTDOWN_FILE), '');
          await fsyncDir(this.dir);
        }
      })();
    }
    return this.#closing;
  }
}

/** A log opened on its own keeps its start offset in its directory and has its own scheduler. */
async function standaloneContext(dir: string, cache: CacheConfig): Promise<LogContext> {
  const path = join(dir, LOG_START_OFFSET_FILE);
  let logStartOffset = 0;
  try {
    logStartOffset = Number((await readFile(path, 'utf8')).trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (!Number.isSafeInteger(logStartOffset) || logStartOffset < 0) {
    throw new SeglogError('ECORRUPT', `${path} does not hold an offset`, { path });
  }
  return {
    // Failures of its tasks (interval flushes) put the log in its failed state, where appends report them.
    scheduler: new Scheduler(() => undefined),
    recoveryPoint: 0,
    logStartOffset,
    persistStartOffset: (offset) => writeFileAtomic(path, `${offset}\n`),
    cache: await CacheGroup.open(cache, dir),
  };
}

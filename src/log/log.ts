// Log: one partition as a directory of segments. Assigns offsets, appends,
// rolls, reads whole batches, recovers on open, truncates for followers.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SeglogError } from '../errors.js';
import { fsyncDir } from '../native.js';
import { checkBatch, decodeBatch, encodeBatch, setBaseOffset, setLogAppendTime, type BatchHeader, type LogRecord, type RecordInput } from '../segment/batch.js';
import { BatchReader } from '../segment/batch-reader.js';
import { Segment, type SegmentConfig } from '../segment/segment.js';
import { checkBoolean, checkBytes, checkInteger, checkOptions, checkString } from '../validate.js';

/** Present while a log is closed cleanly; its absence on open means recovery. */
export const CLEAN_SHUTDOWN_FILE = '.clean-shutdown';
const SEGMENT_NAME = /^(\d{20})\.log$/;
const INT32_MAX = 0x7fffffff;

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
}

export interface AppendResult {
  baseOffset: number;
  lastOffset: number;
  /** Bytes written to the log. */
  bytes: number;
  /** The batches' timestamp when LogAppendTime was applied, else -1. */
  logAppendTime: number;
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

const DEFAULTS = {
  segmentBytes: 1024 * 1024 * 1024,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 4096,
  segmentIndexBytes: 10 * 1024 * 1024,
  repair: false,
  compression: 'none',
};

type Config = typeof DEFAULTS;

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
  };
}

export class Log {
  readonly dir: string;
  readonly #config: Config;
  readonly #segmentConfig: SegmentConfig;
  /** Sorted by base offset; the last one is active. */
  #segments: Segment[];
  #nextOffset: number;
  /** Appends and truncations run one at a time, in call order. */
  #queue: Promise<unknown> = Promise.resolve();
  #closing: Promise<void> | undefined;
  /** Wakes followers when the log grows or closes. */
  #waiters: Array<() => void> = [];

  private constructor(dir: string, config: Config, segments: Segment[]) {
    this.dir = dir;
    this.#config = config;
    this.#segmentConfig = { indexIntervalBytes: config.indexIntervalBytes, segmentIndexBytes: config.segmentIndexBytes };
    this.#segments = segments;
    this.#nextOffset = segments[segments.length - 1]!.nextOffset;
  }

  /**
   * Opens the log in `dir`, creating it if needed. Without a clean-shutdown
   * marker every segment is scanned: torn tails are cut, indexes rebuilt, and
   * corruption followed by valid data is refused (ECORRUPT) unless `repair`.
   */
  static async open(dir: string, options?: LogOptions): Promise<Log> {
    checkString('dir', dir);
    const config = checkLogOptions(options);
    const segmentConfig = { indexIntervalBytes: config.indexIntervalBytes, segmentIndexBytes: config.segmentIndexBytes };
    await mkdir(dir, { recursive: true });
    const names = await readdir(dir);
    const bases = names
      .map((n) => SEGMENT_NAME.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    for (const b of bases) {
      if (!Number.isSafeInteger(b)) throw new SeglogError('ECORRUPT', `segment name beyond the safe offset range in ${dir}`, { path: dir });
    }
    const clean = names.includes(CLEAN_SHUTDOWN_FILE);
    const segments: Segment[] = [];
    try {
      for (let i = 0; i < bases.length; i++) {
        const last = i === bases.length - 1;
        // Recovery rewrites indexes, so every segment opens writable for it and is sealed after.
        const segment = await Segment.open(dir, bases[i]!, segmentConfig, last || !clean);
        segments.push(segment);
        if (!clean) {
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
      if (segments.length === 0) segments.push(await Segment.create(dir, 0, segmentConfig));
      // From here on a crash must be detected: the marker goes before any write.
      if (clean) {
        await rm(join(dir, CLEAN_SHUTDOWN_FILE));
        await fsyncDir(dir);
      }
    } catch (err) {
      await Promise.allSettled(segments.map((s) => s.close()));
      throw err;
    }
    return new Log(dir, config, segments);
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
    return this.#segments[0]!.baseOffset;
  }

  /** Offset the next appended record will get. */
  get endOffset(): number {
    return this.#nextOffset;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Number of segments, the active one included. */
  get segmentCount(): number {
    return this.#segments.length;
  }

  /** Total bytes of all .log files. */
  get size(): number {
    return this.#segments.reduce((n, s) => n + s.size, 0);
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw new SeglogError('ECLOSED', `log is closed: ${this.dir}`, { path: this.dir });
  }

  #serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(() => {
      this.#checkOpen();
      return work();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Encodes `records` as one batch at the log end and writes it. */
  append(records: RecordInput[], options?: { timestamp?: number }): Promise<AppendResult> {
    try {
      this.#checkOpen();
      const o = checkOptions<{ timestamp?: number }>('options', options);
      const now = o.timestamp === undefined ? Date.now() : checkInteger('options.timestamp', o.timestamp);
      // Encoded before queueing so a bad record is rejected at once; the base offset is set when its turn comes.
      const batch = encodeBatch(records, { baseOffset: 0, compression: this.#config.compression, now });
      return this.#serialize(() => this.#appendBatches(batch, [checkBatch(batch, 0, batch.length)], -1));
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
  appendBatches(buffer: Uint8Array, options?: { logAppendTime?: number }): Promise<AppendResult> {
    try {
      this.#checkOpen();
      checkBytes('buffer', buffer);
      const o = checkOptions<{ logAppendTime?: number }>('options', options);
      const logAppendTime = o.logAppendTime === undefined ? -1 : checkInteger('options.logAppendTime', o.logAppendTime);
      if (buffer.length === 0) throw new RangeError('buffer holds no batch');
      // Our own copy: the caller may reuse its buffer while the write is queued.
      const data = Buffer.from(buffer);
      const checks: Array<ReturnType<typeof checkBatch>> = [];
      for (let position = 0; position < data.length; ) {
        const c = checkBatch(data, position, data.length);
        if (!c.ok) {
          throw new SeglogError('ECORRUPT', `invalid batch at position ${position} of the appended buffer: ${c.reason}`, { position });
        }
        checks.push(c);
        position += c.header.size;
      }
      return this.#serialize(() => this.#appendBatches(data, checks, logAppendTime));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async #appendBatches(data: Buffer, checks: Array<ReturnType<typeof checkBatch>>, logAppendTime: number): Promise<AppendResult> {
    if (data.length > this.#config.segmentBytes) {
      throw new RangeError(`append of ${data.length} bytes exceeds segmentBytes ${this.#config.segmentBytes}`);
    }
    const baseOffset = this.#nextOffset;
    const headers: BatchHeader[] = [];
    let position = 0;
    let offset = baseOffset;
    for (const c of checks) {
      if (!c.ok) throw new Error('unreachable: batches were checked');
      const h = c.header;
      setBaseOffset(data, position, offset);
      if (logAppendTime >= 0) setLogAppendTime(data, position, logAppendTime);
      const maxTimestamp = logAppendTime >= 0 ? logAppendTime : h.maxTimestamp;
      headers.push({ ...h, baseOffset: offset, lastOffset: offset + h.lastOffsetDelta, maxTimestamp });
      offset += h.lastOffsetDelta + 1;
      position += h.size;
    }
    if (!Number.isSafeInteger(offset)) throw new RangeError(`offset ${offset} is beyond the safe integer range`);
    const lastOffset = offset - 1;
    await this.#rollIfNeeded(data.length, lastOffset);
    await this.#active.append(data, headers);
    this.#nextOffset = offset;
    this.#wake();
    return { baseOffset, lastOffset, bytes: data.length, logAppendTime };
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
    if (full || old || overflow || s.indexesFull) await this.roll();
  }

  /** Starts a new active segment at the log end (a no-op when the active one is empty). */
  async roll(): Promise<void> {
    const s = this.#active;
    if (s.isEmpty) return;
    const next = await Segment.create(this.dir, this.#nextOffset, this.#segmentConfig);
    await s.seal();
    this.#segments.push(next);
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
    this.#checkOpen();
    checkInteger('offset', offset);
    const o = checkOptions<ReadOptions>('options', options);
    const maxBytes = o.maxBytes === undefined ? 1024 * 1024 : checkInteger('options.maxBytes', o.maxBytes, 1, INT32_MAX);
    const maxOffset = o.maxOffset === undefined ? Number.MAX_SAFE_INTEGER : checkInteger('options.maxOffset', o.maxOffset);
    this.#checkRange(offset);
    const parts: Buffer[] = [];
    let total = 0;
    let next = offset;
    for (let i = this.#segmentIndexFor(offset); i < this.#segments.length && total < maxBytes; i++) {
      const segment = this.#segments[i]!;
      const reader = new BatchReader(segment.log, segment.size);
      const at = await segment.locate(next, reader);
      if (at === undefined) continue;
      if (at.header.lastOffset >= maxOffset) break;
      // After the first batch, the rest must fit: Kafka returns one oversized batch only when it comes first.
      const budget = total === 0 ? maxBytes : maxBytes - total;
      const range = await segment.rangeFrom(at, budget, maxOffset, reader);
      if (total > 0 && range.end - at.position > budget) break;
      if (range.end === at.position) break;
      parts.push(await segment.readRange(at.position, range.end));
      total += range.end - at.position;
      next = range.nextOffset;
      if (range.nextOffset < segment.nextOffset) break;
    }
    return { bytes: parts.length === 1 ? parts[0]! : Buffer.concat(parts, total), nextOffset: total === 0 ? offset : next };
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
  async *records(fromOffset: number, options?: { follow?: boolean; signal?: AbortSignal; maxBytes?: number }): AsyncGenerator<LogRecord> {
    checkInteger('fromOffset', fromOffset);
    const o = checkOptions<{ follow?: boolean; signal?: AbortSignal; maxBytes?: number }>('options', options);
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
      this.#checkOpen();
      checkInteger('offset', offset);
      return this.#serialize(async () => {
        if (offset >= this.#nextOffset) return this.#nextOffset;
        if (offset < this.startOffset) throw new SeglogError('EOFFSETRANGE', `cannot truncate to ${offset}, before the log start ${this.startOffset}`, { path: this.dir });
        const keep = this.#segmentIndexFor(offset);
        const doomed = this.#segments.splice(keep + 1);
        for (const s of doomed.reverse()) await s.delete();
        let segment = this.#segments[keep]!;
        if (doomed.length > 0) {
          // It becomes the active segment again: reopen with writable indexes.
          await segment.close();
          segment = await Segment.open(this.dir, segment.baseOffset, this.#segmentConfig, true);
          this.#segments[keep] = segment;
        }
        this.#nextOffset = await segment.truncateTo(offset);
        await fsyncDir(this.dir);
        return this.#nextOffset;
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Forces every appended byte and index entry to disk. */
  flush(): Promise<void> {
    return this.#serialize(() => this.#active.flush());
  }

  /**
   * Waits for queued appends, makes everything durable, closes the files and
   * writes the clean-shutdown marker. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      const pending = this.#queue;
      this.#closing = (async () => {
        await pending;
        this.#wake();
        await this.#active.flush();
        await Promise.all(this.#segments.map((s) => s.close()));
        await writeFile(join(this.dir, CLEAN_SHUTDOWN_FILE), '');
        await fsyncDir(this.dir);
      })();
    }
    return this.#closing;
  }
}

// A segment: one .log file of whole RecordBatch v2 batches plus its sparse
// .index and .timeindex, all named by the segment's base offset.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SeglogError } from '../errors.js';
import { File, fsyncDir } from '../native.js';
import { OffsetIndex } from '../index/offset-index.js';
import { TimeIndex } from '../index/time-index.js';
import { BatchReader } from './batch-reader.js';
import type { BatchHeader } from './batch.js';

export const LOG_SUFFIX = '.log';
export const INDEX_SUFFIX = '.index';
export const TIME_INDEX_SUFFIX = '.timeindex';

/** Kafka's file name for a segment: the base offset, 20 digits, zero padded. */
export function segmentFileName(baseOffset: number, suffix: string): string {
  return `${String(baseOffset).padStart(20, '0')}${suffix}`;
}

export interface SegmentConfig {
  indexIntervalBytes: number;
  segmentIndexBytes: number;
}

/** What recover() found: where the valid data ends and why scanning stopped. */
export interface RecoveryResult {
  validBytes: number;
  batches: number;
  /** Bytes cut from the end (a torn or zero-padded tail). */
  truncatedBytes: number;
  /** Set when invalid bytes were followed by a valid batch: real corruption, not a torn tail. */
  corruptAt?: number;
  corruptReason?: string;
}

/** A batch located in a segment. */
export interface BatchLocation {
  position: number;
  header: BatchHeader;
}

export class Segment {
  readonly dir: string;
  readonly baseOffset: number;
  readonly log: File;
  readonly offsetIndex: OffsetIndex;
  readonly timeIndex: TimeIndex;
  readonly #config: SegmentConfig;
  /** Bytes of whole batches; readers never look past it. */
  #size: number;
  #nextOffset: number;
  #maxTimestamp = -1;
  #offsetOfMaxTimestamp: number;
  #bytesSinceIndexEntry = 0;
  /** Wall-clock ms of the first append, for time-based rolling. */
  #firstAppendAt: number | undefined;

  private constructor(dir: string, baseOffset: number, log: File, offsetIndex: OffsetIndex, timeIndex: TimeIndex, size: number, config: SegmentConfig) {
    this.dir = dir;
    this.baseOffset = baseOffset;
    this.log = log;
    this.offsetIndex = offsetIndex;
    this.timeIndex = timeIndex;
    this.#size = size;
    this.#nextOffset = baseOffset;
    this.#offsetOfMaxTimestamp = baseOffset;
    this.#config = config;
  }

  static paths(dir: string, baseOffset: number): { log: string; index: string; timeIndex: string } {
    return {
      log: join(dir, segmentFileName(baseOffset, LOG_SUFFIX)),
      index: join(dir, segmentFileName(baseOffset, INDEX_SUFFIX)),
      timeIndex: join(dir, segmentFileName(baseOffset, TIME_INDEX_SUFFIX)),
    };
  }

  /** Creates an empty active segment; its files are durable in the directory when this resolves. */
  static async create(dir: string, baseOffset: number, config: SegmentConfig): Promise<Segment> {
    const p = Segment.paths(dir, baseOffset);
    // Stale indexes of an earlier segment at this offset would describe other data.
    await Promise.all([rm(p.index, { force: true }), rm(p.timeIndex, { force: true })]);
    const log = await File.open(p.log, { create: true, truncate: true });
    const segment = await Segment.#attach(dir, baseOffset, log, 0, true, config);
    await fsyncDir(dir);
    return segment;
  }

  /**
   * Opens an existing segment. Its indexes are trusted only if they pass their
   * sanity check; otherwise (missing, ill-sized, not monotonic) they are
   * rebuilt from the .log. An inactive segment's indexes stay unmapped until used.
   */
  static async open(dir: string, baseOffset: number, config: SegmentConfig, active: boolean): Promise<Segment> {
    const p = Segment.paths(dir, baseOffset);
    const log = await File.open(p.log, { write: true });
    try {
      const size = await log.size();
      let segment: Segment | undefined;
      try {
        segment = await Segment.#attach(dir, baseOffset, log, size, active, config);
        segment.offsetIndex.sanityCheck(size);
        segment.timeIndex.sanityCheck();
        if (!active) {
          segment.offsetIndex.release();
          segment.timeIndex.release();
        }
      } catch (err) {
        const code = (err as SeglogError).code;
        if (code !== 'ECORRUPT' && code !== 'ENOENT') throw err;
        if (segment !== undefined) await Promise.all([segment.offsetIndex.close(), segment.timeIndex.close()]);
        segment = await Segment.#attach(dir, baseOffset, log, size, true, config);
        await segment.#rebuildIndexes(size);
        if (!active) await segment.seal();
      }
      await segment.#loadTail();
      return segment;
    } catch (err) {
      await log.close();
      throw err;
    }
  }

  static async #attach(dir: string, baseOffset: number, log: File, size: number, active: boolean, config: SegmentConfig): Promise<Segment> {
    const p = Segment.paths(dir, baseOffset);
    const opts = { maxIndexBytes: config.segmentIndexBytes, writable: active };
    const offsetIndex = await OffsetIndex.open(p.index, baseOffset, opts);
    const timeIndex = await TimeIndex.open(p.timeIndex, baseOffset, opts).catch(async (err) => {
      await offsetIndex.close();
      throw err;
    });
    return new Segment(dir, baseOffset, log, offsetIndex, timeIndex, size, config);
  }

  get size(): number {
    return this.#size;
  }

  /** The offset after the last record in this segment (the base offset when empty). */
  get nextOffset(): number {
    return this.#nextOffset;
  }

  /** Largest record timestamp in the segment, -1 when empty. */
  get maxTimestamp(): number {
    return this.#maxTimestamp;
  }

  get firstAppendAt(): number | undefined {
    return this.#firstAppendAt;
  }

  get isEmpty(): boolean {
    return this.#size === 0;
  }

  /** Whether another index entry could be refused: the segment must roll first. */
  get indexesFull(): boolean {
    return this.offsetIndex.isFull || this.timeIndex.isFull;
  }

  /** Reads the last batch to learn nextOffset and the max timestamp of a segment that was not just scanned. */
  async #loadTail(): Promise<void> {
    if (this.#size === 0) return;
    const last = this.timeIndex.lastEntry;
    if (last.timestamp >= 0) {
      this.#maxTimestamp = last.timestamp;
      this.#offsetOfMaxTimestamp = last.offset;
    }
    const reader = new BatchReader(this.log, this.#size);
    let position = this.offsetIndex.lastEntry.position;
    for (;;) {
      const header = await reader.header(position);
      if (header === undefined) break;
      if (header.maxTimestamp > this.#maxTimestamp) {
        this.#maxTimestamp = header.maxTimestamp;
        this.#offsetOfMaxTimestamp = header.lastOffset;
      }
      this.#nextOffset = header.lastOffset + 1;
      this.#bytesSinceIndexEntry += header.size;
      position += header.size;
    }
  }

  /**
   * Appends whole batches (already validated and numbered) at the end of the
   * log with one pwritev, then indexes them. `batches` describe the bytes of
   * `chunks` in order. On failure nothing is indexed and `size` stays put.
   */
  async append(chunks: Uint8Array[], batches: BatchHeader[], now = Date.now()): Promise<void> {
    const position = this.#size;
    await this.log.writev(chunks, position);
    this.#firstAppendAt ??= now;
    let at = position;
    for (const b of batches) {
      this.#indexBatch(b, at);
      at += b.size;
    }
    this.#size = at;
  }

  /** Position of the batch holding `offset` (or the first batch after it), or undefined past the end. */
  async locate(offset: number, reader = new BatchReader(this.log, this.#size)): Promise<BatchLocation | undefined> {
    if (offset >= this.#nextOffset) return undefined;
    let position = offset <= this.baseOffset ? 0 : this.offsetIndex.lookup(offset).position;
    for (;;) {
      const header = await reader.header(position);
      if (header === undefined) return undefined;
      if (header.lastOffset >= offset) return { position, header };
      position += header.size;
    }
  }

  /**
   * The byte range of whole batches starting at `from` that fits in `maxBytes`
   * (at least one batch, however large) and holds no offset >= `maxOffset`.
   */
  async rangeFrom(from: BatchLocation, maxBytes: number, maxOffset: number, reader = new BatchReader(this.log, this.#size)): Promise<{ end: number; nextOffset: number }> {
    let end = from.position;
    let nextOffset = from.header.baseOffset;
    let header: BatchHeader | undefined = from.header;
    while (header !== undefined && header.lastOffset < maxOffset) {
      if (end > from.position && end + header.size - from.position > maxBytes) break;
      end += header.size;
      nextOffset = header.lastOffset + 1;
      if (end - from.position >= maxBytes) break;
      header = await reader.header(end);
    }
    return { end, nextOffset };
  }

  /** Reads [start, end) of the log into a new Buffer. */
  async readRange(start: number, end: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(end - start);
    const n = await this.log.read(out, start);
    if (n !== out.length) {
      throw new SeglogError('ECORRUPT', `${this.log.path} ended at ${start + n}, before the ${end} its batches promise`, { path: this.log.path, position: start + n });
    }
    return out;
  }

  /** First batch whose max timestamp is >= `timestamp`, or undefined if none. */
  async findByTimestamp(timestamp: number): Promise<BatchLocation | undefined> {
    if (this.#maxTimestamp < timestamp) return undefined;
    const entry = this.timeIndex.lookup(timestamp);
    const reader = new BatchReader(this.log, this.#size);
    let position = entry.offset <= this.baseOffset ? 0 : this.offsetIndex.lookup(entry.offset).position;
    for (;;) {
      const header = await reader.header(position);
      if (header === undefined) return undefined;
      if (header.maxTimestamp >= timestamp) return { position, header };
      position += header.size;
    }
  }

  /**
   * Scans every batch, checks size, magic, CRC and offset order, rebuilds both
   * indexes and truncates an invalid tail. Invalid bytes followed by a valid
   * batch are reported in corruptAt instead of being cut, unless `repair`.
   */
  async recover(options: { repair: boolean }): Promise<RecoveryResult> {
    const fileSize = await this.log.size();
    const reader = new BatchReader(this.log, fileSize, 1 << 20);
    this.offsetIndex.truncateTo(this.baseOffset);
    this.timeIndex.truncateTo(this.baseOffset);
    this.#resetTail();
    const batches: BatchHeader[] = [];
    let position = 0;
    let reason: string | undefined;
    for (;;) {
      const result = await reader.check(position);
      if (!result.ok) {
        if (position < fileSize) reason = result.reason;
        break;
      }
      const h = result.header;
      if (h.baseOffset < this.#nextOffset) {
        reason = `offset ${h.baseOffset} is not after ${this.#nextOffset - 1}`;
        break;
      }
      batches.push(h);
      this.#indexBatch(h, position);
      position += h.size;
    }
    const result: RecoveryResult = { validBytes: position, batches: batches.length, truncatedBytes: 0 };
    if (reason !== undefined) {
      const next = await this.#findValidBatchAfter(reader, position, fileSize);
      if (next !== undefined && !options.repair) {
        return { ...result, corruptAt: position, corruptReason: reason };
      }
    }
    if (position < fileSize) {
      await this.log.truncate(position);
      result.truncatedBytes = fileSize - position;
    }
    this.#size = position;
    return result;
  }

  /** Rebuilds the indexes from the .log without changing it. */
  async #rebuildIndexes(size: number): Promise<void> {
    this.offsetIndex.truncateTo(this.baseOffset);
    this.timeIndex.truncateTo(this.baseOffset);
    this.#resetTail();
    const reader = new BatchReader(this.log, size, 1 << 20);
    let position = 0;
    for (;;) {
      const header = await reader.header(position);
      if (header === undefined || position + header.size > size) break;
      this.#indexBatch(header, position);
      position += header.size;
    }
    // #loadTail will walk from the last entry again; start its counters clean.
    this.#resetTail();
  }

  #resetTail(): void {
    this.#nextOffset = this.baseOffset;
    this.#maxTimestamp = -1;
    this.#offsetOfMaxTimestamp = this.baseOffset;
    this.#bytesSinceIndexEntry = 0;
  }

  #indexBatch(h: BatchHeader, position: number): void {
    if (h.maxTimestamp > this.#maxTimestamp) {
      this.#maxTimestamp = h.maxTimestamp;
      this.#offsetOfMaxTimestamp = h.lastOffset;
    }
    if (this.#bytesSinceIndexEntry > this.#config.indexIntervalBytes && !this.indexesFull) {
      this.offsetIndex.append(h.lastOffset, position);
      this.timeIndex.append(this.#maxTimestamp, this.#offsetOfMaxTimestamp);
      this.#bytesSinceIndexEntry = 0;
    }
    this.#bytesSinceIndexEntry += h.size;
    this.#nextOffset = h.lastOffset + 1;
  }

  /** Looks for any valid batch starting after `from`: proof that the damage is not just a torn tail. */
  async #findValidBatchAfter(reader: BatchReader, from: number, fileSize: number): Promise<number | undefined> {
    for (let p = from + 1; p + 61 <= fileSize; p++) {
      // Cheap pre-filter on the magic byte before a full CRC check.
      const magic = await reader.bytes(p + 16, 1);
      if (magic[0] !== 2) continue;
      const r = await reader.check(p);
      if (r.ok && r.header.baseOffset >= this.baseOffset) return p;
    }
    return undefined;
  }

  /**
   * Drops every batch holding an offset >= `offset`, cutting at the start of
   * the batch that holds it. Returns the new nextOffset.
   */
  async truncateTo(offset: number): Promise<number> {
    const at = await this.locate(offset);
    if (at === undefined) return this.#nextOffset;
    await this.log.truncate(at.position);
    this.offsetIndex.truncateTo(at.header.baseOffset);
    this.timeIndex.truncateTo(at.header.baseOffset);
    this.#size = at.position;
    // Recompute what the removed batches may have contributed.
    this.#resetTail();
    await this.#loadTail();
    return this.#nextOffset;
  }

  /** Called when the segment stops being the active one: the time index ends with the max, indexes shrink to their entries. */
  async seal(): Promise<void> {
    // Kafka ends a sealed time index with the segment's max timestamp (append ignores a non-growing one).
    if (this.#maxTimestamp >= 0 && !this.timeIndex.isFull) this.timeIndex.append(this.#maxTimestamp, this.#offsetOfMaxTimestamp);
    await this.offsetIndex.trim();
    await this.timeIndex.trim();
  }

  async flush(): Promise<void> {
    await this.log.datasync();
    await Promise.all([this.offsetIndex.flush(), this.timeIndex.flush()]);
  }

  /** Closes the .log first: that waits for reads pinned on it, which may still use the indexes. */
  async close(): Promise<void> {
    await this.log.close();
    await Promise.all([this.offsetIndex.close(), this.timeIndex.close()]);
  }

  /** Closes and removes the segment's files. */
  async delete(): Promise<void> {
    await this.close();
    const p = Segment.paths(this.dir, this.baseOffset);
    await Promise.all([rm(p.log, { force: true }), rm(p.index, { force: true }), rm(p.timeIndex, { force: true })]);
  }
}

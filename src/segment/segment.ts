// A segment: one .log file of whole RecordBatch v2 batches plus its sparse
// .index and .timeindex, all named by the segment's base offset.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SeglogError } from '../errors.js';
import { File, fsyncDir } from '../native.js';
import { OffsetIndex } from '../index/offset-index.js';
import { TimeIndex } from '../index/time-index.js';
import { BatchReader } from './batch-reader.js';
import { BATCH_HEADER_SIZE, checkBatch, MAGIC, type BatchHeader } from './batch.js';

export const LOG_SUFFIX = '.log';
export const INDEX_SUFFIX = '.index';
export const TIME_INDEX_SUFFIX = '.timeindex';
const INT32_MAX = 0x7fffffff;

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
  #wellFormed = true;

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
    let segment: Segment | undefined;
    try {
      segment = await Segment.#attach(dir, baseOffset, log, 0, true, config);
      await fsyncDir(dir);
      return segment;
    } catch (err) {
      // A failed roll must not leak descriptors or mappings, however often it fails.
      await (segment?.close() ?? log.close()).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Opens an existing segment. Its indexes are trusted only if they pass their
   * sanity check; otherwise (missing, ill-sized, not monotonic) they are
   * rebuilt from the .log. An inactive segment's indexes stay unmapped until used.
   */
  static async open(dir: string, baseOffset: number, config: SegmentConfig, active: boolean): Promise<Segment> {
    const p = Segment.paths(dir, baseOffset);
    const log = await File.open(p.log, { write: true });
    let segment: Segment | undefined;
    try {
      const size = await log.size();
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
        // Derived data, rebuilt from scratch whatever shape the old files had.
        await Promise.all([rm(p.index, { force: true }), rm(p.timeIndex, { force: true })]);
        segment = await Segment.#attach(dir, baseOffset, log, size, true, config);
        await segment.#rebuildIndexes(size);
        if (!active) await segment.seal();
      }
      await segment.#loadTail();
      return segment;
    } catch (err) {
      await (segment?.close() ?? log.close()).catch(() => undefined);
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

  /**
   * Whether, on open, the batches from the last index entry on ran in offset
   * order to exactly the end of the file, that entry pointed at the batch
   * holding its offset, and the time index's last entry lay inside the
   * segment's offsets. False means a torn tail, a misnamed file or an index
   * that passed its sanity check but is wrong: a segment trusted without a
   * scan needs recovery after all.
   */
  get wellFormed(): boolean {
    return this.#wellFormed;
  }

  get isEmpty(): boolean {
    return this.#size === 0;
  }

  /** Whether another index entry could be refused: the segment must roll first. */
  get indexesFull(): boolean {
    return this.offsetIndex.isFull || this.timeIndex.isFull;
  }

  /**
   * Reads the batches from the last index entry on to learn nextOffset and
   * the max timestamp of a segment that was not just scanned, and checks
   * what that walk can see (see wellFormed).
   */
  async #loadTail(): Promise<void> {
    const lastTime = this.timeIndex.lastEntry;
    const lastIndexed = this.offsetIndex.lastEntry;
    if (lastTime.timestamp >= 0) {
      this.#maxTimestamp = lastTime.timestamp;
      this.#offsetOfMaxTimestamp = lastTime.offset;
    }
    const reader = new BatchReader(this.log, this.#size);
    let position = lastIndexed.position;
    let indexedHeld = this.offsetIndex.entries === 0;
    for (;;) {
      const header = await reader.headerOrEnd(position);
      if (header === undefined || !followsInSegment(header, this.#nextOffset, this.baseOffset)) break;
      if (position === lastIndexed.position) indexedHeld ||= header.baseOffset <= lastIndexed.offset && lastIndexed.offset <= header.lastOffset;
      if (header.maxTimestamp > this.#maxTimestamp) {
        this.#maxTimestamp = header.maxTimestamp;
        this.#offsetOfMaxTimestamp = header.lastOffset;
      }
      this.#nextOffset = header.lastOffset + 1;
      this.#bytesSinceIndexEntry += header.size;
      position += header.size;
    }
    const timesInside = this.timeIndex.entries === 0 || lastTime.offset < this.#nextOffset;
    this.#wellFormed = position === this.#size && indexedHeld && timesInside;
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
    const entry = offset <= this.baseOffset ? undefined : this.offsetIndex.lookup(offset);
    if (entry !== undefined && entry.position > 0) {
      // Entries that passed the sanity check can still be wrong (a flipped bit may keep them in order): walk from the start instead.
      const found = await this.#walkTo(offset, entry.position, reader, entry.offset).catch((err: SeglogError) => {
        if (err.code !== 'ECORRUPT') throw err;
        return null;
      });
      if (found !== null) return found;
    }
    return this.#walkTo(offset, 0, reader);
  }

  /**
   * Walks batch headers from `position` to the batch holding `offset` (or the
   * first after it). With `indexed`, the first batch must hold that offset,
   * as the index entry that gave `position` claims (ECORRUPT otherwise).
   */
  async #walkTo(offset: number, position: number, reader: BatchReader, indexed?: number): Promise<BatchLocation | undefined> {
    let lowest = this.baseOffset;
    for (let first = true; ; first = false) {
      const header = await reader.header(position);
      if (header === undefined) return undefined;
      // Not the first after an index jump: the batches before it are not known here.
      if (!first || indexed === undefined) this.#checkOffsets(header, position, lowest);
      lowest = header.lastOffset + 1;
      if (first && indexed !== undefined && (header.baseOffset > indexed || header.lastOffset < indexed)) {
        throw new SeglogError('ECORRUPT', `${this.offsetIndex.path}: the entry for offset ${indexed} points at position ${position}, which does not hold it`, {
          path: this.offsetIndex.path,
          position,
        });
      }
      if (header.lastOffset >= offset) return { position, header };
      position += header.size;
    }
  }

  /**
   * The byte range of whole batches starting at `from` that fits in `maxBytes`
   * (at least one batch, however large) and holds no offset >= `maxOffset`.
   */
  async rangeFrom(from: BatchLocation, maxBytes: number, maxOffset: number, reader = new BatchReader(this.log, this.#size)): Promise<{ end: number; nextOffset: number }> {
    this.#checkOffsets(from.header, from.position, this.baseOffset);
    let end = from.position;
    let nextOffset = from.header.baseOffset;
    let header: BatchHeader | undefined = from.header;
    // Jump to the last indexed batch start within reach instead of reading every header on the way:
    // the batches before it are whole and hold only offsets below its base offset.
    const entry = this.offsetIndex.lookupByPosition(from.position + maxBytes);
    if (entry.position > from.position) {
      // Only to the batch the entry claims: an entry that passed the sanity check can still be wrong.
      const jumped = await reader.headerOrEnd(entry.position);
      if (
        jumped !== undefined &&
        jumped.baseOffset <= entry.offset &&
        entry.offset <= jumped.lastOffset &&
        jumped.baseOffset > from.header.lastOffset &&
        jumped.baseOffset <= maxOffset
      ) {
        end = entry.position;
        nextOffset = jumped.baseOffset;
        header = jumped;
      }
    }
    while (header !== undefined && header.lastOffset < maxOffset) {
      if (end > from.position && end + header.size - from.position > maxBytes) break;
      end += header.size;
      nextOffset = header.lastOffset + 1;
      if (end - from.position >= maxBytes) break;
      header = await reader.header(end);
      if (header !== undefined) this.#checkOffsets(header, end, nextOffset);
    }
    return { end, nextOffset };
  }

  /**
   * A batch's base offset is outside its CRC: a flipped bit there passes every
   * other check of a segment trusted without a scan. Offsets served must rise
   * and stay within the segment.
   */
  #checkOffsets(header: BatchHeader, position: number, lowest: number): void {
    if (header.baseOffset >= lowest && header.lastOffset < this.#nextOffset) return;
    if (position + header.size > this.#size) {
      throw new SeglogError('EOFFSETRANGE', `${this.log.path} was truncated to ${this.#size} bytes during a read at ${position}`, { path: this.log.path });
    }
    throw new SeglogError(
      'ECORRUPT',
      `batch in ${this.log.path} at position ${position} claims offsets ${header.baseOffset}..${header.lastOffset}, outside ${lowest}..${this.#nextOffset - 1}`,
      { path: this.log.path, position },
    );
  }

  /**
   * Reads the whole batches in [start, end) into a new Buffer. Each batch's
   * CRC is checked first: segments trusted without a scan (clean shutdown)
   * may still hold damage, and a damaged batch is never served (ECORRUPT
   * naming file and position). EOFFSETRANGE when truncateTo cut the range
   * meanwhile.
   */
  async readRange(start: number, end: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(end - start);
    const n = await this.log.read(out, start);
    this.checkRead(out.subarray(0, n), start, end);
    return out;
  }

  /**
   * readRange()'s checks of `bytes`, read for [start, end) of the .log, for
   * reads that came another way (own cache mode): whole batches, each passing
   * its CRC, with offsets rising inside the segment.
   */
  checkRead(bytes: Buffer, start: number, end: number): void {
    const n = bytes.length;
    if (n !== end - start && end > this.#size) {
      // Not damage: truncateTo cut the segment while this read was under way. Read again.
      throw new SeglogError('EOFFSETRANGE', `${this.log.path} was truncated to ${this.#size} bytes during a read up to ${end}`, { path: this.log.path });
    }
    if (n !== end - start) {
      throw new SeglogError('ECORRUPT', `${this.log.path} ended at ${start + n}, before the ${end} its batches promise`, { path: this.log.path, position: start + n });
    }
    let lowest = this.baseOffset;
    for (let p = 0; p < n; ) {
      const c = checkBatch(bytes, p, n);
      if (!c.ok) {
        throw new SeglogError('ECORRUPT', `invalid batch in ${this.log.path} at position ${start + p} (${c.reason})`, { path: this.log.path, position: start + p });
      }
      this.#checkOffsets(c.header, start + p, lowest);
      lowest = c.header.lastOffset + 1;
      p += c.header.size;
    }
  }

  /** First batch whose max timestamp is >= `timestamp`, or undefined if none. */
  async findByTimestamp(timestamp: number): Promise<BatchLocation | undefined> {
    if (this.#maxTimestamp < timestamp) return undefined;
    const entry = this.timeIndex.lookup(timestamp);
    const reader = new BatchReader(this.log, this.#size);
    const start = await this.locate(entry.offset, reader);
    if (start === undefined) return undefined;
    let position = start.position;
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
    this.offsetIndex.truncateTo(this.baseOffset);
    this.timeIndex.truncateTo(this.baseOffset);
    this.#resetTail();
    const scan = await scanLog(new BatchReader(this.log, fileSize, 1 << 20), fileSize, this.baseOffset, (h, position) => this.#indexBatch(h, position));
    const position = scan.validBytes;
    const result: RecoveryResult = { validBytes: position, batches: scan.batches, truncatedBytes: 0 };
    if (scan.corrupt && !options.repair) return { ...result, corruptAt: position, corruptReason: scan.reason! };
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
      const header = await reader.headerOrEnd(position);
      // Offsets out of order (a misnamed file) end it like garbage: recovery judges the rest.
      if (header === undefined || !followsInSegment(header, this.#nextOffset, this.baseOffset)) break;
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
    try {
      await this.timeIndex.trim();
    } catch (err) {
      // All or nothing: the segment stays active, so its offset index must take entries again.
      await this.offsetIndex.untrim().catch(() => undefined);
      throw err;
    }
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

/** What scanLog() found. */
export interface ScanResult {
  /** Bytes of valid batches from the start of the file. */
  validBytes: number;
  batches: number;
  /** Offset after the last valid batch (`baseOffset` when there is none). */
  nextOffset: number;
  /** Why the bytes at validBytes are not a valid batch; undefined when the scan reached the end. */
  reason?: string;
  /**
   * The invalid bytes are not just a torn tail: a whole valid batch with an
   * offset out of order, or a valid batch somewhere after them.
   */
  corrupt: boolean;
}

/**
 * Checks every batch of a .log from position 0 (size, magic, CRC, offsets
 * increasing from `baseOffset`), calling `onBatch` for each valid one, up to
 * the first invalid bytes. Only reads: recovery and `seglog verify` share it.
 */
export async function scanLog(reader: BatchReader, fileSize: number, baseOffset: number, onBatch?: (header: BatchHeader, position: number) => void): Promise<ScanResult> {
  let position = 0;
  let batches = 0;
  let nextOffset = baseOffset;
  for (;;) {
    const result = await reader.check(position);
    if (!result.ok) {
      if (position >= fileSize) return { validBytes: position, batches, nextOffset, corrupt: false };
      const corrupt = (await findValidBatchAfter(reader, position, fileSize, baseOffset)) !== undefined;
      return { validBytes: position, batches, nextOffset, reason: result.reason, corrupt };
    }
    const h = result.header;
    // A torn write leaves no whole batch behind: a valid one with offsets out of place is damage (or a misnamed file).
    if (!followsInSegment(h, nextOffset, baseOffset)) {
      const why = h.baseOffset < nextOffset ? `offset ${h.baseOffset} is not after ${nextOffset - 1}` : `offset ${h.lastOffset} is beyond what a segment at ${baseOffset} can index`;
      return { validBytes: position, batches, nextOffset, reason: why, corrupt: true };
    }
    onBatch?.(h, position);
    batches++;
    nextOffset = h.lastOffset + 1;
    position += h.size;
  }
}

/** Whether batch `h` may come next in the segment at `baseOffset` whose batches so far end before `nextOffset`: indexes store offsets as i32 from the base. */
function followsInSegment(h: BatchHeader, nextOffset: number, baseOffset: number): boolean {
  return h.baseOffset >= nextOffset && h.lastOffset - baseOffset <= INT32_MAX;
}

/** Position of any valid batch starting after `from`: proof that the damage is not just a torn tail. */
async function findValidBatchAfter(reader: BatchReader, from: number, fileSize: number, baseOffset: number): Promise<number | undefined> {
  for (let p = from + 1; p + BATCH_HEADER_SIZE <= fileSize; p++) {
    // Cheap pre-filter on the magic byte before a full CRC check.
    const magic = await reader.bytes(p + 16, 1);
    if (magic[0] !== MAGIC) continue;
    const r = await reader.check(p);
    if (r.ok && r.header.baseOffset >= baseOffset) return p;
  }
  return undefined;
}

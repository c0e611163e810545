// Where own mode's reads of one segment get their bytes: the tail cache,
// the read cache (point reads), or a catch-up read through a read-ahead
// stream, which a point read sizes to its batch and keeps in the read cache.
import { BatchReader } from '../segment/batch-reader.js';
import { BATCH_HEADER_SIZE, type BatchHeader } from '../segment/batch.js';
import type { BatchLocation, Segment } from '../segment/segment.js';
import type { SegmentSource } from './log-cache.js';
import { StreamBytes, type ReadAheadStream } from './read-ahead.js';
import type { CachedBatch } from './read-cache.js';
import type { CacheCounters } from './stats.js';
import type { TailBytes, TailWindow } from './tail.js';

/** A point read's fill where the offset index does not say where its batch ends (past its last entry). */
const POINT_GUESS = 128 * 1024;
/** Index entries at most this far apart (small batches): a point read's fill starts at the lower one, since its batch lies between them. */
const SMALL_GAP = 16 * 1024;

/** What a catch-up read needs of its log's cache (OwnLog). */
export interface CatchUpOwner {
  readonly counters: CacheCounters;
  /** Reads into `into` from `position` of `segment`, leaving no pages in the page cache. */
  fill(segment: Segment, into: Buffer, position: number): Promise<number>;
  /** A point read's checked batch, for the read cache, read since the log's truncation count was `generation`. */
  keep(segment: Segment, position: number, header: BatchHeader, bytes: Buffer, generation: number): void;
  /** Where reading ahead in `segment` stops: where the tail cache begins (it serves what follows), else the segment's end. */
  readAheadEnd(segment: Segment): number;
  /** The read is done with its stream. */
  releaseStream(stream: ReadAheadStream): void;
}

/** A read of cached batches: headers and bytes from the tail cache, no system call. */
export class TailSource implements SegmentSource {
  readonly #segment: Segment;
  readonly #window: TailWindow;
  readonly #counters: CacheCounters;
  #bytes: TailBytes | undefined;
  #reader: BatchReader | undefined;

  constructor(segment: Segment, window: TailWindow, counters: CacheCounters) {
    this.#segment = segment;
    this.#window = window;
    this.#counters = counters;
  }

  async locate(offset: number): Promise<BatchLocation | undefined> {
    const position = this.#window.positionOf(offset);
    if (position === undefined) return undefined;
    // A snapshot: evictions meanwhile do not change what this read sees.
    this.#bytes = this.#window.bytesFrom(this.#segment.log, position);
    this.#reader = new BatchReader(this.#bytes);
    return { position, header: (await this.#reader.header(position))! };
  }

  rangeFrom(at: BatchLocation, maxBytes: number, maxOffset: number): Promise<{ end: number; nextOffset: number }> {
    return this.#segment.rangeFrom(at, maxBytes, maxOffset, this.#reader!);
  }

  async bytes(start: number, end: number, copy: boolean): Promise<Buffer[]> {
    this.#counters.add('tailHits', 1);
    this.#counters.add('tailHitBytes', end - start);
    const parts = this.#bytes!.parts(start, end);
    return copy ? [Buffer.concat(parts, end - start)] : parts;
  }

  release(): void {}
}

/** A point read of a batch in the read cache: no system call, no copy (readRecord copies the record out). */
export class CachedSource implements SegmentSource {
  readonly #batch: CachedBatch;
  readonly #counters: CacheCounters;

  constructor(batch: CachedBatch, counters: CacheCounters) {
    this.#batch = batch;
    this.#counters = counters;
  }

  async locate(): Promise<BatchLocation> {
    return { position: this.#batch.position, header: this.#batch.header };
  }

  /** The one batch held: a point read needs no more. */
  async rangeFrom(at: BatchLocation, _maxBytes: number, maxOffset: number): Promise<{ end: number; nextOffset: number }> {
    if (at.header.lastOffset >= maxOffset) return { end: at.position, nextOffset: at.header.baseOffset };
    return { end: at.position + at.header.size, nextOffset: at.header.lastOffset + 1 };
  }

  async bytes(_start: number, _end: number, copy: boolean): Promise<Buffer[]> {
    this.#counters.add('readCacheHits', 1);
    const bytes = this.#batch.bytes;
    return [copy ? Buffer.from(bytes) : bytes];
  }

  release(): void {}
}

/** A read that missed the tail cache: through a read-ahead stream, checked like a read of the file. */
export class CatchUpSource implements SegmentSource {
  readonly #segment: Segment;
  readonly #stream: ReadAheadStream;
  readonly #owner: CatchUpOwner;
  readonly #reader: BatchReader;
  /** The segment's size when the read began: bytes past it may be half written. */
  readonly #end: number;
  /** A point read: the log's truncation count when it began (its batch goes to the read cache if unchanged); undefined: a range read. */
  readonly #pointOf: number | undefined;
  /** The batch a point read located. */
  #located: BatchLocation | undefined;
  /** Where a point read's walk to its batch began, when not at that batch (no index entry names it). */
  #walkedFrom: number | undefined;

  readonly #fill = (into: Buffer, position: number) => this.#owner.fill(this.#segment, into, position);

  constructor(segment: Segment, stream: ReadAheadStream, owner: CatchUpOwner, pointOf: number | undefined) {
    this.#segment = segment;
    this.#stream = stream;
    this.#owner = owner;
    this.#end = segment.size;
    this.#pointOf = pointOf;
    this.#reader = new BatchReader(new StreamBytes(segment.log, this.#end, stream, this.#fill));
  }

  async locate(offset: number): Promise<BatchLocation | undefined> {
    if (this.#pointOf !== undefined) return this.#locatePoint(offset);
    // A sequential reader goes on where its last read ended. The offset index would point at the batch
    // before, which the stream may have moved past already: it would have to read it back.
    const s = this.#stream;
    if (s.nextOffset === offset && s.nextPosition >= 0 && s.nextPosition < this.#end) {
      const header = await this.#reader.headerOrEnd(s.nextPosition);
      if (header !== undefined && header.baseOffset <= offset && offset <= header.lastOffset) return { position: s.nextPosition, header };
    }
    return this.#segment.locate(offset, this.#reader);
  }

  /**
   * One fill of just the blocks of the batch holding `offset`, as far as the
   * offset index tells where it lies (from the entry naming it to the next,
   * from the entry below when batches are small), rather than a read-ahead
   * window; its header is then read from memory.
   */
  async #locatePoint(offset: number): Promise<BatchLocation | undefined> {
    const index = this.#segment.offsetIndex;
    const entry = offset < this.#segment.baseOffset || offset >= this.#segment.nextOffset ? undefined : index.ceiling(offset);
    if (entry !== undefined) {
      const below = index.lookup(offset).position;
      const start = entry.position - below <= SMALL_GAP ? below : entry.position;
      const end = Math.min(this.#end, entry.nextPosition ?? entry.position + POINT_GUESS);
      if (end > start) await this.#stream.ensure(start, end - start, this.#end, this.#fill, true);
    }
    const at = await this.#segment.locatePoint(offset, this.#reader);
    const from = index.lookup(offset).position;
    this.#located = at;
    this.#walkedFrom = at !== undefined && at.position !== entry?.position && from < at.position ? from : undefined;
    return at;
  }

  async rangeFrom(at: BatchLocation, maxBytes: number, maxOffset: number): Promise<{ end: number; nextOffset: number }> {
    // Everything the range can span, and the header after it, in one fill: the walk below then reads from memory.
    await this.#stream.ensure(at.position, Math.max(maxBytes, at.header.size) + BATCH_HEADER_SIZE, this.#end, this.#fill);
    const range = await this.#segment.rangeFrom(at, maxBytes, maxOffset, this.#reader);
    this.#stream.nextOffset = range.nextOffset;
    this.#stream.nextPosition = range.end;
    return range;
  }

  async bytes(start: number, end: number): Promise<Buffer[]> {
    const bytes = await this.#checkedCopy(start, end);
    this.#owner.counters.add('tailMisses', 1);
    const at = this.#located;
    if (this.#pointOf === undefined) {
      this.#stream.readAhead(end, this.#owner.readAheadEnd(this.#segment), this.#fill);
    } else if (at?.position === start && start + at.header.size === end) {
      this.#owner.keep(this.#segment, start, at.header, bytes, this.#pointOf);
      if (this.#walkedFrom !== undefined) await this.#keepWalk(this.#walkedFrom, start, this.#pointOf);
    }
    return [bytes];
  }

  /**
   * The read cache finds a batch no index entry names by walking from the
   * entry below it: the batches on the way, [from, to), go in too. One that
   * fails its checks is left out; the read that needs it will meet that.
   */
  async #keepWalk(from: number, to: number, generation: number): Promise<void> {
    try {
      for (let p = from; p < to; ) {
        const header = (await this.#reader.header(p))!;
        this.#owner.keep(this.#segment, p, header, await this.#checkedCopy(p, p + header.size), generation);
        p += header.size;
      }
    } catch {
      return;
    }
  }

  /**
   * The whole batches in [start, end), checked, as a copy (the stream's
   * buffer is refilled by the next read); a point read's in memory of its
   * own, since a batch the read cache keeps would hold a slab of the shared
   * pool.
   */
  async #checkedCopy(start: number, end: number): Promise<Buffer> {
    const point = this.#pointOf !== undefined;
    await this.#stream.ensure(start, end - start, this.#end, this.#fill, point);
    const view = this.#stream.view(start, end - start);
    const bytes = point ? Buffer.allocUnsafeSlow(view.length) : Buffer.allocUnsafe(view.length);
    view.copy(bytes);
    this.#segment.checkRead(bytes, start, end);
    return bytes;
  }

  release(): void {
    this.#owner.releaseStream(this.#stream);
  }
}

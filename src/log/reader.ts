// Reading a log: whole batches from an offset across segments (read), the
// same bytes sent to a socket without copying (sendTo), one record by its
// offset (readRecord), and the offset for a timestamp. Each segment is pinned while read, so retention or truncation
// may drop it meanwhile without pulling the file from under the read. Where
// the bytes come from (the file, the tail cache, a catch-up read) is the
// cache mode's business (src/cache/).
import type { Writable } from 'node:stream';
import type { LogCache, SegmentSource } from '../cache/log-cache.js';
import { loopTurnDue } from '../common/loop-turns.js';
import { SeglogError } from '../errors.js';
import { offsetAtTimestamp, recordAt, type LogRecord } from '../segment/batch.js';
import type { BatchLocation, Segment } from '../segment/segment.js';
import { sendParts, type Part } from '../sendfile/send.js';
import { checkInteger, checkOptions } from '../validate.js';
import { checkIsolation, type IsolationLevel } from './isolation.js';
import { INT32_MAX } from './options.js';
import type { LogSegments } from './segments.js';

export interface ReadOptions {
  /** Bytes of whole batches to return at most (at least one batch is returned, however large). Default 1 MiB. */
  maxBytes?: number;
  /** Exclusive upper bound: no batch holding an offset >= maxOffset is returned. Default: the log end. */
  maxOffset?: number;
  /**
   * How far to read: 'all' (default) to the log end (replication),
   * 'uncommitted' to the high watermark, 'committed' to the last stable
   * offset. From that bound on the read is empty, as a Kafka fetch there is.
   */
  isolation?: IsolationLevel;
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

/** A read's bounds, checked by checkReadBounds: `maxOffset` is already capped at the isolation level's bound. */
export interface ReadBounds {
  offset: number;
  maxBytes: number;
  maxOffset: number;
}

/** Largest batch buffer kept for the next point read. */
const MAX_SCRATCH = 1024 * 1024;

/** `record` with its own copies of key, value and header values. */
function copied(record: LogRecord | undefined): LogRecord | undefined {
  if (record === undefined) return undefined;
  const copy = (b: Buffer | null) => (b === null ? null : Buffer.from(b));
  return { ...record, key: copy(record.key), value: copy(record.value), headers: record.headers.map((h) => ({ key: h.key, value: copy(h.value) })) };
}

/** A read's bounds from a caller's arguments, checked; `boundOf` the isolation level caps maxOffset. */
export function checkReadBounds(offset: number, options: ReadOptions | undefined, boundOf: (level: IsolationLevel) => number): ReadBounds {
  checkInteger('offset', offset);
  const o = checkOptions<ReadOptions>('options', options);
  const maxBytes = o.maxBytes === undefined ? 1024 * 1024 : checkInteger('options.maxBytes', o.maxBytes, 1, INT32_MAX);
  const bound = boundOf(checkIsolation('options.isolation', o.isolation));
  // Written but not yet visible (under 'always': not yet durable) batches stay hidden.
  const maxOffset = Math.min(bound, o.maxOffset === undefined ? Number.MAX_SAFE_INTEGER : checkInteger('options.maxOffset', o.maxOffset));
  return { offset, maxBytes, maxOffset };
}

/** Receives one segment's part of a read: [start, end) of its .log, while the segment is pinned, and the source that has its bytes in memory if the cache holds them. */
type RangeTaker = (segment: Segment, start: number, end: number, source: SegmentSource) => Promise<void> | void;

export class LogReader {
  readonly #dir: string;
  /** Point reads' and time lookups' batch buffer, kept between them (up to MAX_SCRATCH bytes). */
  #scratch: Buffer | undefined;
  readonly #segments: LogSegments;
  readonly #cache: LogCache;
  /** Throws ECLOSED once the log is closed. */
  readonly #checkOpen: () => void;

  constructor(dir: string, segments: LogSegments, cache: LogCache, checkOpen: () => void) {
    this.#dir = dir;
    this.#segments = segments;
    this.#cache = cache;
    this.#checkOpen = checkOpen;
  }

  /** Bytes of whole batches from the batch holding `offset`, across segment boundaries, up to `maxBytes` (at least one batch). */
  async read(bounds: ReadBounds): Promise<ReadResult> {
    await loopTurnDue();
    const parts: Buffer[] = [];
    const { bytes, nextOffset } = await this.#range(bounds, async (segment, start, end, source) => {
      // Copies from the cache: what read() returns is the caller's to change.
      parts.push(...((await source.bytes(start, end, true)) ?? [await segment.readRange(start, end)]));
    });
    return { bytes: parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes), nextOffset };
  }

  /** What read() would return, sent to `socket` (see Log.sendTo). */
  sendTo(socket: Writable, bounds: ReadBounds, prefix: SendToOptions['prefix']): Promise<SendToResult> {
    let transferEnded!: () => void;
    const ended = new Promise<void>((resolve) => (transferEnded = resolve));
    const slices: Part[] = [];
    const range = this.#range(bounds, async (segment, start, end, source) => {
      // In own mode the bytes come from memory (the tail cache or a catch-up read), not the file.
      const held = await source.bytes(start, end, false);
      if (held !== undefined) {
        slices.push(...held);
        return;
      }
      // The bytes go from the page cache to the socket unseen: their CRCs are checked the first time they are served.
      const checking = segment.checkOnce(start, end);
      if (checking !== undefined) await checking;
      // Pinned on until the transfer ends, so the file stays usable if retention or truncation close it.
      slices.push({ file: segment.log, position: start, length: end - start });
      void segment.log.pin(() => ended);
    });
    const parts = range.then((r) => (prefix === undefined ? slices : [prefix(r), ...slices]));
    const sent = sendParts(socket, parts).finally(transferEnded);
    this.#cache.sending(sent);
    // A read that fails while the batches are located fails the transfer too, which destroys the socket:
    // reject once that is done, with the transfer's error (bytesSent included).
    return Promise.allSettled([range, sent]).then(([r, s]) => {
      if (s.status === 'rejected') throw s.reason;
      if (r.status === 'rejected') throw r.reason;
      return r.value;
    });
  }

  /**
   * The whole batches of a read, each segment's byte range handed to `take`
   * in order while the segment is pinned. An offset outside the log throws
   * at once, before sendTo touches its socket.
   */
  #range(bounds: ReadBounds, take: RangeTaker): Promise<SendToResult> {
    this.#checkRange(bounds.offset);
    return this.#scan(bounds, take);
  }

  async #scan({ offset, maxBytes, maxOffset }: ReadBounds, take: RangeTaker): Promise<SendToResult> {
    let total = 0;
    let next = offset;
    for (let segment: Segment | undefined = this.#segments.floor(offset); segment !== undefined && total < maxBytes; ) {
      const current: Segment = segment;
      const done = await this.#pinned(current, async () => {
        // The file (pagecache mode), or in own mode the tail cache or a catch-up read.
        const source = this.#cache.source(current, next, false);
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
      // Retention, truncation and rolls change the set meanwhile: what follows is found by offset, and once
      // bytes were taken only a segment that continues them will do.
      segment = this.#segments.higher(current);
      if (segment !== undefined && total > 0 && segment.baseOffset !== next) break;
    }
    return { bytes: total, nextOffset: total === 0 ? offset : next };
  }

  /**
   * The record at `offset`, or undefined outside [startOffset, endOffset)
   * (also when retention removes its segment during the call). Reads only
   * the batch holding it, found through the offset index; the records
   * before it in the batch are stepped over, not decoded. Its key and value
   * are copies the caller owns.
   */
  async readRecord(offset: number): Promise<LogRecord | undefined> {
    await loopTurnDue();
    const segment = offset < this.#segments.endOffset && offset >= this.#segments.startOffset ? this.#segments.floor(offset) : undefined;
    if (segment === undefined) return undefined;
    try {
      return await this.#pinned(segment, () => this.#recordIn(segment, offset));
    } catch (err) {
      if ((err as SeglogError).code === 'EOFFSETRANGE' && offset < this.#segments.startOffset) return undefined;
      throw err;
    }
  }

  async #recordIn(segment: Segment, offset: number): Promise<LogRecord | undefined> {
    const source = this.#cache.source(segment, offset, true);
    try {
      const at = await source.locate(offset);
      if (at === undefined) return undefined;
      const end = at.position + at.header.size;
      // Views of the cache will do: the record is copied out before anything can change them.
      const held = await source.bytes(at.position, end, false);
      if (held !== undefined) return copied(recordAt(held.length === 1 ? held[0]! : Buffer.concat(held), at.header, offset));
      return await this.#withBatch(segment, at, (batch) => copied(recordAt(batch, at.header, offset)));
    } finally {
      source.release();
    }
  }

  /**
   * Runs `work` with the segment's file held open, opened first if it was
   * not yet (Segment.load); a segment closed before that was removed: EOFFSETRANGE.
   */
  async #pinned<T>(segment: Segment, work: () => Promise<T>): Promise<T> {
    if (!segment.loaded) await segment.load();
    if (segment.closed) {
      this.#checkOpen();
      throw new SeglogError('EOFFSETRANGE', `segment ${segment.logPath} was removed (start offset is now ${this.#segments.startOffset})`, { path: this.#dir });
    }
    return segment.log.pin(work);
  }

  #checkRange(offset: number): void {
    const { startOffset, endOffset } = this.#segments;
    if (offset < startOffset || offset > endOffset) {
      throw new SeglogError('EOFFSETRANGE', `offset ${offset} is outside the log's range [${startOffset}, ${endOffset}]`, { path: this.#dir });
    }
  }

  /** First offset whose record timestamp is >= `timestamp`, or undefined if none is. */
  async offsetForTimestamp(timestamp: number): Promise<number | undefined> {
    await loopTurnDue();
    for (const segment of this.#segments.all) {
      // Known without opening the segment: it holds nothing that late.
      if (segment.maxTimestamp < timestamp) continue;
      const offset = await this.#pinned(segment, async () => {
        const at = await segment.findByTimestamp(timestamp);
        return at === undefined ? undefined : this.#withBatch(segment, at, (batch) => offsetAtTimestamp(batch, at.header, timestamp));
      });
      if (offset !== undefined) return offset;
    }
    return undefined;
  }

  /**
   * Runs `use` on the batch at `at`: a mapping of it when the page cache
   * holds it (no copy), else read into a buffer kept between calls (fresh
   * memory costs page faults). `use` must not keep views of it.
   */
  async #withBatch<T>(segment: Segment, at: BatchLocation, use: (batch: Buffer) => T): Promise<T> {
    const size = at.header.size;
    const mapped = segment.mapRange(at.position, at.position + size);
    if (mapped !== undefined) return use(mapped);
    const scratch = this.#scratch !== undefined && this.#scratch.length >= size ? this.#scratch : Buffer.allocUnsafe(size);
    this.#scratch = undefined; // a concurrent call takes a buffer of its own
    try {
      return use(await segment.readRange(at.position, at.position + size, scratch));
    } finally {
      if (scratch.length <= MAX_SCRATCH) this.#scratch = scratch;
    }
  }
}

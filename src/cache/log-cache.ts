// What a Log asks of its cache mode: where each segment's part of a read
// comes from, and the events of the log's segment set (appends, syncs,
// rolls, removals, truncations) the mode may act on. Pagecache mode, here,
// reads the files as seglog always has and acts on nothing; own mode is in
// own-cache.ts.
import { readCalls } from '../native.js';
import { HEADER_READ_BYTES, type BatchReader } from '../segment/batch-reader.js';
import type { BatchHeader } from '../segment/batch.js';
import type { BatchLocation, Segment } from '../segment/segment.js';
import type { CacheCounters } from './stats.js';

/** One segment's part of a read, while the segment is pinned. */
export interface SegmentSource {
  /** The batch holding `offset`, or the first after it; undefined past the end. */
  locate(offset: number): Promise<BatchLocation | undefined>;
  /** Segment.rangeFrom(), over this source's bytes. */
  rangeFrom(at: BatchLocation, maxBytes: number, maxOffset: number): Promise<{ end: number; nextOffset: number }>;
  /**
   * The whole batches in [start, end) when the source has them in memory
   * (own mode), or undefined: the caller reads or sends that range of the
   * file. `copy`: buffers the caller may keep and change; otherwise they may
   * be views of the tail cache, which must not be written to.
   */
  bytes(start: number, end: number, copy: boolean): Promise<Buffer[] | undefined>;
  /** Called when the read is done with the segment, whether or not it succeeded. */
  release(): void;
}

/**
 * Memory appends are encoded (or copied) into before they are written. Own
 * mode gives its tail cache's (tail.ts), so the cache keeps the bytes as
 * written, without a copy; else the log uses a ring of its own.
 */
export interface AppendMemory {
  /** `size` bytes; a bound function (encodeBatch takes it as its allocator). */
  readonly allocate: (size: number) => Buffer;
  /** `bytes` copied into memory allocate() gives. */
  copy(bytes: Uint8Array): Buffer;
  /** The append that took `buffer` settled: written, or refused. Idempotent; a no-op for memory from elsewhere. */
  release(buffer: Buffer): void;
}

/** When the log makes its data durable: after every group, now and then (interval, bytes, messages), never. */
export type SyncPolicy = 'always' | 'periodic' | 'none';

export interface LogCache {
  readonly mode: 'pagecache' | 'own';
  readonly directIO: boolean;
  readonly counters: CacheCounters;
  /** Where a read of `segment` from `offset` gets its bytes; `point`: a read of one record (readRecord), which own mode may serve from and keep in its read cache. */
  source(segment: Segment, offset: number, point: boolean): SegmentSource;
  /** A sendTo transfer of the ranges the sources left to the files has started. */
  sending(transfer: Promise<unknown>): void;
  /** A group of batches was written at `position` of the active segment and, under 'always', synced. */
  appended(segment: Segment, position: number, chunks: readonly Uint8Array[], headers: readonly BatchHeader[]): void;
  /** An fdatasync made the first `end` bytes of `segment` durable. */
  synced(segment: Segment, end: number): void;
  /** `segment` stopped being the active one. */
  sealed(segment: Segment): void;
  /** `segments` left the log (retention, truncation). */
  removed(segments: readonly Segment[]): void;
  /** truncateTo is cutting `segment`: what is cached of it goes. */
  replacing(segment: Segment): void;
  /** The log was cut back (truncateTo): what was cached or read ahead past the cut is wrong now. */
  truncated(): void;
  /** Memory held now. */
  readonly cacheBytes: number;
  /** Where appends encode into; undefined: the log's own ring. */
  readonly appendMemory: AppendMemory | undefined;
  /** Waits for background work and frees what the cache holds. */
  close(): Promise<void>;
}

/** Pagecache mode: every read goes to the files, through the kernel's page cache. */
export class PageCacheLog implements LogCache {
  readonly mode = 'pagecache';
  readonly directIO = false;
  readonly cacheBytes = 0;
  readonly appendMemory = undefined;
  readonly counters: CacheCounters;
  /** Reads and transfers under way; the addon's counters are taken over the time any is. */
  #open = 0;
  #callsAt = 0;

  constructor(counters: CacheCounters) {
    this.counters = counters;
  }

  source(segment: Segment, _offset: number, point: boolean): SegmentSource {
    this.#begin();
    return new FileSource(segment, point, this.counters, () => this.#end());
  }

  sending(transfer: Promise<unknown>): void {
    this.#begin();
    const end = () => this.#end();
    transfer.then(end, end);
  }

  // Overlapping reads of the log count each call once: the counts go from one begin or end to the next.
  #begin(): void {
    if (this.#open++ === 0) this.#callsAt = readCalls();
  }

  #end(): void {
    const calls = readCalls();
    this.counters.add('readSyscalls', calls - this.#callsAt);
    this.#callsAt = calls;
    this.#open--;
  }

  appended(): void {}
  synced(): void {}
  sealed(): void {}
  removed(): void {}
  replacing(): void {}
  truncated(): void {}
  async close(): Promise<void> {}
}

/** A segment's file read with pread through a BatchReader: seglog's read path before cache modes existed. */
class FileSource implements SegmentSource {
  readonly #segment: Segment;
  readonly #reader: BatchReader;
  /** A point read: the batch holding the offset is found through the index entry at or past it (one header read). */
  readonly #point: boolean;
  readonly #counters: CacheCounters;
  readonly #release: () => void;

  constructor(segment: Segment, point: boolean, counters: CacheCounters, release: () => void) {
    this.#segment = segment;
    this.#point = point;
    // Headers only: the batches themselves are read whole by the caller.
    this.#reader = segment.reader(HEADER_READ_BYTES);
    this.#counters = counters;
    this.#release = release;
  }

  locate(offset: number): Promise<BatchLocation | undefined> {
    return this.#point ? this.#segment.locatePoint(offset, this.#reader) : this.#segment.locate(offset, this.#reader);
  }

  rangeFrom(at: BatchLocation, maxBytes: number, maxOffset: number): Promise<{ end: number; nextOffset: number }> {
    return this.#segment.rangeFrom(at, maxBytes, maxOffset, this.#reader);
  }

  async bytes(start: number, end: number): Promise<undefined> {
    this.#counters.add('tailMisses', 1);
    this.#counters.add('catchUpBytesFromDisk', end - start);
    return undefined;
  }

  release(): void {
    this.#release();
  }
}

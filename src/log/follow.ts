// Following the end of a log: decoded batches and records from an offset
// on, and with `follow`, waiting at the bound of the read's isolation level
// (the log end, the high watermark or the last stable offset) until it moves,
// the log closes or the caller aborts. Followers are woken by the segment
// set's append events and by the high watermark moving.
import { decodeChecked, readBatchHeader, type BatchHeader, type LogRecord } from '../segment/batch.js';
import type { BatchFilter } from './isolation.js';
import type { FollowConfig } from './options.js';
import type { ReadResult } from './reader.js';
import type { SegmentEvents } from './segments.js';

/** What records() needs of its log, at the isolation level it reads under. */
export interface FollowSource {
  /** Offsets below it may be read now. */
  bound(): number;
  closed(): boolean;
  read(offset: number, maxBytes: number): Promise<ReadResult>;
  /** Which of the batches read over [from, to) to leave out (read_committed); undefined: none. */
  skipped: ((from: number, to: number) => BatchFilter) | undefined;
}

export class Followers implements SegmentEvents {
  #waiters: Array<() => void> = [];

  appended(): void {
    this.wakeAll();
  }

  /** Wakes every waiter: the log grew, the high watermark moved, or the log closes. */
  wakeAll(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves at once if `ready()` or `closed()`, else at the next wakeAll(); rejects if `signal` aborts first. */
  wait(ready: () => boolean, closed: () => boolean, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      if (ready() || closed()) return resolve();
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
}

/**
 * One batch of a log as batches() yields it. `records` hold only offsets
 * from the one asked for on (the first batch may begin below it). Keys and
 * values of uncompressed batches are views of the buffer the batch was read
 * into: seglog never reuses or changes that buffer, so they stay valid as
 * long as they are referenced, but each keeps the whole read (up to
 * `maxBytes`) in memory; copy them (Buffer.from) to keep a few for long.
 */
export interface LogBatch {
  /** The batch's header as stored. */
  header: BatchHeader;
  records: LogRecord[];
}

/**
 * Batches of `log` from the one holding `fromOffset` on, decoded, up to its
 * bound, leaving out those `log.skipped` names; with `follow`, waits at the
 * bound instead of finishing. Each batch's CRC was checked by the read that
 * brought it and is not computed again.
 */
export async function* batches(log: FollowSource, followers: Followers, fromOffset: number, options: FollowConfig): AsyncGenerator<LogBatch> {
  const { follow, signal, maxBytes } = options;
  let next = fromOffset;
  for (;;) {
    signal?.throwIfAborted();
    if (log.closed()) return;
    const bound = log.bound();
    if (next >= bound) {
      if (!follow) return;
      await followers.wait(() => log.bound() > next, log.closed, signal);
      continue;
    }
    const { bytes, nextOffset } = await log.read(next, maxBytes);
    if (bytes.length === 0) {
      // Nothing below the bound: the batch at `next` ends past it (a high watermark set inside a batch: it
      // comes whole or not at all), or a truncation is under way (its segments gone, the bound not yet
      // moved). Either way only a move of the bound changes that.
      if (!follow) return;
      await followers.wait(() => log.bound() !== bound, log.closed, signal);
      continue;
    }
    const skipped = log.skipped?.(next, nextOffset);
    for (let p = 0; p < bytes.length; ) {
      const header = readBatchHeader(bytes, p);
      p += header.size;
      if (skipped?.(header) === true) continue;
      let records = decodeChecked(bytes.subarray(p - header.size, p), header);
      if (header.baseOffset < next) records = records.filter((r) => r.offset >= next);
      if (records.length > 0) yield { header, records };
    }
    next = nextOffset;
  }
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * records(): the records of batches() one by one. The async step is per
 * batch; records of a batch in hand are handed out as resolved promises,
 * without an async generator's per-item machinery.
 */
export class RecordIterator implements AsyncGenerator<LogRecord, undefined> {
  readonly #batches: AsyncGenerator<LogBatch>;
  #records: LogRecord[] = [];
  #next = 0;
  /** The batch being fetched: next() calls made meanwhile wait for it, in order. */
  #fetching: Promise<IteratorResult<LogRecord, undefined>> | undefined;

  constructor(source: AsyncGenerator<LogBatch>) {
    this.#batches = source;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<LogRecord, undefined>> {
    if (this.#fetching !== undefined) return this.#fetching.then(() => this.next());
    if (this.#next < this.#records.length) return Promise.resolve({ done: false, value: this.#records[this.#next++]! });
    this.#fetching = this.#batches.next().then(
      (r) => {
        this.#fetching = undefined;
        if (r.done === true) return DONE;
        this.#records = r.value.records;
        this.#next = 0;
        return this.next();
      },
      (err: unknown) => {
        this.#fetching = undefined;
        throw err;
      },
    );
    return this.#fetching;
  }

  async return(): Promise<IteratorResult<LogRecord, undefined>> {
    this.#records = [];
    await this.#batches.return(undefined);
    return DONE;
  }

  async throw(err: unknown): Promise<IteratorResult<LogRecord, undefined>> {
    this.#records = [];
    await this.#batches.throw(err);
    return DONE;
  }
}

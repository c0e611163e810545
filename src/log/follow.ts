// Following the end of a log: decoded batches and records from an offset
// on, and with `follow`, waiting at the bound of the read's isolation level
// (the log end, the high watermark or the last stable offset) until it moves,
// the log closes or the caller aborts. Followers are woken by the segment
// set's append events and by the high watermark moving.
import { decodeChecked, readBatchHeader, RecordCursor, type BatchHeader, type LogRecord } from '../segment/batch.js';
import { checkInteger } from '../validate.js';
import type { BatchFilter, IsolationLevel } from './isolation.js';
import { checkRecordsOptions, type RecordsOptions } from './options.js';
import type { ReadResult } from './reader.js';
import type { SegmentEvents } from './segments.js';

/** What records() needs of its log, at the isolation level it reads under. */
export interface FollowSource {
  /** Offsets below it may be read now. */
  bound(level: IsolationLevel): number;
  closed(): boolean;
  read(offset: number, maxBytes: number, level: IsolationLevel): Promise<ReadResult>;
  /** Which of the batches read over [from, to) to leave out; undefined: none. */
  skipped(level: IsolationLevel, from: number, to: number): BatchFilter | undefined;
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
 * The reads of `log` from the batch holding `fromOffset` on up to the bound
 * of the isolation level (whole batches, each CRC-checked by the read that
 * brought it), each with the offset it was asked for (its first batch may
 * begin below it) and the batches to leave out; with `follow`, waits at the
 * bound instead of finishing. Arguments are checked when first asked.
 */
async function* reads(log: FollowSource, followers: Followers, fromOffset: number, options: RecordsOptions | undefined): AsyncGenerator<Read> {
  checkInteger('fromOffset', fromOffset);
  const { follow, signal, maxBytes, isolation } = checkRecordsOptions(options);
  let next = fromOffset;
  for (;;) {
    signal?.throwIfAborted();
    if (log.closed()) return;
    const bound = log.bound(isolation);
    if (next >= bound) {
      if (!follow) return;
      await followers.wait(() => log.bound(isolation) > next, log.closed, signal);
      continue;
    }
    const { bytes, nextOffset } = await log.read(next, maxBytes, isolation);
    if (bytes.length === 0) {
      // Nothing below the bound: the batch at `next` ends past it (a high watermark set inside a batch: it
      // comes whole or not at all), or a truncation is under way (its segments gone, the bound not yet
      // moved). Either way only a move of the bound changes that.
      if (!follow) return;
      await followers.wait(() => log.bound(isolation) !== bound, log.closed, signal);
      continue;
    }
    yield { bytes, from: next, skipped: log.skipped(isolation, next, nextOffset) };
    next = nextOffset;
  }
}

/** One read of reads(): whole batches, the offset asked for, and which batches to leave out. */
interface Read {
  bytes: Buffer;
  from: number;
  skipped: BatchFilter | undefined;
}

/**
 * Batches of `log` from the one holding `fromOffset` on, decoded; with
 * `follow`, waits at the end instead of finishing. Each batch's CRC was
 * checked by the read that brought it and is not computed again.
 */
export async function* batches(log: FollowSource, followers: Followers, fromOffset: number, options: RecordsOptions | undefined): AsyncGenerator<LogBatch> {
  for await (const { bytes, from, skipped } of reads(log, followers, fromOffset, options)) {
    for (let p = 0; p < bytes.length; ) {
      const header = readBatchHeader(bytes, p);
      p += header.size;
      if (skipped?.(header) === true) continue;
      let records = decodeChecked(bytes.subarray(p - header.size, p), header);
      if (header.baseOffset < from) records = records.filter((r) => r.offset >= from);
      if (records.length > 0) yield { header, records };
    }
  }
}

/** The records of batches() one by one (the same options, the same views). */
export function records(log: FollowSource, followers: Followers, fromOffset: number, options: RecordsOptions | undefined): AsyncGenerator<LogRecord, undefined> {
  return new RecordIterator(reads(log, followers, fromOffset, options));
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };
const EMPTY = Buffer.alloc(0);

/**
 * records(): the async step is per read (up to maxBytes of batches); the
 * records of a read in hand are decoded one at a time as next() asks
 * (RecordCursor: no array, no async generator per record) and handed out
 * as resolved promises.
 */
class RecordIterator implements AsyncGenerator<LogRecord, undefined> {
  readonly #reads: AsyncGenerator<Read>;
  /** The read in hand, where its next batch starts, and the offset it was asked for. */
  #bytes: Buffer = EMPTY;
  #position = 0;
  #from = 0;
  /** Which batches of the read in hand to leave out (read_committed). */
  #skipped: BatchFilter | undefined;
  /** The batch being decoded. */
  #cursor: RecordCursor | undefined;
  /** The read being fetched: next() calls made meanwhile wait for it, in order. */
  #fetching: Promise<IteratorResult<LogRecord, undefined>> | undefined;
  /** Ended by return(), throw() or an error: a read that arrives after that is not handed out. */
  #finished = false;

  constructor(source: AsyncGenerator<Read>) {
    this.#reads = source;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<LogRecord, undefined>> {
    if (this.#fetching !== undefined) return this.#fetching.then(() => this.next());
    if (this.#finished) return Promise.resolve(DONE);
    try {
      for (;;) {
        const record = this.#cursor?.next();
        if (record !== undefined) {
          if (record.offset >= this.#from) return Promise.resolve({ done: false, value: record });
          continue;
        }
        if (this.#position >= this.#bytes.length) break;
        const p = this.#position;
        const header = readBatchHeader(this.#bytes, p);
        this.#position = p + header.size;
        if (this.#skipped?.(header) === true) continue;
        this.#cursor = new RecordCursor(this.#bytes.subarray(p, p + header.size), header);
      }
    } catch (err) {
      // As when batches() throws: the iteration ends (the reads finish first), and the error is the caller's.
      return this.#drop().then(() => Promise.reject(err));
    }
    this.#cursor = undefined;
    this.#fetching = this.#reads.next().then(
      (r) => {
        this.#fetching = undefined;
        if (r.done === true || this.#finished) return DONE;
        this.#bytes = r.value.bytes;
        this.#position = 0;
        this.#from = r.value.from;
        this.#skipped = r.value.skipped;
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
    await this.#drop();
    return DONE;
  }

  async throw(err: unknown): Promise<IteratorResult<LogRecord, undefined>> {
    this.#finish();
    await this.#reads.throw(err);
    return DONE;
  }

  /** Ends the iteration and finishes the reads. */
  async #drop(): Promise<void> {
    this.#finish();
    await this.#reads.return(undefined);
  }

  /** Ends the iteration: the read in hand is let go. */
  #finish(): void {
    this.#finished = true;
    this.#cursor = undefined;
    this.#bytes = EMPTY;
    this.#position = 0;
  }
}

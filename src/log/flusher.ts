// Making written data durable outside the append path: fdatasync passes on a
// timer or once enough bytes/records are unflushed (the flush policy), on
// flush() and on close. Keeps flushedOffset, the durable end (Kafka's
// recovery point). A failed fdatasync stops the log (fail-stop): it is never
// retried as if nothing happened.
import type { SeglogError } from '../errors.js';
import type { FlushConfig } from './options.js';
import type { LogSegments, SegmentEvents } from './segments.js';

export class Flusher implements SegmentEvents {
  readonly #segments: LogSegments;
  readonly #config: FlushConfig;
  /** Puts the log in its failed state and returns the error that stopped it. */
  readonly #fail: (err: unknown) => unknown;
  /** The error that stopped the log, if any: passes refuse to run after it. */
  readonly #failure: () => unknown;
  /** Durable end: every offset below it survived an fdatasync. */
  #flushedOffset: number;
  #unflushedBytes = 0;
  #unflushedMessages = 0;
  #flushing: Promise<void> | undefined;
  #nextFlush: Promise<void> | undefined;
  /** Counts truncations begun: a pass that saw one cannot vouch for the segment it cut. */
  #cuts = 0;

  /** `durableEnd`: what open knows to be durable already (see LoadedLog.durableEnd). */
  constructor(segments: LogSegments, durableEnd: number, config: FlushConfig, fail: (err: unknown) => unknown, failure: () => unknown) {
    this.#segments = segments;
    this.#config = config;
    this.#fail = fail;
    this.#failure = failure;
    this.#flushedOffset = durableEnd;
  }

  get flushedOffset(): number {
    return this.#flushedOffset;
  }

  /**
   * A group was written (and under 'always' synced up to `endOffset` by the
   * group commit itself). Starts a threshold flush when one is due; appends
   * do not wait for it, and its failure stops the log.
   */
  written(bytes: number, records: number, endOffset: number): void {
    const f = this.#config;
    if (f.always) {
      this.#flushedOffset = endOffset;
      return;
    }
    this.#unflushedBytes += bytes;
    this.#unflushedMessages += records;
    if (this.#unflushedBytes >= f.bytes || this.#unflushedMessages >= f.messages) void this.flush().catch(() => undefined);
  }

  replacing(): void {
    this.#cuts++;
  }

  truncated(): void {
    // The truncation made what stays durable itself, before it resolves.
    this.#flushedOffset = Math.min(this.#flushedOffset, this.#segments.endOffset);
  }

  /** Forces every record appended before the call to disk. One pass at a time; callers during a pass share the next one, which covers their data. */
  flush(): Promise<void> {
    if (this.#flushing === undefined) {
      this.#flushing = this.#pass().finally(() => (this.#flushing = undefined));
      return this.#flushing;
    }
    this.#nextFlush ??= this.#flushing
      .catch(() => undefined)
      .then(() => {
        this.#nextFlush = undefined;
        return this.flush();
      });
    return this.#nextFlush;
  }

  async #pass(): Promise<void> {
    const failure = this.#failure();
    if (failure !== undefined) throw failure;
    const end = this.#segments.endOffset;
    const cuts = this.#cuts;
    // Only the active segment: a roll makes the segment it seals durable (see GroupCommit.roll).
    const active = this.#segments.active;
    this.#unflushedBytes = 0;
    this.#unflushedMessages = 0;
    try {
      const size = active.size;
      await active.log.datasync();
      this.#segments.synced(active, size);
    } catch (err) {
      // Closed meanwhile: dropped by truncation (nothing of it needs to be durable), or being cut by
      // truncateTo (which makes what stays durable itself, before it resolves).
      if ((err as SeglogError).code !== 'ECLOSED') throw this.#fail(err);
    }
    if (this.#cuts === cuts) this.#flushedOffset = Math.max(this.#flushedOffset, Math.min(end, this.#segments.endOffset));
  }
}

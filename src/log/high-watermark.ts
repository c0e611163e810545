// The high watermark (Kafka's HW): the end of what a partition's replicas all
// hold, below which consumers may read. 'auto' (one replica) keeps it at the
// log end, which under flush 'always' is the durable end (a group is published
// only after its fdatasync). 'manual' (a replicated partition) moves it only
// when the broker says so, forward only, within [startOffset, endOffset];
// truncation pulls it down to the new end, a start offset past it pulls it up.
import type { LogSegments, SegmentEvents } from './segments.js';

export type HighWatermarkMode = 'auto' | 'manual';

export class HighWatermark implements SegmentEvents {
  readonly #segments: LogSegments;
  readonly #manual: boolean;
  /** Readers waiting on it to move. */
  readonly #moved: () => void;
  /** Under 'manual': the offset set last, never past endOffset (truncation lowers it). */
  #offset: number;

  /**
   * `checkpointed` is where a store last recorded it (clamped to the log);
   * undefined for a log no store keeps it for, which starts from its recovered end.
   */
  constructor(segments: LogSegments, mode: HighWatermarkMode, checkpointed: number | undefined, moved: () => void) {
    this.#segments = segments;
    this.#manual = mode === 'manual';
    this.#moved = moved;
    this.#offset = Math.min(checkpointed ?? segments.endOffset, segments.endOffset);
  }

  get manual(): boolean {
    return this.#manual;
  }

  get offset(): number {
    if (!this.#manual) return this.#segments.endOffset;
    // Retention and deleteRecordsBefore raise the start without telling anyone: the HW is never below it.
    return Math.max(this.#offset, this.#segments.startOffset);
  }

  /** Moves it to `offset` clamped to [startOffset, endOffset] if that is forward; returns where it is. */
  set(offset: number): number {
    const target = Math.min(Math.max(offset, this.#segments.startOffset), this.#segments.endOffset);
    if (target > this.offset) {
      this.#offset = target;
      this.#moved();
    }
    return this.offset;
  }

  truncated(): void {
    this.#offset = Math.min(this.#offset, this.#segments.endOffset);
  }
}

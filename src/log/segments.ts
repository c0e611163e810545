// The ordered set of a log's segments and the range of offsets they expose,
// [startOffset, endOffset). Every change to the set goes through here, and
// here alone tells the parties that keep per-segment state (the cache, the
// flusher, followers) what changed, through SegmentEvents.
import type { BatchHeader } from '../segment/batch.js';
import type { Segment } from '../segment/segment.js';

/** What the set tells its listeners; each listener acts on the events it cares about. */
export interface SegmentEvents {
  /**
   * A group of batches was written at `position` of the active segment (under 'always': and synced); endOffset covers it.
   * `chunks` are reused memory, valid only during the call: copy what you keep.
   */
  appended?(segment: Segment, position: number, chunks: readonly Uint8Array[], headers: readonly BatchHeader[]): void;
  /** An fdatasync made the first `end` bytes of `segment` durable. */
  synced?(segment: Segment, end: number): void;
  /** `segment` stopped being the active one (a roll). */
  sealed?(segment: Segment): void;
  /** `segments` left the log (retention, deleteRecordsBefore, truncation past them, or the cleaner's swap: a cleaned segment took their place). */
  removed?(segments: readonly Segment[]): void;
  /** truncateTo is cutting `segment`: it is closed now and comes back cut, as a new Segment. */
  replacing?(segment: Segment): void;
  /** A truncation is done: endOffset moved back. */
  truncated?(): void;
}

export class LogSegments {
  /** Sorted by base offset; the last one is active. Never empty. */
  #list: Segment[];
  readonly #listeners: SegmentEvents[] = [];
  /** End of the data readers may see (and, under 'always', durable). */
  #endOffset: number;
  /** Start offset moved by retention or deleteRecordsBefore (may lie inside the first segment). */
  #logStartOffset: number;

  constructor(segments: Segment[], logStartOffset: number) {
    this.#list = segments;
    this.#endOffset = this.active.nextOffset;
    this.#logStartOffset = Math.max(logStartOffset, segments[0]!.baseOffset);
  }

  /** Adds a party to tell about changes, in the order listened. */
  listen(listener: SegmentEvents): void {
    this.#listeners.push(listener);
  }

  #emit<K extends keyof SegmentEvents>(event: K, ...args: Parameters<NonNullable<SegmentEvents[K]>>): void {
    for (const l of this.#listeners) (l[event] as ((...a: typeof args) => void) | undefined)?.apply(l, args);
  }

  /** First offset still in the log. */
  get startOffset(): number {
    return Math.max(this.#logStartOffset, this.#list[0]!.baseOffset);
  }

  /** Offset the next appended record will get. */
  get endOffset(): number {
    return this.#endOffset;
  }

  get active(): Segment {
    return this.#list[this.#list.length - 1]!;
  }

  get count(): number {
    return this.#list.length;
  }

  /** Total bytes of all .log files. */
  get size(): number {
    return this.#list.reduce((n, s) => n + s.size, 0);
  }

  /** The segments now, oldest first. */
  get all(): readonly Segment[] {
    return this.#list;
  }

  includes(segment: Segment): boolean {
    return this.#list.includes(segment);
  }

  /** The segment that holds `offset` or, in a gap, the first after it. */
  floor(offset: number): Segment {
    return this.#list[this.#floorIndex(offset)]!;
  }

  #floorIndex(offset: number): number {
    let lo = 0;
    let hi = this.#list.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#list[mid]!.baseOffset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The first segment after `segment` by offset (found by offset: the set may have changed since `segment` was taken). */
  higher(segment: Segment): Segment | undefined {
    return this.#list.find((s) => s.baseOffset > segment.baseOffset);
  }

  /** Batches were written to the active segment and are visible up to `endOffset`. */
  appended(position: number, chunks: readonly Uint8Array[], headers: readonly BatchHeader[], endOffset: number): void {
    const segment = this.active;
    this.#emit('appended', segment, position, chunks, headers);
    this.#endOffset = endOffset;
  }

  synced(segment: Segment, end: number): void {
    this.#emit('synced', segment, end);
  }

  /** `next` becomes the active segment after the current one was sealed. */
  rolled(next: Segment): void {
    const sealed = this.active;
    this.#list.push(next);
    this.#emit('sealed', sealed);
  }

  /** Moves the log start offset up to `offset` (never down); returns whether it moved. */
  raiseStart(offset: number): boolean {
    if (offset <= this.#logStartOffset) return false;
    this.#logStartOffset = offset;
    return true;
  }

  /** Takes out the inactive segments that hold nothing at or after `start`, oldest first. */
  takeBelow(start: number): Segment[] {
    const doomed: Segment[] = [];
    while (this.#list.length > 1 && this.#list[1]!.baseOffset <= start) doomed.push(this.#list.shift()!);
    if (doomed.length > 0) this.#emit('removed', doomed);
    return doomed;
  }

  /** Takes out the segments after the one holding `offset`, newest first; that one becomes active. */
  takeAfter(offset: number): Segment[] {
    const doomed = this.#list.splice(this.#floorIndex(offset) + 1).reverse();
    if (doomed.length > 0) this.#emit('removed', doomed);
    return doomed;
  }

  /**
   * The cleaner's swap: `cleaned` takes the place of `sources` (consecutive
   * sealed segments, its base offset the first one's). Readers that hold a
   * source read on from its open files.
   */
  replaceSealed(sources: readonly Segment[], cleaned: Segment): void {
    const at = this.#list.indexOf(sources[0]!);
    if (at < 0 || at + sources.length >= this.#list.length || sources.some((s, i) => this.#list[at + i] !== s)) {
      throw new Error('replaceSealed: the sources are not consecutive sealed segments of the log');
    }
    this.#list.splice(at, sources.length, cleaned);
    this.#emit('removed', sources);
  }

  /** The active segment is about to be cut: it is closed and replaced by `replaceActive`. */
  replacing(): Segment {
    const segment = this.active;
    this.#emit('replacing', segment);
    return segment;
  }

  /** The cut active segment takes the place of the one `replacing` returned; the log now ends at `endOffset`. */
  replaceActive(segment: Segment, endOffset: number): void {
    this.#list[this.#list.length - 1] = segment;
    this.#endOffset = endOffset;
    this.#emit('truncated');
  }
}

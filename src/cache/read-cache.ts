// Own mode's read cache: whole batches that point reads (readRecord) fetched
// from disk, checked, kept within one budget per store and evicted least
// recently used first. Only point reads insert, so a reader replaying a
// backlog (catch-up reads through read-ahead streams) never flushes it, and
// it has a budget of its own, apart from the tail cache's. A hit is a map
// lookup: no system call, no copy.
import type { BatchHeader } from '../segment/batch.js';
import type { Segment } from '../segment/segment.js';

/** A checked batch as read from `segment` at `position`. */
export interface CachedBatch {
  readonly segment: Segment;
  readonly position: number;
  readonly header: BatchHeader;
  /** The batch's bytes; shared with every reader, never to be written to. */
  readonly bytes: Buffer;
  /** Who inserted it (one log's cache): truncating that log drops its batches. */
  readonly owner: object;
}

export class ReadCache {
  readonly #budget: number;
  /** Batches by segment and position. */
  readonly #bySegment = new Map<Segment, Map<number, CachedBatch>>();
  /** Every batch held, least recently used first (a Set keeps insertion order; a hit moves its batch to the end). */
  readonly #recency = new Set<CachedBatch>();
  /** Bytes held per owner, for each log's cacheBytes. */
  readonly #ownerBytes = new Map<object, number>();
  #bytes = 0;

  /** `budget`: bytes of batches held at most, counted over every owner. */
  constructor(budget: number) {
    this.#budget = budget;
  }

  /** Bytes held in all, or by `owner`. */
  bytesHeld(owner?: object): number {
    return owner === undefined ? this.#bytes : (this.#ownerBytes.get(owner) ?? 0);
  }

  /** The batch held at `position` of `segment`, marked as just used; undefined if none is. */
  get(segment: Segment, position: number): CachedBatch | undefined {
    const batch = this.#bySegment.get(segment)?.get(position);
    if (batch === undefined) return undefined;
    this.#recency.delete(batch);
    this.#recency.add(batch);
    return batch;
  }

  /**
   * The batch holding `offset` in `segment`, if held: the batch the offset
   * index's first entry at or past `offset` names, else the batches held
   * from the index entry below it on.
   */
  find(segment: Segment, offset: number): CachedBatch | undefined {
    if (!this.#bySegment.has(segment) || offset < segment.baseOffset || offset >= segment.nextOffset) return undefined;
    const index = segment.offsetIndex;
    const ceiling = index.ceiling(offset);
    if (ceiling !== undefined) {
      const batch = this.get(segment, ceiling.position);
      if (batch !== undefined && batch.header.baseOffset <= offset && offset <= batch.header.lastOffset) return batch;
    }
    for (let position = index.lookup(offset).position; ; ) {
      const batch = this.get(segment, position);
      if (batch === undefined || batch.header.baseOffset > offset) return undefined;
      if (batch.header.lastOffset >= offset) return batch;
      position += batch.header.size;
    }
  }

  /** Keeps a checked batch, evicting the least recently used ones to stay within the budget; one bigger than the budget is not kept. */
  add(batch: CachedBatch): void {
    const size = batch.bytes.length;
    if (size > this.#budget) return;
    let positions = this.#bySegment.get(batch.segment);
    const old = positions?.get(batch.position);
    if (old !== undefined) this.#remove(old);
    while (this.#bytes + size > this.#budget) this.#remove(this.#recency.values().next().value!);
    if (positions === undefined) {
      positions = new Map();
      this.#bySegment.set(batch.segment, positions);
    }
    positions.set(batch.position, batch);
    this.#recency.add(batch);
    this.#bytes += size;
    this.#ownerBytes.set(batch.owner, this.bytesHeld(batch.owner) + size);
  }

  /** Forgets what is held of `segment` (it left the log, or is being cut). */
  drop(segment: Segment): void {
    const positions = this.#bySegment.get(segment);
    if (positions === undefined) return;
    for (const batch of [...positions.values()]) this.#remove(batch);
  }

  /** Forgets every batch `owner` inserted. */
  dropOwner(owner: object): void {
    if (!this.#ownerBytes.has(owner)) return;
    for (const batch of [...this.#recency]) if (batch.owner === owner) this.#remove(batch);
  }

  #remove(batch: CachedBatch): void {
    const positions = this.#bySegment.get(batch.segment)!;
    positions.delete(batch.position);
    if (positions.size === 0) this.#bySegment.delete(batch.segment);
    this.#recency.delete(batch);
    this.#bytes -= batch.bytes.length;
    const left = this.bytesHeld(batch.owner) - batch.bytes.length;
    if (left === 0) this.#ownerBytes.delete(batch.owner);
    else this.#ownerBytes.set(batch.owner, left);
  }
}

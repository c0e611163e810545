// A producer's last BATCHES_RETAINED batches (Kafka's ProducerStateEntry
// batchMetadata: what a retry is matched against), oldest first, held as
// numbers in slots of one array that stay as batches come and go. Recording
// a batch allocates nothing, and copying a window (a group's draft of an
// entry, producer-append.ts) copies numbers, not objects: this runs for
// every batch of an idempotent producer. A group's pending batches
// (producer-append.ts) are numbers in the same layout, pushed on from there.

/** Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN. */
export const BATCHES_RETAINED = 5;

/** Numbers per batch, at these places: in a slot, and in a batch kept elsewhere in this layout (writeBatch). */
export const BATCH_FIELDS = 5;
const FIRST_SEQ = 0;
const LAST_SEQ = 1;
const LAST_OFFSET = 2;
const OFFSET_DELTA = 3;
const TIMESTAMP = 4;

/** Writes a batch's numbers to `to` from `at` on. */
export function writeBatch(to: number[], at: number, firstSeq: number, lastSeq: number, lastOffset: number, offsetDelta: number, timestamp: number): void {
  to[at + FIRST_SEQ] = firstSeq;
  to[at + LAST_SEQ] = lastSeq;
  to[at + LAST_OFFSET] = lastOffset;
  to[at + OFFSET_DELTA] = offsetDelta;
  to[at + TIMESTAMP] = timestamp;
}

/** The timestamp of the batch writeBatch wrote at `at`. */
export function batchTimestamp(from: readonly number[], at: number): number {
  return from[at + TIMESTAMP]!;
}

export class BatchWindow {
  /** Slot s holds [BATCH_FIELDS * s, BATCH_FIELDS * (s + 1)); the oldest batch is in slot #first, the others follow it round the ring. */
  readonly #slots: number[] = [];
  #first = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Where the i-th batch (0: the oldest) starts in #slots. */
  #at(i: number): number {
    const slot = this.#first + i;
    return (slot < BATCHES_RETAINED ? slot : slot - BATCHES_RETAINED) * BATCH_FIELDS;
  }

  /** Records a batch as the newest; the oldest goes once BATCHES_RETAINED are held. */
  push(firstSeq: number, lastSeq: number, lastOffset: number, offsetDelta: number, timestamp: number): void {
    let p: number;
    if (this.#size < BATCHES_RETAINED) {
      p = this.#at(this.#size++);
    } else {
      p = this.#first * BATCH_FIELDS;
      this.#first = this.#first + 1 < BATCHES_RETAINED ? this.#first + 1 : 0;
    }
    // Slots fill in order, so the array grows without holes.
    writeBatch(this.#slots, p, firstSeq, lastSeq, lastOffset, offsetDelta, timestamp);
  }

  /** Records the batch writeBatch wrote at `at` of `from` as the newest. */
  pushFrom(from: readonly number[], at: number): void {
    this.push(from[at + FIRST_SEQ]!, from[at + LAST_SEQ]!, from[at + LAST_OFFSET]!, from[at + OFFSET_DELTA]!, from[at + TIMESTAMP]!);
  }

  /** Which batch (0: the oldest) has these first and last sequences (Kafka's batchWithSequenceRange); -1: none. */
  find(firstSeq: number, lastSeq: number): number {
    const s = this.#slots;
    for (let i = 0; i < this.#size; i++) {
      const p = this.#at(i);
      if (s[p + FIRST_SEQ] === firstSeq && s[p + LAST_SEQ] === lastSeq) return i;
    }
    return -1;
  }

  lastSeq(i: number): number {
    return this.#slots[this.#at(i) + LAST_SEQ]!;
  }

  lastOffset(i: number): number {
    return this.#slots[this.#at(i) + LAST_OFFSET]!;
  }

  /** The batch's lastOffset - its first offset. */
  offsetDelta(i: number): number {
    return this.#slots[this.#at(i) + OFFSET_DELTA]!;
  }

  timestamp(i: number): number {
    return this.#slots[this.#at(i) + TIMESTAMP]!;
  }

  /** Holds the batches of `other` (its slots copied in order). */
  copyFrom(other: BatchWindow): void {
    const from = other.#slots;
    const to = this.#slots;
    for (let i = 0; i < other.#size; i++) {
      const p = other.#at(i);
      const q = i * BATCH_FIELDS;
      for (let f = 0; f < BATCH_FIELDS; f++) to[q + f] = from[p + f]!;
    }
    this.#first = 0;
    this.#size = other.#size;
  }

  clear(): void {
    this.#first = 0;
    this.#size = 0;
  }
}

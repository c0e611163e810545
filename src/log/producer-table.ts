// Producers' state as numbered rows of typed arrays (Kafka's
// ProducerStateEntry, its batchMetadata the last BATCHES_RETAINED batches): a
// row holds a producer's id, epoch, coordinator epoch, open transaction, last
// timestamp and its last 5 batches (sequences, offsets, timestamps) round a
// ring of slots. The log's state (producer-state.ts) and a group's drafts
// (producer-append.ts) are rows of one table, so a draft is copied from and
// into the state by copying numbers.
//
// Why rows and not an object per producer: with many producers taking turns,
// a producer's state is out of the CPU caches by its next append, and the
// checks cost what they touch. An object, its boxed timestamp, its window
// object, array and element store, and the neighbours in a linked recency
// list were ~13 cache lines a batch. A row's check reads one (see below);
// its push writes a second, and one for the offsets and timestamps of the
// slots, which only a duplicate's answer and the push touch.
// Rows stay where they are as the table grows and are reused once freed:
// recording a batch allocates nothing.

/** Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN. */
const BATCHES_RETAINED = 5;

// A row: 32 int32s (128 bytes), some of whose pairs are float64s. What the
// check of a producer's next batch reads (ProducerTable.takesNext) is in its
// first 64 bytes, one cache line: with many producers taking turns, each
// line a check reads is a miss. The second line is only written by the
// check (the draft's marks) and by the push once the batch is written.
const ROW_INTS = 32;
const ROW_DOUBLES = ROW_INTS / 2;
/** float64 places in a row. */
const PRODUCER_ID = 0;
const LAST_TIMESTAMP = 1;
const TXN_FIRST_OFFSET = 2;
/** The draft's stamp (a mark: see copy()), a float64: stamps run past 2^32 in a long-lived log and must never repeat. */
const STAMP = 3;
/** int32 places in a row. */
const EPOCH = 8;
const SIZE = 9;
/** Slot of the oldest batch; the others follow it round the ring. */
const FIRST = 10;
const LAST_SEQ = 11;
// The second cache line.
const FIRST_SEQ = LAST_SEQ + BATCHES_RETAINED;
const OFFSET_DELTA = FIRST_SEQ + BATCHES_RETAINED;
const COORDINATOR_EPOCH = OFFSET_DELTA + BATCHES_RETAINED;
/** The marks after the data: they belong to where the row is, not to the producer (copy() leaves them). */
const PENDING_AT = COORDINATOR_EPOCH + 1;
const DRAFT = PENDING_AT + 1;
/** Per slot, in a second array (touched by a duplicate's answer and a push only): last offset and timestamp. */
const SLOT_DOUBLES = 2;
const COLD_DOUBLES = BATCHES_RETAINED * SLOT_DOUBLES;

const INITIAL_ROWS = 64;

export class ProducerTable {
  #ints: Int32Array;
  #doubles: Float64Array;
  #cold: Float64Array;
  /** Rows not in use, taken last-freed first. */
  #free: Int32Array;
  #freeCount: number;
  #stamps = 0;

  constructor(rows = INITIAL_ROWS) {
    const buffer = new ArrayBuffer(rows * ROW_INTS * 4);
    this.#ints = new Int32Array(buffer);
    this.#doubles = new Float64Array(buffer);
    this.#cold = new Float64Array(rows * COLD_DOUBLES);
    this.#free = new Int32Array(rows);
    this.#freeCount = 0;
    for (let r = rows - 1; r >= 0; r--) this.#free[this.#freeCount++] = r;
  }

  /** Rows the table has room for (in use or not). */
  get capacity(): number {
    return this.#free.length;
  }

  /** A row not in use, for `producerId` in `epoch` with no batches and no marks (the table doubles when full). */
  allocate(producerId: number, epoch: number): number {
    if (this.#freeCount === 0) this.#grow();
    const r = this.#free[--this.#freeCount]!;
    this.reset(r, producerId, epoch);
    const i = r * ROW_INTS;
    this.#doubles[r * ROW_DOUBLES + STAMP] = 0;
    this.#ints[i + PENDING_AT] = -1;
    this.#ints[i + DRAFT] = -1;
    return r;
  }

  free(r: number): void {
    this.#free[this.#freeCount++] = r;
  }

  #grow(): void {
    const rows = this.capacity;
    const ints = new Int32Array(rows * 2 * ROW_INTS);
    ints.set(this.#ints);
    this.#ints = ints;
    this.#doubles = new Float64Array(ints.buffer);
    const cold = new Float64Array(rows * 2 * COLD_DOUBLES);
    cold.set(this.#cold);
    this.#cold = cold;
    const free = new Int32Array(rows * 2);
    // The free rows are all new: the old ones are in use.
    for (let r = rows * 2 - 1; r >= rows; r--) free[this.#freeCount++] = r;
    this.#free = free;
  }

  /** Row `r` becomes `producerId`'s in `epoch`, as the log knows a new producer: no batches, no transaction. */
  reset(r: number, producerId: number, epoch: number): void {
    const d = r * ROW_DOUBLES;
    this.#doubles[d + PRODUCER_ID] = producerId;
    this.#doubles[d + LAST_TIMESTAMP] = -1;
    this.#doubles[d + TXN_FIRST_OFFSET] = -1;
    const i = r * ROW_INTS;
    this.#ints[i + EPOCH] = epoch;
    this.#ints[i + SIZE] = 0;
    this.#ints[i + FIRST] = 0;
    this.#ints[i + COORDINATOR_EPOCH] = -1;
  }

  /** Row `to` holds what row `from` holds (not its marks). */
  copy(from: number, to: number): void {
    // Loops, not copyWithin: a builtin call costs more than copying 35 numbers.
    const ints = this.#ints;
    // All but the marks: the int places before the stamp's, then the epoch's to the coordinator epoch's.
    for (let k = 0; k < 2 * STAMP; k++) ints[to * ROW_INTS + k] = ints[from * ROW_INTS + k]!;
    for (let k = EPOCH; k <= COORDINATOR_EPOCH; k++) ints[to * ROW_INTS + k] = ints[from * ROW_INTS + k]!;
    const cold = this.#cold;
    for (let k = 0; k < COLD_DOUBLES; k++) cold[to * COLD_DOUBLES + k] = cold[from * COLD_DOUBLES + k]!;
  }

  producerId(r: number): number {
    return this.#doubles[r * ROW_DOUBLES + PRODUCER_ID]!;
  }

  epoch(r: number): number {
    return this.#ints[r * ROW_INTS + EPOCH]!;
  }

  /** A new epoch: the batches of the old one are forgotten (Kafka's maybeUpdateProducerEpoch). */
  setEpoch(r: number, epoch: number): void {
    const i = r * ROW_INTS;
    if (this.#ints[i + EPOCH] === epoch) return;
    this.#ints[i + EPOCH] = epoch;
    this.#ints[i + SIZE] = 0;
    this.#ints[i + FIRST] = 0;
  }

  lastTimestamp(r: number): number {
    return this.#doubles[r * ROW_DOUBLES + LAST_TIMESTAMP]!;
  }

  setLastTimestamp(r: number, timestamp: number): void {
    this.#doubles[r * ROW_DOUBLES + LAST_TIMESTAMP] = timestamp;
  }

  /** First offset of the open transaction; -1: none. */
  txnFirstOffset(r: number): number {
    return this.#doubles[r * ROW_DOUBLES + TXN_FIRST_OFFSET]!;
  }

  setTxnFirstOffset(r: number, offset: number): void {
    this.#doubles[r * ROW_DOUBLES + TXN_FIRST_OFFSET] = offset;
  }

  coordinatorEpoch(r: number): number {
    return this.#ints[r * ROW_INTS + COORDINATOR_EPOCH]!;
  }

  setCoordinatorEpoch(r: number, coordinatorEpoch: number): void {
    this.#ints[r * ROW_INTS + COORDINATOR_EPOCH] = coordinatorEpoch;
  }

  /** Batches held, at most BATCHES_RETAINED. */
  size(r: number): number {
    return this.#ints[r * ROW_INTS + SIZE]!;
  }

  /** The slot of row `r`'s i-th batch (0: the oldest). */
  #slot(r: number, i: number): number {
    const s = this.#ints[r * ROW_INTS + FIRST]! + i;
    return s < BATCHES_RETAINED ? s : s - BATCHES_RETAINED;
  }

  /** Which batch (0: the oldest) has these first and last sequences (Kafka's batchWithSequenceRange); -1: none. */
  find(r: number, firstSeq: number, lastSeq: number): number {
    const ints = this.#ints;
    const i = r * ROW_INTS;
    const n = ints[i + SIZE]!;
    const first = ints[i + FIRST]!;
    for (let k = 0; k < n; k++) {
      const s = first + k < BATCHES_RETAINED ? first + k : first + k - BATCHES_RETAINED;
      // The last sequence first: it is in the row's first line, which takesNext reads anyway, and an in-order batch's never matches.
      if (ints[i + LAST_SEQ + s] === lastSeq && ints[i + FIRST_SEQ + s] === firstSeq) return k;
    }
    return -1;
  }

  /** Sequence of the last batch of this epoch; -1 (Kafka's NO_SEQUENCE) when it has none (only markers). */
  lastSequence(r: number): number {
    const n = this.size(r);
    return n === 0 ? -1 : this.lastSeq(r, n - 1);
  }

  lastSeq(r: number, i: number): number {
    return this.#ints[r * ROW_INTS + LAST_SEQ + this.#slot(r, i)]!;
  }

  /** The batch's lastOffset - its first offset. */
  offsetDelta(r: number, i: number): number {
    return this.#ints[r * ROW_INTS + OFFSET_DELTA + this.#slot(r, i)]!;
  }

  lastOffset(r: number, i: number): number {
    return this.#cold[r * COLD_DOUBLES + this.#slot(r, i) * SLOT_DOUBLES]!;
  }

  timestamp(r: number, i: number): number {
    return this.#cold[r * COLD_DOUBLES + this.#slot(r, i) * SLOT_DOUBLES + 1]!;
  }

  /**
   * Whether row `r` takes a batch of `epoch` from firstSeq to lastSeq as
   * its next, the way most batches come: not stamped `stamp`, not expired
   * (live: an open transaction, or its last timestamp after `staleBefore`),
   * the same epoch, the batch following its last one and repeating none of
   * its batches. False sends the batch through the whole rules. One call
   * from the rules, small enough for V8 to inline the accessors it uses:
   * from the rules' own function, too large for that, each would be a call.
   */
  takesNext(r: number, stamp: number, staleBefore: number, epoch: number, firstSeq: number, lastSeq: number): boolean {
    if (this.#doubles[r * ROW_DOUBLES + STAMP] === stamp || !this.live(r, staleBefore)) return false;
    const ints = this.#ints;
    const i = r * ROW_INTS;
    const n = ints[i + SIZE]!;
    if (ints[i + EPOCH] !== epoch || n === 0) return false;
    return firstSeq === incrementSequence(this.lastSeq(r, n - 1), 1) && this.find(r, firstSeq, lastSeq) < 0;
  }

  /** Whether row `r`'s producer has not expired: an open transaction, or its last timestamp after `staleBefore` (now - the expiration time). */
  live(r: number, staleBefore: number): boolean {
    const d = r * ROW_DOUBLES;
    return this.#doubles[d + TXN_FIRST_OFFSET]! >= 0 || this.#doubles[d + LAST_TIMESTAMP]! > staleBefore;
  }

  /** Records a batch as the newest (the oldest goes once BATCHES_RETAINED are held); its timestamp becomes the row's last. */
  push(r: number, firstSeq: number, lastSeq: number, lastOffset: number, offsetDelta: number, timestamp: number): void {
    const ints = this.#ints;
    const i = r * ROW_INTS;
    const n = ints[i + SIZE]!;
    let s = ints[i + FIRST]!;
    if (n < BATCHES_RETAINED) {
      s += n;
      if (s >= BATCHES_RETAINED) s -= BATCHES_RETAINED;
      ints[i + SIZE] = n + 1;
    } else {
      ints[i + FIRST] = s + 1 < BATCHES_RETAINED ? s + 1 : 0;
    }
    ints[i + FIRST_SEQ + s] = firstSeq;
    ints[i + LAST_SEQ + s] = lastSeq;
    ints[i + OFFSET_DELTA + s] = offsetDelta;
    const c = r * COLD_DOUBLES + s * SLOT_DOUBLES;
    this.#cold[c] = lastOffset;
    this.#cold[c + 1] = timestamp;
    this.#doubles[r * ROW_DOUBLES + LAST_TIMESTAMP] = timestamp;
  }

  // Marks: where a row is, for its owner (not copied with it).

  /** The draft's stamp on a row (producer-append.ts). */
  stamp(r: number): number {
    return this.#doubles[r * ROW_DOUBLES + STAMP]!;
  }

  setStamp(r: number, stamp: number): void {
    this.#doubles[r * ROW_DOUBLES + STAMP] = stamp;
  }

  /** A stamp no row of this table had before (from 1; 0 marks none). */
  nextStamp(): number {
    return ++this.#stamps;
  }

  /** Marks state row `r` with the group's `stamp` and its pending batch `k`, no draft (producer-append.ts). */
  markPending(r: number, stamp: number, k: number): void {
    this.#doubles[r * ROW_DOUBLES + STAMP] = stamp;
    this.#ints[r * ROW_INTS + PENDING_AT] = k;
    this.#ints[r * ROW_INTS + DRAFT] = -1;
  }

  /** A state row's pending batch in its group (producer-append.ts); -1: none. */
  pendingAt(r: number): number {
    return this.#ints[r * ROW_INTS + PENDING_AT]!;
  }

  setPendingAt(r: number, k: number): void {
    this.#ints[r * ROW_INTS + PENDING_AT] = k;
  }

  /** A state row's draft row in its group (producer-append.ts); -1: none. */
  draft(r: number): number {
    return this.#ints[r * ROW_INTS + DRAFT]!;
  }

  setDraft(r: number, draft: number): void {
    this.#ints[r * ROW_INTS + DRAFT] = draft;
  }
}

/** Kafka's DefaultRecordBatch.incrementSequence: sequences wrap from INT32_MAX to 0. */
export function incrementSequence(sequence: number, increment: number): number {
  return sequence > 0x7fffffff - increment ? increment - (0x7fffffff - sequence) - 1 : sequence + increment;
}

/** Kafka's DefaultRecordBatch.decrementSequence. */
export function decrementSequence(sequence: number, decrement: number): number {
  return sequence < decrement ? 0x7fffffff - (decrement - sequence) + 1 : sequence - decrement;
}

// A log's producer state (Kafka's ProducerStateManager): per producerId its
// epoch, its last 5 batches (sequences and offsets, to answer a retry with
// the offsets the original got), its coordinator epoch and the first offset
// of its open transaction; and the open transactions in offset order, whose
// first gives the first unstable offset (what bounds the last stable
// offset). Appends are checked against it in producer-append.ts; a group's
// changes land here only once the group is written (apply). Snapshots
// (producer-snapshot.ts) save and restore it.
import type { AbortedTxn } from '../index/transaction-index.js';
import { BatchWindow } from './batch-window.js';
import type { SnapshotEntry } from './producer-snapshot.js';

/**
 * One producer's state (Kafka's ProducerStateEntry): in the state, or a
 * group's draft of it (producer-append.ts), which is copied into the
 * state's entry once the group is written. Entries are changed in place,
 * not replaced: an append allocates none.
 */
export class ProducerEntry {
  producerId: number;
  epoch: number;
  /** All of `epoch`. */
  readonly batches = new BatchWindow();
  coordinatorEpoch = -1;
  /** -1: no open transaction. */
  currentTxnFirstOffset = -1;
  lastTimestamp = -1;
  /** In the state: its neighbours in recency order (ProducerStates). */
  older: ProducerEntry | undefined = undefined;
  newer: ProducerEntry | undefined = undefined;
  /**
   * The draft's bookkeeping (producer-append.ts), held here so that finding
   * a producer's draft costs no lookup of its own: in the state, its draft
   * in the group numbered `stamp`; in a draft, the append that made or saved
   * it last.
   */
  draft: ProducerEntry | undefined = undefined;
  stamp = 0;
  /** In the state, while `stamp` is its group's and `draft` undefined: its pending batch in the group (ProducerChanges); -1: none. */
  pendingAt = -1;

  constructor(producerId: number, epoch: number) {
    this.producerId = producerId;
    this.epoch = epoch;
  }

  /** Becomes the entry of a producer the log does not know, in `epoch`. */
  reset(producerId: number, epoch: number): void {
    this.producerId = producerId;
    this.epoch = epoch;
    this.batches.clear();
    this.coordinatorEpoch = -1;
    this.currentTxnFirstOffset = -1;
    this.lastTimestamp = -1;
  }

  copyFrom(other: ProducerEntry): void {
    this.producerId = other.producerId;
    this.epoch = other.epoch;
    this.batches.copyFrom(other.batches);
    this.coordinatorEpoch = other.coordinatorEpoch;
    this.currentTxnFirstOffset = other.currentTxnFirstOffset;
    this.lastTimestamp = other.lastTimestamp;
  }

  /** Sequence of the last batch of this epoch; -1 (Kafka's NO_SEQUENCE) when it has none (only markers). */
  get lastSequence(): number {
    const n = this.batches.size;
    return n === 0 ? -1 : this.batches.lastSeq(n - 1);
  }
}

/** What Log.producerState() tells of one producer. */
export interface ProducerInfo {
  producerId: number;
  producerEpoch: number;
  /** -1 when the producer wrote only markers in this epoch. */
  lastSequence: number;
  /** Offset of its last batch (-1 when none in this epoch). */
  lastOffset: number;
  lastTimestamp: number;
  /** First offset of its open transaction; undefined when none. */
  currentTxnFirstOffset: number | undefined;
}

/** A transaction opened (no lastOffset) or ended by a marker at lastOffset, in offset order. */
export interface TxnEvent {
  producerId: number;
  firstOffset: number;
  lastOffset?: number;
  aborted?: boolean;
}

/** A group's changes (a ProducerDraft, producer-append.ts). */
export interface ProducerChanges {
  /**
   * One per producer the group changed, in the order first changed: a
   * draft of its entry, or, when its one change is a batch of its epoch, the
   * state's entry itself with that batch pending (pendingAt >= 0).
   */
  readonly changed: readonly ProducerEntry[];
  /** Transactions opened and ended, in offset order. */
  readonly events: readonly TxnEvent[];
  /** Pushes the pending batch of the state's entry `e` onto its window, as its newest. */
  pushPending(e: ProducerEntry): void;
}

export interface ProducerLimits {
  expirationMs: number;
  maxProducerIds: number;
}

export class ProducerStates {
  readonly #limits: ProducerLimits;
  readonly #entries = new Map<number, ProducerEntry>();
  /**
   * The entries in recency order, linked through their older/newer fields:
   * the least recently appending ones are evicted first when there are too
   * many. A list, not the map's order: moving an entry to the end costs no
   * map deletion and insertion (whose deleted slots make the map rehash).
   */
  #oldest: ProducerEntry | undefined;
  #newest: ProducerEntry | undefined;
  /** producerId -> first offset of its open transaction; in first-offset order (transactions open at the log end). */
  readonly #ongoing = new Map<number, number>();
  /**
   * Transactions ended by a marker the high watermark may not have passed yet (Kafka's unreplicatedTxns): still
   * unstable, or a read_committed reader could see a transaction whose marker a crash or a new leader loses.
   * In marker order, so the ones the high watermark passed are at the front.
   */
  #ended: Array<{ firstOffset: number; lastOffset: number }> = [];

  constructor(limits: ProducerLimits) {
    this.#limits = limits;
  }

  /** The producer's entry, expired or not: see expired(). */
  entry(producerId: number): ProducerEntry | undefined {
    return this.#entries.get(producerId);
  }

  /** Whether `e` expired at `now`: then its producer is as unknown, as after Kafka's expiry. */
  expired(e: ProducerEntry, now: number): boolean {
    return e.currentTxnFirstOffset < 0 && now - e.lastTimestamp >= this.#limits.expirationMs;
  }

  /** Adds `e` as the most recently appending. */
  #link(e: ProducerEntry): void {
    e.older = this.#newest;
    e.newer = undefined;
    if (this.#newest === undefined) this.#oldest = e;
    else this.#newest.newer = e;
    this.#newest = e;
  }

  #unlink(e: ProducerEntry): void {
    if (e.older === undefined) this.#oldest = e.newer;
    else e.older.newer = e.newer;
    if (e.newer === undefined) this.#newest = e.older;
    else e.newer.older = e.older;
    e.older = e.newer = undefined;
  }

  /** A new entry, the most recently appending. */
  #add(producerId: number, epoch: number): ProducerEntry {
    const e = new ProducerEntry(producerId, epoch);
    this.#entries.set(producerId, e);
    this.#link(e);
    return e;
  }

  #remove(e: ProducerEntry): void {
    this.#entries.delete(e.producerId);
    this.#unlink(e);
  }

  /**
   * A written group's changes: the producers' drafts (copied into their
   * entries, which become the most recently appending) and, in offset
   * order, the transactions it opened and ended. Returns the transactions
   * it aborted with the last stable offset once each ended (Kafka's: the
   * first offset of the earliest other open transaction, else the marker's
   * offset + 1), for the transaction index.
   */
  apply(changes: ProducerChanges): readonly AbortedTxn[] {
    const { changed, events } = changes;
    for (const draft of changed) {
      if (draft.pendingAt >= 0) {
        this.#applyPending(draft, changes);
        continue;
      }
      let e = this.#entries.get(draft.producerId);
      if (e === undefined) e = this.#add(draft.producerId, draft.epoch);
      else if (e !== this.#newest) {
        this.#unlink(e);
        this.#link(e);
      }
      e.copyFrom(draft);
      // The draft's object is reused for other producers: not kept alive from here.
      e.draft = undefined;
    }
    if (this.#entries.size > this.#limits.maxProducerIds) this.#evict();
    if (events.length === 0) return NONE_ABORTED;
    const aborted: AbortedTxn[] = [];
    for (const t of events) {
      if (t.lastOffset === undefined) {
        this.#ongoing.set(t.producerId, t.firstOffset);
        continue;
      }
      this.#ongoing.delete(t.producerId);
      this.#ended.push({ firstOffset: t.firstOffset, lastOffset: t.lastOffset });
      if (!t.aborted) continue;
      const next = this.#ongoing.values().next();
      const lastStableOffset = next.done === true ? t.lastOffset + 1 : next.value;
      aborted.push({ producerId: t.producerId, firstOffset: t.firstOffset, lastOffset: t.lastOffset, lastStableOffset });
    }
    return aborted;
  }

  /** The state's entry `e` gets its pending batch (no copies of it, as a draft would take) and becomes the most recently appending. */
  #applyPending(e: ProducerEntry, changes: ProducerChanges): void {
    const now = this.#entries.get(e.producerId);
    if (now !== e) {
      // producerState() dropped it (expired) while its group was written: it is the producer's entry again.
      if (now !== undefined) this.#remove(now);
      this.#entries.set(e.producerId, e);
      this.#link(e);
    } else if (e !== this.#newest) {
      this.#unlink(e);
      this.#link(e);
    }
    changes.pushPending(e);
    e.pendingAt = -1;
  }

  /** Drops the least recently appending producers while there are too many (never one with an open transaction). */
  #evict(): void {
    for (let e = this.#oldest; e !== undefined && this.#entries.size > this.#limits.maxProducerIds; ) {
      const newer = e.newer;
      if (e.currentTxnFirstOffset < 0) this.#remove(e);
      e = newer;
    }
  }

  removeExpired(now: number): void {
    for (let e = this.#oldest; e !== undefined; ) {
      const newer = e.newer;
      if (this.expired(e, now)) this.#remove(e);
      e = newer;
    }
  }

  /** The entries, least recently appending first. */
  *#inOrder(): Generator<ProducerEntry> {
    for (let e = this.#oldest; e !== undefined; e = e.newer) yield e;
  }

  /**
   * Kafka's first unstable offset once the high watermark is at
   * `highWatermark`: the first offset of the earliest transaction still
   * open, or ended by a marker at or above the high watermark; undefined
   * when there is none. Forgets the ended transactions it passed (the high
   * watermark moves only forward, but through a truncation, which rebuilds
   * this state).
   */
  firstUnstableOffset(highWatermark: number): number | undefined {
    let passed = 0;
    while (passed < this.#ended.length && this.#ended[passed]!.lastOffset < highWatermark) passed++;
    if (passed > 0) this.#ended = this.#ended.slice(passed);
    const next = this.#ongoing.values().next();
    let first = next.done === true ? undefined : next.value;
    for (const t of this.#ended) if (first === undefined || t.firstOffset < first) first = t.firstOffset;
    return first;
  }

  /** The live producers, least recently appended first. */
  list(now: number): ProducerInfo[] {
    this.removeExpired(now);
    return [...this.#inOrder()].map((e) => {
      const n = e.batches.size;
      return {
        producerId: e.producerId,
        producerEpoch: e.epoch,
        lastSequence: e.lastSequence,
        lastOffset: n === 0 ? -1 : e.batches.lastOffset(n - 1),
        lastTimestamp: e.lastTimestamp,
        currentTxnFirstOffset: e.currentTxnFirstOffset < 0 ? undefined : e.currentTxnFirstOffset,
      };
    });
  }

  /** Forgets everything (before a reload from a snapshot). */
  clear(): void {
    this.#entries.clear();
    this.#oldest = this.#newest = undefined;
    this.#ongoing.clear();
    this.#ended = [];
  }

  /** The state as snapshot entries: one per retained batch (see producer-snapshot.ts), one for a producer with none. */
  toSnapshot(now: number): SnapshotEntry[] {
    this.removeExpired(now);
    const out: SnapshotEntry[] = [];
    const entry = (e: ProducerEntry, lastSequence: number, lastOffset: number, offsetDelta: number, timestamp: number): SnapshotEntry => ({
      producerId: e.producerId,
      epoch: e.epoch,
      lastSequence,
      lastOffset,
      offsetDelta,
      timestamp,
      coordinatorEpoch: e.coordinatorEpoch,
      currentTxnFirstOffset: e.currentTxnFirstOffset,
    });
    for (const e of this.#inOrder()) {
      const b = e.batches;
      if (b.size === 0) out.push(entry(e, -1, -1, 0, e.lastTimestamp));
      for (let i = 0; i < b.size; i++) out.push(entry(e, b.lastSeq(i), b.lastOffset(i), b.offsetDelta(i), b.timestamp(i)));
    }
    return out;
  }

  /** Loads snapshot entries (after clear()); entries of one producer come oldest first, as toSnapshot writes them. */
  load(entries: readonly SnapshotEntry[], now: number): void {
    const txns: Array<[number, number]> = [];
    for (const s of entries) {
      let e = this.#entries.get(s.producerId);
      if (e === undefined) e = this.#add(s.producerId, s.epoch);
      else if (e.epoch !== s.epoch) e.reset(s.producerId, s.epoch);
      // The window keeps the last BATCHES_RETAINED.
      if (s.lastOffset >= 0) e.batches.push(decrementSequence(s.lastSequence, s.offsetDelta), s.lastSequence, s.lastOffset, s.offsetDelta, s.timestamp);
      e.coordinatorEpoch = s.coordinatorEpoch;
      e.currentTxnFirstOffset = s.currentTxnFirstOffset;
      e.lastTimestamp = s.timestamp;
    }
    for (const e of this.#inOrder()) if (e.currentTxnFirstOffset >= 0) txns.push([e.producerId, e.currentTxnFirstOffset]);
    txns.sort((a, b) => a[1] - b[1]);
    for (const [id, first] of txns) this.#ongoing.set(id, first);
    this.removeExpired(now);
  }
}

/** What apply() returns for a group that ended no transaction (most): nothing to allocate. */
const NONE_ABORTED: readonly AbortedTxn[] = [];

/** Kafka's DefaultRecordBatch.incrementSequence: sequences wrap from INT32_MAX to 0. */
export function incrementSequence(sequence: number, increment: number): number {
  return sequence > 0x7fffffff - increment ? increment - (0x7fffffff - sequence) - 1 : sequence + increment;
}

/** Kafka's DefaultRecordBatch.decrementSequence. */
export function decrementSequence(sequence: number, decrement: number): number {
  return sequence < decrement ? 0x7fffffff - (decrement - sequence) + 1 : sequence - decrement;
}

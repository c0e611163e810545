// A log's producer state (Kafka's ProducerStateManager): per producerId its
// epoch, its last 5 batches (sequences and offsets, to answer a retry with
// the offsets the original got), its coordinator epoch and the first offset
// of its open transaction; and the open transactions in offset order, whose
// first gives the first unstable offset (what bounds the last stable
// offset). Appends are checked against it in producer-append.ts; a group's
// changes land here only once the group is written (apply). Snapshots
// (producer-snapshot.ts) save and restore it.
import type { AbortedTxn } from '../index/transaction-index.js';
import type { SnapshotEntry } from './producer-snapshot.js';

/** Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN. */
export const BATCHES_RETAINED = 5;

export interface BatchMeta {
  firstSeq: number;
  lastSeq: number;
  lastOffset: number;
  /** lastOffset - the batch's first offset. */
  offsetDelta: number;
  timestamp: number;
}

export interface ProducerEntry {
  producerId: number;
  epoch: number;
  /** Oldest first, at most BATCHES_RETAINED, all of `epoch`. */
  batches: BatchMeta[];
  coordinatorEpoch: number;
  /** -1: no open transaction. */
  currentTxnFirstOffset: number;
  lastTimestamp: number;
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

export interface ProducerLimits {
  expirationMs: number;
  maxProducerIds: number;
}

export class ProducerStates {
  readonly #limits: ProducerLimits;
  /** Least recently appended first: the first ones are evicted when there are too many. */
  readonly #entries = new Map<number, ProducerEntry>();
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

  /** The producer's entry unless it expired at `now` (then it is as unknown, as after Kafka's expiry). */
  get(producerId: number, now: number): ProducerEntry | undefined {
    const e = this.#entries.get(producerId);
    return e === undefined || this.#expired(e, now) ? undefined : e;
  }

  #expired(e: ProducerEntry, now: number): boolean {
    return e.currentTxnFirstOffset < 0 && now - e.lastTimestamp >= this.#limits.expirationMs;
  }

  /**
   * A written group's changes: the producers' new entries and, in offset
   * order, the transactions it opened and ended. Returns the transactions
   * it aborted with the last stable offset once each ended (Kafka's: the
   * first offset of the earliest other open transaction, else the marker's
   * offset + 1), for the transaction index.
   */
  apply(changed: ReadonlyMap<number, ProducerEntry>, events: readonly TxnEvent[]): AbortedTxn[] {
    for (const [id, e] of changed) {
      this.#entries.delete(id);
      this.#entries.set(id, e);
    }
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
    if (this.#entries.size > this.#limits.maxProducerIds) this.#evict();
    return aborted;
  }

  /** Drops the least recently appending producers while there are too many (never one with an open transaction): the front of the map. */
  #evict(): void {
    for (const [id, e] of this.#entries) {
      if (this.#entries.size <= this.#limits.maxProducerIds) break;
      if (e.currentTxnFirstOffset < 0) this.#entries.delete(id);
    }
  }

  removeExpired(now: number): void {
    for (const [id, e] of this.#entries) if (this.#expired(e, now)) this.#entries.delete(id);
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
    return [...this.#entries.values()].map((e) => {
      const last = e.batches.at(-1);
      return {
        producerId: e.producerId,
        producerEpoch: e.epoch,
        lastSequence: last?.lastSeq ?? -1,
        lastOffset: last?.lastOffset ?? -1,
        lastTimestamp: e.lastTimestamp,
        currentTxnFirstOffset: e.currentTxnFirstOffset < 0 ? undefined : e.currentTxnFirstOffset,
      };
    });
  }

  /** Forgets everything (before a reload from a snapshot). */
  clear(): void {
    this.#entries.clear();
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
    for (const e of this.#entries.values()) {
      if (e.batches.length === 0) out.push(entry(e, -1, -1, 0, e.lastTimestamp));
      for (const b of e.batches) out.push(entry(e, b.lastSeq, b.lastOffset, b.offsetDelta, b.timestamp));
    }
    return out;
  }

  /** Loads snapshot entries (after clear()); entries of one producer come oldest first, as toSnapshot writes them. */
  load(entries: readonly SnapshotEntry[], now: number): void {
    const txns: Array<[number, number]> = [];
    for (const s of entries) {
      let e = this.#entries.get(s.producerId);
      if (e === undefined || e.epoch !== s.epoch) {
        e = { producerId: s.producerId, epoch: s.epoch, batches: [], coordinatorEpoch: s.coordinatorEpoch, currentTxnFirstOffset: -1, lastTimestamp: s.timestamp };
        this.#entries.set(s.producerId, e);
      }
      if (s.lastOffset >= 0) {
        e.batches.push({ firstSeq: decrementSequence(s.lastSequence, s.offsetDelta), lastSeq: s.lastSequence, lastOffset: s.lastOffset, offsetDelta: s.offsetDelta, timestamp: s.timestamp });
        if (e.batches.length > BATCHES_RETAINED) e.batches.shift();
      }
      e.coordinatorEpoch = s.coordinatorEpoch;
      e.currentTxnFirstOffset = s.currentTxnFirstOffset;
      e.lastTimestamp = s.timestamp;
    }
    for (const e of this.#entries.values()) if (e.currentTxnFirstOffset >= 0) txns.push([e.producerId, e.currentTxnFirstOffset]);
    txns.sort((a, b) => a[1] - b[1]);
    for (const [id, first] of txns) this.#ongoing.set(id, first);
    this.removeExpired(now);
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

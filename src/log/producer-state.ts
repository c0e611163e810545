// A log's producer state (Kafka's ProducerStateManager): per producerId a
// row of the producer table (its epoch, its last 5 batches, to answer a
// retry with the offsets the original got, its coordinator epoch and the
// first offset of its open transaction); the rows in recency order; and the
// open transactions in offset order, whose first gives the first unstable
// offset (what bounds the last stable offset). Appends are checked against
// it in producer-append.ts; a group's changes land here only once the group
// is written (apply). Snapshots (producer-snapshot.ts) save and restore it.
//
// Expired producers are left out of every answer at once and their rows
// freed by a sweep when a group is applied (at most once a minute), never
// while a group is drafted: a draft holds state rows by number.
import type { AbortedTxn } from '../index/transaction-index.js';
import type { SnapshotEntry } from './producer-snapshot.js';
import { ProducerRows } from './producer-rows.js';
import { decrementSequence, ProducerTable } from './producer-table.js';

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
   * Rows of the state's table, one per producer the group changed, in the
   * order first changed: a draft row of the producer, or, when its one change
   * is a batch of its epoch, the state's row itself with that batch pending
   * (pendingAt >= 0).
   */
  readonly changed: readonly number[];
  /** Transactions opened and ended, in offset order. */
  readonly events: readonly TxnEvent[];
  /** When the group was checked. */
  readonly now: number;
  /** Pushes the pending batch of the state's row `r` onto its batches, as its newest. */
  pushPending(r: number): void;
}

export interface ProducerLimits {
  expirationMs: number;
  maxProducerIds: number;
}

/** The longest time between sweeps of expired producers' rows. */
const SWEEP_MS = 60_000;

export class ProducerStates {
  readonly #limits: ProducerLimits;
  /** The state's rows, and the drafts' (producer-append.ts): copying one into the other copies numbers. */
  readonly table = new ProducerTable();
  readonly #rows = new ProducerRows(this.table);
  /**
   * The state's rows in recency order, least recently appending (first
   * evicted) first, from #orderStart to #orderEnd: a row that appends again
   * is added at the end, and its earlier place stays behind, stale (a place
   * counts only where #orderAt says its row is). Cheaper than a linked
   * list, whose relinking touches two other producers' rows per append; the
   * stale places are squeezed out when the array fills. #orderAt is a dense
   * array apart from the rows, so squeezing reads no row.
   */
  #order = new Int32Array(64);
  #orderStart = 0;
  #orderEnd = 0;
  /** Per row of the table: its place in #order; -1: none (not a state row). */
  #orderAt = new Int32Array(0);
  #nextSweep = 0;
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

  /** The producer's row, expired or not (see expired()); -1: none. */
  row(producerId: number): number {
    return this.#rows.get(producerId);
  }

  /** Whether row `r` expired at `now`: then its producer is as unknown, as after Kafka's expiry. */
  expired(r: number, now: number): boolean {
    return !this.table.live(r, now - this.#limits.expirationMs);
  }

  get expirationMs(): number {
    return this.#limits.expirationMs;
  }

  /** Makes row `r` the most recently appending. */
  #touch(r: number): void {
    if (this.#orderEnd === this.#order.length) this.#squeezeOrder();
    this.#orderAt[r] = this.#orderEnd;
    this.#order[this.#orderEnd++] = r;
  }

  /** Whether place `at` of the order is where its row is. */
  #current(at: number): boolean {
    return this.#orderAt[this.#order[at]!] === at;
  }

  /** Drops the stale places (moving the rest to the front); grows the array when that leaves it over a quarter full, so squeezes stay rarer than appends. */
  #squeezeOrder(): void {
    let kept = 0;
    for (let at = this.#orderStart; at < this.#orderEnd; at++) {
      if (!this.#current(at)) continue;
      const r = this.#order[at]!;
      this.#order[kept] = r;
      this.#orderAt[r] = kept++;
    }
    this.#orderStart = 0;
    this.#orderEnd = kept;
    if (kept * 4 > this.#order.length) {
      const grown = new Int32Array(this.#order.length * 2);
      grown.set(this.#order.subarray(0, kept));
      this.#order = grown;
    }
  }

  /** A new row for the producer, the most recently appending. */
  #add(producerId: number, epoch: number): number {
    const r = this.table.allocate(producerId, epoch);
    if (r >= this.#orderAt.length) {
      const grown = new Int32Array(this.table.capacity).fill(-1);
      grown.set(this.#orderAt);
      this.#orderAt = grown;
    }
    this.#rows.add(producerId, r);
    this.#touch(r);
    return r;
  }

  #remove(r: number): void {
    this.#rows.delete(this.table.producerId(r));
    this.#orderAt[r] = -1;
    this.table.free(r);
  }

  /** The state's rows, least recently appending first. */
  *#inOrder(): Generator<number> {
    for (let at = this.#orderStart; at < this.#orderEnd; at++) if (this.#current(at)) yield this.#order[at]!;
  }

  /**
   * A written group's changes: the producers' draft rows (copied into their
   * state rows, which become the most recently appending) and, in offset
   * order, the transactions it opened and ended. Returns the transactions
   * it aborted with the last stable offset once each ended (Kafka's: the
   * first offset of the earliest other open transaction, else the marker's
   * offset + 1), for the transaction index.
   */
  apply(changes: ProducerChanges): readonly AbortedTxn[] {
    const { changed, events } = changes;
    const table = this.table;
    for (let k = 0; k < changed.length; k++) {
      const r = changed[k]!;
      if (table.pendingAt(r) >= 0) {
        // The state's row: no copies, as a draft would take.
        changes.pushPending(r);
        table.setPendingAt(r, -1);
        this.#touch(r);
        continue;
      }
      const id = table.producerId(r);
      let e = this.#rows.get(id);
      if (e < 0) e = this.#add(id, table.epoch(r));
      else this.#touch(e);
      table.copy(r, e);
    }
    if (this.#rows.size > this.#limits.maxProducerIds) this.#evict();
    if (changes.now >= this.#nextSweep) {
      this.#removeExpired(changes.now);
      this.#nextSweep = changes.now + Math.min(this.#limits.expirationMs, SWEEP_MS);
    }
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

  /** Drops the least recently appending producers while there are too many (never one with an open transaction). */
  #evict(): void {
    for (let at = this.#orderStart; at < this.#orderEnd && this.#rows.size > this.#limits.maxProducerIds; at++) {
      if (!this.#current(at)) continue;
      const r = this.#order[at]!;
      if (this.table.txnFirstOffset(r) < 0) this.#remove(r);
    }
    while (this.#orderStart < this.#orderEnd && !this.#current(this.#orderStart)) this.#orderStart++;
  }

  /** Frees the rows of the producers expired at `now` (only between groups: see the top of this file). */
  #removeExpired(now: number): void {
    for (const r of this.#inOrder()) if (this.expired(r, now)) this.#remove(r);
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

  /** The producers not expired at `now`, least recently appended first. */
  list(now: number): ProducerInfo[] {
    const t = this.table;
    const out: ProducerInfo[] = [];
    for (const r of this.#inOrder()) {
      if (this.expired(r, now)) continue;
      const n = t.size(r);
      const txn = t.txnFirstOffset(r);
      out.push({
        producerId: t.producerId(r),
        producerEpoch: t.epoch(r),
        lastSequence: t.lastSequence(r),
        lastOffset: n === 0 ? -1 : t.lastOffset(r, n - 1),
        lastTimestamp: t.lastTimestamp(r),
        currentTxnFirstOffset: txn < 0 ? undefined : txn,
      });
    }
    return out;
  }

  /** Forgets everything (before a reload from a snapshot); rows a draft holds stay its own. */
  clear(): void {
    for (const r of [...this.#inOrder()]) this.#remove(r);
    this.#orderStart = this.#orderEnd = 0;
    this.#ongoing.clear();
    this.#ended = [];
  }

  /** The state at `now` as snapshot entries: one per retained batch (see producer-snapshot.ts), one for a producer with none. */
  toSnapshot(now: number): SnapshotEntry[] {
    const t = this.table;
    const out: SnapshotEntry[] = [];
    const entry = (r: number, lastSequence: number, lastOffset: number, offsetDelta: number, timestamp: number): SnapshotEntry => ({
      producerId: t.producerId(r),
      epoch: t.epoch(r),
      lastSequence,
      lastOffset,
      offsetDelta,
      timestamp,
      coordinatorEpoch: t.coordinatorEpoch(r),
      currentTxnFirstOffset: t.txnFirstOffset(r),
    });
    for (const r of this.#inOrder()) {
      if (this.expired(r, now)) continue;
      const n = t.size(r);
      if (n === 0) out.push(entry(r, -1, -1, 0, t.lastTimestamp(r)));
      for (let i = 0; i < n; i++) out.push(entry(r, t.lastSeq(r, i), t.lastOffset(r, i), t.offsetDelta(r, i), t.timestamp(r, i)));
    }
    return out;
  }

  /** Loads snapshot entries (after clear()); entries of one producer come oldest first, as toSnapshot writes them. */
  load(entries: readonly SnapshotEntry[], now: number): void {
    const t = this.table;
    const txns: Array<[number, number]> = [];
    for (const s of entries) {
      let r = this.#rows.get(s.producerId);
      if (r < 0) r = this.#add(s.producerId, s.epoch);
      else if (t.epoch(r) !== s.epoch) t.reset(r, s.producerId, s.epoch);
      // The row keeps the last BATCHES_RETAINED.
      if (s.lastOffset >= 0) t.push(r, decrementSequence(s.lastSequence, s.offsetDelta), s.lastSequence, s.lastOffset, s.offsetDelta, s.timestamp);
      else t.setLastTimestamp(r, s.timestamp);
      t.setCoordinatorEpoch(r, s.coordinatorEpoch);
      t.setTxnFirstOffset(r, s.currentTxnFirstOffset);
    }
    for (const r of this.#inOrder()) if (t.txnFirstOffset(r) >= 0) txns.push([t.producerId(r), t.txnFirstOffset(r)]);
    txns.sort((a, b) => a[1] - b[1]);
    for (const [id, first] of txns) this.#ongoing.set(id, first);
    this.#removeExpired(now);
  }
}

/** What apply() returns for a group that ended no transaction (most): nothing to allocate. */
const NONE_ABORTED: readonly AbortedTxn[] = [];

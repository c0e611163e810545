// The producer rules an append must pass (Kafka's ProducerAppendInfo and
// ProducerStateEntry rules), checked as a group is numbered, against the
// producer state as the appends before it in the queue leave it: the state
// of the written groups plus this group's earlier appends (a draft). The
// draft reaches the state (ProducerStates.apply) only once its group is
// written, so a failed write leaves the state as it was. A producer's first
// change in a group is most often one batch of its epoch: that batch is
// kept pending, checked against the state's row and pushed onto it when
// applied; a draft row of the producer (a copy of the state's row, copied
// back once written) is made only when the group changes the producer
// again.
//
// Per batch with a producerId >= 0, for a producer's append (origin
// 'client'): a batch of the same epoch and first and last sequence as one of
// the producer's last 5 is a duplicate; an older epoch is EPRODUCERFENCED; a
// new epoch must start at sequence 0 and a known epoch must go on from its
// last sequence (INT32_MAX wraps to 0), else EOUTOFORDERSEQUENCE; a producer
// the log does not know (new, expired, or its batches gone) may start
// anywhere. A follower's append ('replication') is not checked, only
// recorded, as Kafka's AppendOrigin.REPLICATION. A transactional batch opens
// its producer's transaction; a control batch ends it (COMMIT or ABORT),
// and a marker of a producer with no open transaction changes nothing but
// the epoch. All or nothing per append: an append whose producer batches
// are all duplicates is answered with the original offsets and not
// written; one that mixes duplicates with new batches is refused.
import { SeglogError } from '../errors.js';
import { parseControlBatch } from '../segment/control-record.js';
import type { CheckedBatch } from './append-queue.js';
import type { ProducerChanges, ProducerStates, TxnEvent } from './producer-state.js';
import { incrementSequence, type ProducerTable } from './producer-table.js';

/** The offsets an original batch (or run of batches) got. */
export interface DuplicateOf {
  baseOffset: number;
  lastOffset: number;
}

export class ProducerDraft implements ProducerChanges {
  readonly #states: ProducerStates;
  /** The state's table, which holds the draft rows too. */
  readonly #table: ProducerTable;
  #now = 0;
  /** This group's stamp: a state row stamped with it has its draft row (or a pending batch) in this group. */
  #group = 0;
  /**
   * The rows of the producers the group's admitted appends changed, one per
   * producer, in the order first changed: the group's draft row of each, or
   * the state's row of one whose one change is a pending batch (the state's
   * rows are untouched but for the draft's marks: stamp, draft, pendingAt).
   */
  readonly changed: number[] = [];
  /** The pending batches, k-th at k of each array (kept from group to group): its numbers, and where its row is in `changed`. */
  readonly #pendingFirstSeq: number[] = [];
  readonly #pendingLastSeq: number[] = [];
  readonly #pendingLastOffset: number[] = [];
  readonly #pendingOffsetDelta: number[] = [];
  readonly #pendingTimestamp: number[] = [];
  readonly #pendingChangedAt: number[] = [];
  #pendingCount = 0;
  /** The rows taken for the group (drafts, saved copies), given back to the table when the next group starts. */
  readonly #taken: number[] = [];
  /** Draft rows of producers the state has no row for. */
  readonly #fresh = new Map<number, number>();
  /** Transactions opened and ended by the group's admitted appends, in offset order. */
  readonly events: TxnEvent[] = [];
  /**
   * While an append of several batches is checked: its stamp (0 otherwise),
   * and the draft rows made before it that it changed, each with a copy as
   * it was (to put back when the append is refused). An append of one batch
   * needs none: it is refused, or found a duplicate, before it changes
   * anything.
   */
  #append = 0;
  readonly #saved: number[] = [];
  readonly #savedAs: number[] = [];

  constructor(states: ProducerStates, now: number) {
    this.#states = states;
    this.#table = states.table;
    this.reset(now);
  }

  get now(): number {
    return this.#now;
  }

  /** Empties the draft for the next group, checked at `now` (the log drafts one group at a time: one draft serves them all). */
  reset(now: number): this {
    this.#now = now;
    this.#group = this.#table.nextStamp();
    this.release();
    // Popped, not truncated: emptying an array by its length drops its storage, and the next group's push allocates it again.
    while (this.changed.length > 0) this.changed.pop();
    this.#pendingCount = 0;
    if (this.#fresh.size > 0) this.#fresh.clear();
    if (this.events.length > 0) this.events.length = 0;
    return this;
  }

  /** Gives the rows the group took back to the table (the group was applied or dropped). */
  release(): void {
    while (this.#taken.length > 0) this.#table.free(this.#taken.pop()!);
  }

  /**
   * Checks the batches of one append (in `data`, numbered from
   * `firstOffset`) and records what they change. Returns the original
   * offsets when all its producer batches are duplicates; throws
   * EPRODUCERFENCED or EOUTOFORDERSEQUENCE (nothing recorded).
   */
  admit(checks: readonly CheckedBatch[], data: Buffer, firstOffset: number, replication: boolean): DuplicateOf | undefined {
    if (checks.length === 1) {
      if (!replication && this.#pendingInOrder(checks[0]!.header, firstOffset)) return undefined;
      return this.#admit(checks, data, firstOffset, replication);
    }
    this.#append = this.#table.nextStamp();
    const changedBefore = this.changed.length;
    const eventsBefore = this.events.length;
    try {
      // All duplicates: nothing was changed (a duplicate changes nothing, and one new batch makes the mix refused).
      return this.#admit(checks, data, firstOffset, replication);
    } catch (err) {
      this.#undo(changedBefore, eventsBefore);
      throw err;
    } finally {
      this.#append = 0;
      // The copies go back to the table with the group's drafts.
      this.#saved.length = 0;
      this.#savedAs.length = 0;
    }
  }

  /** The append was refused: its new drafts go (an append of several batches adds no pending batch), the ones it changed are as they were. */
  #undo(changedBefore: number, eventsBefore: number): void {
    for (let i = changedBefore; i < this.changed.length; i++) {
      const id = this.#table.producerId(this.changed[i]!);
      const e = this.#states.row(id);
      if (e < 0) this.#fresh.delete(id);
      else this.#table.setStamp(e, 0);
    }
    this.changed.length = changedBefore;
    for (let i = 0; i < this.#saved.length; i++) this.#table.copy(this.#saved[i]!, this.#savedAs[i]!);
    this.events.length = eventsBefore;
  }

  /** A row for the group, holding a copy of row `from` (-1: `producerId`'s as a new producer in `epoch`). */
  #take(from: number, producerId: number, epoch: number): number {
    const r = this.#table.allocate(producerId, epoch);
    if (from >= 0) this.#table.copy(from, r);
    this.#taken.push(r);
    return r;
  }

  /**
   * The group's draft row of `producerId` (-1: none yet; made now from its
   * pending batch if it has one); `e` is the state's row (-1: none).
   */
  #draftOf(producerId: number, e: number): number {
    const t = this.#table;
    if (e >= 0) {
      if (t.stamp(e) !== this.#group) return -1;
      const d = t.draft(e);
      return d >= 0 ? d : this.#fromPending(e);
    }
    return this.#fresh.size === 0 ? -1 : (this.#fresh.get(producerId) ?? -1);
  }

  /**
   * Most appends: one batch of a known producer, its first change in the
   * group, in its epoch and following its last batch. Kept pending (see
   * changed) after one look at the producer's row; false: left to #admit,
   * with nothing recorded.
   */
  #pendingInOrder(h: CheckedBatch['header'], firstOffset: number): boolean {
    if (h.producerId < 0 || h.control || h.transactional) return false;
    const e = this.#states.row(h.producerId);
    if (e < 0) return false;
    const lastSeq = incrementSequence(h.baseSequence, h.lastOffsetDelta);
    if (!this.#table.takesNext(e, this.#group, this.#now - this.#states.expirationMs, h.producerEpoch, h.baseSequence, lastSeq)) return false;
    const lastOffset = firstOffset + h.lastOffsetDelta;
    this.#addPending(e, h.baseSequence, lastSeq, lastOffset, h.lastOffsetDelta, h.maxTimestamp);
    return true;
  }

  /** Keeps the batch as the one change of the state's row `e` in the group (see changed). */
  #addPending(e: number, firstSeq: number, lastSeq: number, lastOffset: number, offsetDelta: number, timestamp: number): void {
    const k = this.#pendingCount++;
    // Filled in order: the arrays grow without holes.
    this.#pendingFirstSeq[k] = firstSeq;
    this.#pendingLastSeq[k] = lastSeq;
    this.#pendingLastOffset[k] = lastOffset;
    this.#pendingOffsetDelta[k] = offsetDelta;
    this.#pendingTimestamp[k] = timestamp;
    this.#pendingChangedAt[k] = this.changed.length;
    this.changed.push(e);
    this.#table.markPending(e, this.#group, k);
  }

  pushPending(e: number): void {
    this.#pushPendingOnto(e, this.#table.pendingAt(e));
  }

  #pushPendingOnto(r: number, k: number): void {
    this.#table.push(r, this.#pendingFirstSeq[k]!, this.#pendingLastSeq[k]!, this.#pendingLastOffset[k]!, this.#pendingOffsetDelta[k]!, this.#pendingTimestamp[k]!);
  }

  /** The state's row `e` with its pending batch becomes a draft row, in its place in `changed`: the group changes the producer again. */
  #fromPending(e: number): number {
    const t = this.#table;
    const k = t.pendingAt(e);
    const draft = this.#take(e, t.producerId(e), t.epoch(e));
    this.#pushPendingOnto(draft, k);
    // Not made by the append being checked: one of several batches saves it before changing it.
    t.setStamp(draft, 0);
    this.changed[this.#pendingChangedAt[k]!] = draft;
    t.setDraft(e, draft);
    t.setPendingAt(e, -1);
    return draft;
  }

  /**
   * The draft row this batch changes, in `epoch`: the group's (saved first
   * when a multi-batch append changes it for the first time), or a new one
   * made from `current` (the producer's row as the group found it, -1:
   * unknown); `e` is the state's row (-1: none). A new epoch forgets the
   * batches of the old one (Kafka's maybeUpdateProducerEpoch).
   */
  #own(producerId: number, e: number, draft: number, current: number, epoch: number): number {
    const t = this.#table;
    if (draft < 0) {
      draft = this.#take(current, producerId, epoch);
      t.setStamp(draft, this.#append);
      this.changed.push(draft);
      if (e < 0) this.#fresh.set(producerId, draft);
      else {
        t.setDraft(e, draft);
        t.setStamp(e, this.#group);
      }
    } else if (this.#append !== 0 && t.stamp(draft) !== this.#append) {
      this.#saved.push(this.#take(draft, producerId, epoch));
      this.#savedAs.push(draft);
      t.setStamp(draft, this.#append);
    }
    t.setEpoch(draft, epoch);
    return draft;
  }

  #admit(checks: readonly CheckedBatch[], data: Buffer, firstOffset: number, replication: boolean): DuplicateOf | undefined {
    const t = this.#table;
    let duplicate: DuplicateOf | undefined;
    let duplicates = 0;
    let offset = firstOffset;
    let position = 0;
    for (const { header: h } of checks) {
      const first = offset;
      offset += h.lastOffsetDelta + 1;
      position += h.size;
      const id = h.producerId;
      if (id < 0) continue;
      const e = this.#states.row(id);
      const draft = this.#draftOf(id, e);
      // The producer as the group found it: -1, unknown.
      const current = draft >= 0 ? draft : e < 0 || this.#states.expired(e, this.#now) ? -1 : e;
      if (current >= 0 && h.producerEpoch < t.epoch(current) && !replication) {
        throw new SeglogError('EPRODUCERFENCED', `epoch ${h.producerEpoch} of producer ${id} at offset ${first} is older than its epoch ${t.epoch(current)} in the log`);
      }
      if (h.control) {
        const marker = parseControlBatch(data.subarray(position - h.size, position), h);
        // Checked whole before the append was queued.
        if (typeof marker === 'string') throw new SeglogError('ECORRUPT', marker);
        const r = this.#own(id, e, draft, current, h.producerEpoch);
        t.setLastTimestamp(r, h.maxTimestamp);
        t.setCoordinatorEpoch(r, marker.coordinatorEpoch);
        const txn = t.txnFirstOffset(r);
        if (txn >= 0) {
          this.events.push({ producerId: id, firstOffset: txn, lastOffset: first, aborted: marker.type === 'abort' });
          t.setTxnFirstOffset(r, -1);
        }
        continue;
      }
      const lastSeq = incrementSequence(h.baseSequence, h.lastOffsetDelta);
      if (!replication) {
        // Kafka's batchWithSequenceRange.
        const original = current >= 0 && t.epoch(current) === h.producerEpoch ? t.find(current, h.baseSequence, lastSeq) : -1;
        if (original >= 0) {
          duplicates++;
          const lastOffset = t.lastOffset(current, original);
          duplicate = { baseOffset: duplicate?.baseOffset ?? lastOffset - t.offsetDelta(current, original), lastOffset };
          continue;
        }
        checkSequence(t, current, id, h.producerEpoch, h.baseSequence, first);
      }
      if (checks.length === 1 && draft < 0 && current >= 0 && t.epoch(current) === h.producerEpoch && !h.transactional) {
        // The producer's first change in the group, and nothing but a batch (see changed).
        this.#addPending(current, h.baseSequence, lastSeq, offset - 1, offset - 1 - first, h.maxTimestamp);
        continue;
      }
      const r = this.#own(id, e, draft, current, h.producerEpoch);
      t.push(r, h.baseSequence, lastSeq, offset - 1, offset - 1 - first, h.maxTimestamp);
      if (h.transactional && t.txnFirstOffset(r) < 0) {
        t.setTxnFirstOffset(r, first);
        this.events.push({ producerId: id, firstOffset: first });
      }
    }
    if (duplicates === 0) return undefined;
    if (duplicates === checks.length) return duplicate;
    throw new SeglogError('EOUTOFORDERSEQUENCE', `an append mixes ${duplicates} duplicate batches with new ones: retry the batches it did not write alone`);
  }
}

/** Kafka's checkSequence: a new epoch starts at 0, a known one goes on from its last sequence; a producer the log does not know (`current` -1) may start anywhere. */
function checkSequence(t: ProducerTable, current: number, producerId: number, epoch: number, firstSeq: number, offset: number): void {
  if (current < 0) return;
  if (epoch !== t.epoch(current)) {
    if (firstSeq === 0) return;
    throw new SeglogError('EOUTOFORDERSEQUENCE', `new epoch ${epoch} of producer ${producerId} starts at sequence ${firstSeq}, not 0 (offset ${offset})`);
  }
  // Only markers in this epoch so far: Kafka's NO_SEQUENCE (-1), so the first batch starts at 0.
  const lastSeq = t.lastSequence(current);
  if (firstSeq === incrementSequence(lastSeq, 1)) return;
  throw new SeglogError('EOUTOFORDERSEQUENCE', `sequence ${firstSeq} of producer ${producerId} (epoch ${epoch}) does not follow its last sequence ${lastSeq} (offset ${offset})`);
}

// The producer rules an append must pass (Kafka's ProducerAppendInfo and
// ProducerStateEntry rules), checked as a group is numbered, against the
// producer state as the appends before it in the queue leave it: the state
// of the written groups plus this group's earlier appends (a draft). The
// draft reaches the state (ProducerStates.apply) only once its group is
// written, so a failed write leaves the state as it was. A producer's first
// change in a group is most often one batch of its epoch: that batch is
// kept pending, checked against the state's entry and pushed onto it when
// applied; a draft of the producer's entry (copied from the state's, and
// back into it: most of the cost with many producers taking turns) is made
// only when the group changes the producer again.
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
import { BATCH_FIELDS, batchTimestamp, writeBatch } from './batch-window.js';
import { incrementSequence, ProducerEntry, type ProducerChanges, type ProducerStates, type TxnEvent } from './producer-state.js';

/** Spare entries a draft keeps: more than the producers of most groups, and a bound on what one huge group leaves behind. */
const SPARE_KEPT = 1024;

/** Numbers groups and appends across drafts, so that a stamp left on an entry by an earlier group (or another draft) never matches. */
let stamps = 0;

/** The offsets an original batch (or run of batches) got. */
export interface DuplicateOf {
  baseOffset: number;
  lastOffset: number;
}

export class ProducerDraft implements ProducerChanges {
  readonly #states: ProducerStates;
  #now = 0;
  /** This group's stamp: a state entry whose stamp is this one has its draft in its `draft` field. */
  #group = 0;
  /**
   * The producers the group's admitted appends changed, one per producer, in
   * the order first changed: the group's draft of each, or the state's entry
   * of one whose one change is a pending batch (the state's entries are
   * untouched but for the draft's marks: stamp, draft, pendingAt).
   */
  readonly changed: ProducerEntry[] = [];
  /** The pending batches in batch-window.ts's layout, and where each one's entry is in `changed` (both kept from group to group). */
  readonly #pending: number[] = [];
  readonly #pendingChangedAt: number[] = [];
  #pendingCount = 0;
  /** The entries taken for the group (drafts, saved copies), given back to #spare when the next group starts. */
  readonly #taken: ProducerEntry[] = [];
  /** Drafts of producers the state has no entry for. */
  readonly #fresh = new Map<number, ProducerEntry>();
  /** Transactions opened and ended by the group's admitted appends, in offset order. */
  readonly events: TxnEvent[] = [];
  /** Entries not in use, taken again for drafts and saved copies: an append allocates none. At most SPARE_KEPT. */
  readonly #spare: ProducerEntry[] = [];
  /**
   * While an append of several batches is checked: its stamp (0 otherwise),
   * and the drafts made before it that it changed, each with a copy as it
   * was (to put back when the append is refused). An
   * append of one batch needs none: it is refused, or found a duplicate,
   * before it changes anything.
   */
  #append = 0;
  readonly #saved: ProducerEntry[] = [];
  readonly #savedAs: ProducerEntry[] = [];

  constructor(states: ProducerStates, now: number) {
    this.#states = states;
    this.reset(now);
  }

  /** Empties the draft for the next group, checked at `now` (the log drafts one group at a time: one draft serves them all). */
  reset(now: number): this {
    this.#now = now;
    this.#group = ++stamps;
    // Popped, not truncated: emptying an array by its length drops its storage, and the next group's push allocates it again.
    while (this.#taken.length > 0) this.#release(this.#taken.pop()!);
    while (this.changed.length > 0) this.changed.pop();
    this.#pendingCount = 0;
    if (this.#fresh.size > 0) this.#fresh.clear();
    if (this.events.length > 0) this.events.length = 0;
    return this;
  }

  /**
   * Checks the batches of one append (in `data`, numbered from
   * `firstOffset`) and records what they change. Returns the original
   * offsets when all its producer batches are duplicates; throws
   * EPRODUCERFENCED or EOUTOFORDERSEQUENCE (nothing recorded).
   */
  admit(checks: readonly CheckedBatch[], data: Buffer, firstOffset: number, replication: boolean): DuplicateOf | undefined {
    if (checks.length === 1) return this.#admit(checks, data, firstOffset, replication);
    this.#append = ++stamps;
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
      // The copies go back to the spare entries with the group's drafts.
      this.#saved.length = 0;
      this.#savedAs.length = 0;
    }
  }

  /** The append was refused: its new drafts go (an append of several batches adds no pending batch), the ones it changed are as they were. */
  #undo(changedBefore: number, eventsBefore: number): void {
    for (let i = changedBefore; i < this.changed.length; i++) {
      const d = this.changed[i]!;
      const e = this.#states.entry(d.producerId);
      if (e === undefined) this.#fresh.delete(d.producerId);
      else e.stamp = 0;
    }
    this.changed.length = changedBefore;
    for (let i = 0; i < this.#saved.length; i++) this.#savedAs[i]!.copyFrom(this.#saved[i]!);
    this.events.length = eventsBefore;
  }

  #take(producerId: number, epoch: number): ProducerEntry {
    const e = this.#spare.pop() ?? new ProducerEntry(producerId, epoch);
    this.#taken.push(e);
    return e;
  }

  #release(e: ProducerEntry): void {
    if (this.#spare.length < SPARE_KEPT) this.#spare.push(e);
  }

  /**
   * The group's draft of `producerId` (undefined: none yet; made now from
   * its pending batch if it has one); `e` is the state's entry.
   */
  #draftOf(producerId: number, e: ProducerEntry | undefined): ProducerEntry | undefined {
    if (e !== undefined) return e.stamp !== this.#group ? undefined : (e.draft ?? this.#fromPending(e));
    return this.#fresh.size === 0 ? undefined : this.#fresh.get(producerId);
  }

  /** Keeps the batch as the one change of the state's entry `e` in the group (see changed). */
  #addPending(e: ProducerEntry, firstSeq: number, lastSeq: number, lastOffset: number, offsetDelta: number, timestamp: number): void {
    const k = this.#pendingCount++;
    // Filled in order: the arrays grow without holes.
    writeBatch(this.#pending, k * BATCH_FIELDS, firstSeq, lastSeq, lastOffset, offsetDelta, timestamp);
    this.#pendingChangedAt[k] = this.changed.length;
    this.changed.push(e);
    e.stamp = this.#group;
    e.draft = undefined;
    e.pendingAt = k;
  }

  pushPending(e: ProducerEntry): void {
    this.#pushPendingOnto(e, e.pendingAt);
  }

  #pushPendingOnto(entry: ProducerEntry, k: number): void {
    entry.batches.pushFrom(this.#pending, k * BATCH_FIELDS);
    entry.lastTimestamp = batchTimestamp(this.#pending, k * BATCH_FIELDS);
  }

  /** The state's entry `e` with its pending batch becomes a draft, in its place in `changed`: the group changes the producer again. */
  #fromPending(e: ProducerEntry): ProducerEntry {
    const draft = this.#take(e.producerId, e.epoch);
    draft.copyFrom(e);
    this.#pushPendingOnto(draft, e.pendingAt);
    // Not made by the append being checked: one of several batches saves it before changing it.
    draft.stamp = 0;
    this.changed[this.#pendingChangedAt[e.pendingAt]!] = draft;
    e.draft = draft;
    e.pendingAt = -1;
    return draft;
  }

  /**
   * The draft this batch changes, in `epoch`: the group's (saved first when
   * a multi-batch append changes it for the first time), or a new one made
   * from `current` (the producer as the group found it, undefined: unknown).
   * A new epoch forgets the batches of the old one (Kafka's
   * maybeUpdateProducerEpoch).
   */
  #own(producerId: number, e: ProducerEntry | undefined, draft: ProducerEntry | undefined, current: ProducerEntry | undefined, epoch: number): ProducerEntry {
    if (draft === undefined) {
      draft = this.#take(producerId, epoch);
      if (current === undefined) draft.reset(producerId, epoch);
      else draft.copyFrom(current);
      draft.stamp = this.#append;
      this.changed.push(draft);
      if (e === undefined) this.#fresh.set(producerId, draft);
      else {
        e.draft = draft;
        e.stamp = this.#group;
      }
    } else if (this.#append !== 0 && draft.stamp !== this.#append) {
      const copy = this.#take(producerId, epoch);
      copy.copyFrom(draft);
      this.#saved.push(copy);
      this.#savedAs.push(draft);
      draft.stamp = this.#append;
    }
    if (draft.epoch !== epoch) {
      draft.epoch = epoch;
      draft.batches.clear();
    }
    return draft;
  }

  #admit(checks: readonly CheckedBatch[], data: Buffer, firstOffset: number, replication: boolean): DuplicateOf | undefined {
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
      const e = this.#states.entry(id);
      const draft = this.#draftOf(id, e);
      const current = draft ?? (e === undefined || this.#states.expired(e, this.#now) ? undefined : e);
      if (current !== undefined && h.producerEpoch < current.epoch && !replication) {
        throw new SeglogError('EPRODUCERFENCED', `epoch ${h.producerEpoch} of producer ${id} at offset ${first} is older than its epoch ${current.epoch} in the log`);
      }
      if (h.control) {
        const marker = parseControlBatch(data.subarray(position - h.size, position), h);
        // Checked whole before the append was queued.
        if (typeof marker === 'string') throw new SeglogError('ECORRUPT', marker);
        const entry = this.#own(id, e, draft, current, h.producerEpoch);
        entry.lastTimestamp = h.maxTimestamp;
        entry.coordinatorEpoch = marker.coordinatorEpoch;
        if (entry.currentTxnFirstOffset >= 0) {
          this.events.push({ producerId: id, firstOffset: entry.currentTxnFirstOffset, lastOffset: first, aborted: marker.type === 'abort' });
          entry.currentTxnFirstOffset = -1;
        }
        continue;
      }
      const lastSeq = incrementSequence(h.baseSequence, h.lastOffsetDelta);
      if (!replication) {
        // Kafka's batchWithSequenceRange.
        const original = current?.epoch === h.producerEpoch ? current.batches.find(h.baseSequence, lastSeq) : -1;
        if (original >= 0) {
          const b = current!.batches;
          duplicates++;
          duplicate = { baseOffset: duplicate?.baseOffset ?? b.lastOffset(original) - b.offsetDelta(original), lastOffset: b.lastOffset(original) };
          continue;
        }
        checkSequence(current, id, h.producerEpoch, h.baseSequence, first);
      }
      if (checks.length === 1 && draft === undefined && current !== undefined && current.epoch === h.producerEpoch && !h.transactional) {
        // The producer's first change in the group, and nothing but a batch (see changed).
        this.#addPending(current, h.baseSequence, lastSeq, offset - 1, offset - 1 - first, h.maxTimestamp);
        continue;
      }
      const entry = this.#own(id, e, draft, current, h.producerEpoch);
      entry.lastTimestamp = h.maxTimestamp;
      entry.batches.push(h.baseSequence, lastSeq, offset - 1, offset - 1 - first, h.maxTimestamp);
      if (h.transactional && entry.currentTxnFirstOffset < 0) {
        entry.currentTxnFirstOffset = first;
        this.events.push({ producerId: id, firstOffset: first });
      }
    }
    if (duplicates === 0) return undefined;
    if (duplicates === checks.length) return duplicate;
    throw new SeglogError('EOUTOFORDERSEQUENCE', `an append mixes ${duplicates} duplicate batches with new ones: retry the batches it did not write alone`);
  }
}

/** Kafka's checkSequence: a new epoch starts at 0, a known one goes on from its last sequence; a producer the log does not know may start anywhere. */
function checkSequence(current: ProducerEntry | undefined, producerId: number, epoch: number, firstSeq: number, offset: number): void {
  if (current === undefined) return;
  if (epoch !== current.epoch) {
    if (firstSeq === 0) return;
    throw new SeglogError('EOUTOFORDERSEQUENCE', `new epoch ${epoch} of producer ${producerId} starts at sequence ${firstSeq}, not 0 (offset ${offset})`);
  }
  // Only markers in this epoch so far: Kafka's NO_SEQUENCE (-1), so the first batch starts at 0.
  const lastSeq = current.lastSequence;
  if (firstSeq === incrementSequence(lastSeq, 1)) return;
  throw new SeglogError('EOUTOFORDERSEQUENCE', `sequence ${firstSeq} of producer ${producerId} (epoch ${epoch}) does not follow its last sequence ${lastSeq} (offset ${offset})`);
}

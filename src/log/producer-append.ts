// The producer rules an append must pass (Kafka's ProducerAppendInfo and
// ProducerStateEntry rules), checked as a group is numbered, against the
// producer state as the appends before it in the queue leave it: the state
// of the written groups plus this group's earlier appends (a draft). The
// draft reaches the state (ProducerStates.apply) only once its group is
// written, so a failed write leaves the state as it was.
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
import { BATCHES_RETAINED, incrementSequence, type BatchMeta, type ProducerEntry, type ProducerStates, type TxnEvent } from './producer-state.js';

/** The offsets an original batch (or run of batches) got. */
export interface DuplicateOf {
  baseOffset: number;
  lastOffset: number;
}

export class ProducerDraft {
  readonly #states: ProducerStates;
  #now: number;
  /** Entries changed by the group's admitted appends: copies, the state's own are untouched. */
  readonly changed = new Map<number, ProducerEntry>();
  /** Transactions opened and ended by the group's admitted appends, in offset order. */
  readonly events: TxnEvent[] = [];

  constructor(states: ProducerStates, now: number) {
    this.#states = states;
    this.#now = now;
  }

  /** Empties the draft for the next group, checked at `now` (the log drafts one group at a time: one draft serves them all). */
  reset(now: number): this {
    this.#now = now;
    this.changed.clear();
    this.events.length = 0;
    return this;
  }

  /**
   * Checks the batches of one append (in `data`, numbered from
   * `firstOffset`) and records what they change. Returns the original
   * offsets when all its producer batches are duplicates; throws
   * EPRODUCERFENCED or EOUTOFORDERSEQUENCE (nothing recorded).
   */
  admit(checks: readonly CheckedBatch[], data: Buffer, firstOffset: number, replication: boolean): DuplicateOf | undefined {
    this.#owned.clear();
    this.#replacedIds.length = 0;
    this.#replaced.length = 0;
    const eventsBefore = this.events.length;
    try {
      const duplicate = this.#admit(checks, data, firstOffset, replication);
      // A duplicate changed nothing, but for the rest of the call: all or nothing.
      if (duplicate !== undefined) this.#undo(eventsBefore);
      return duplicate;
    } catch (err) {
      this.#undo(eventsBefore);
      throw err;
    }
  }

  /** Entries this call made: its own copies, which its later batches change in place. */
  readonly #owned = new Set<ProducerEntry>();
  /** What this call's copies replaced in `changed` (undefined: nothing), by producer, to put back when it is refused. */
  readonly #replacedIds: number[] = [];
  readonly #replaced: Array<ProducerEntry | undefined> = [];

  #undo(eventsBefore: number): void {
    for (let i = this.#replaced.length - 1; i >= 0; i--) {
      const prior = this.#replaced[i];
      if (prior === undefined) this.changed.delete(this.#replacedIds[i]!);
      else this.changed.set(this.#replacedIds[i]!, prior);
    }
    this.events.length = eventsBefore;
  }

  /** The entry this call changes for `producerId`: its own copy (made now from `current` unless it has one), in `changed`. */
  #own(producerId: number, prior: ProducerEntry | undefined, current: ProducerEntry | undefined, epoch: number): ProducerEntry {
    if (prior !== undefined && this.#owned.has(prior)) {
      if (prior.epoch !== epoch) {
        prior.epoch = epoch;
        prior.batches = [];
      }
      return prior;
    }
    const entry: ProducerEntry =
      current === undefined
        ? { producerId, epoch, batches: [], coordinatorEpoch: -1, currentTxnFirstOffset: -1, lastTimestamp: -1 }
        : {
            producerId,
            epoch,
            // A new epoch forgets the batches of the old one (Kafka's maybeUpdateProducerEpoch).
            batches: current.epoch === epoch ? current.batches.slice() : [],
            coordinatorEpoch: current.coordinatorEpoch,
            currentTxnFirstOffset: current.currentTxnFirstOffset,
            lastTimestamp: current.lastTimestamp,
          };
    this.#owned.add(entry);
    this.#replacedIds.push(producerId);
    this.#replaced.push(prior);
    this.changed.set(producerId, entry);
    return entry;
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
      const prior = this.changed.get(id);
      const current = prior ?? this.#states.get(id, this.#now);
      if (current !== undefined && h.producerEpoch < current.epoch && !replication) {
        throw new SeglogError('EPRODUCERFENCED', `epoch ${h.producerEpoch} of producer ${id} at offset ${first} is older than its epoch ${current.epoch} in the log`);
      }
      if (h.control) {
        const marker = parseControlBatch(data.subarray(position - h.size, position), h);
        // Checked whole before the append was queued.
        if (typeof marker === 'string') throw new SeglogError('ECORRUPT', marker);
        const entry = this.#own(id, prior, current, h.producerEpoch);
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
        const original = current?.epoch === h.producerEpoch ? retained(current, h.baseSequence, lastSeq) : undefined;
        if (original !== undefined) {
          duplicates++;
          duplicate = { baseOffset: duplicate?.baseOffset ?? original.lastOffset - original.offsetDelta, lastOffset: original.lastOffset };
          continue;
        }
        checkSequence(current, id, h.producerEpoch, h.baseSequence, first);
      }
      const entry = this.#own(id, prior, current, h.producerEpoch);
      entry.lastTimestamp = h.maxTimestamp;
      entry.batches.push({ firstSeq: h.baseSequence, lastSeq, lastOffset: offset - 1, offsetDelta: offset - 1 - first, timestamp: h.maxTimestamp });
      if (entry.batches.length > BATCHES_RETAINED) entry.batches.shift();
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

/** The batch of `entry` with these first and last sequences (Kafka's batchWithSequenceRange). */
function retained(entry: ProducerEntry, firstSeq: number, lastSeq: number): BatchMeta | undefined {
  for (const b of entry.batches) if (b.firstSeq === firstSeq && b.lastSeq === lastSeq) return b;
  return undefined;
}

/** Kafka's checkSequence: a new epoch starts at 0, a known one goes on from its last sequence; a producer the log does not know may start anywhere. */
function checkSequence(current: ProducerEntry | undefined, producerId: number, epoch: number, firstSeq: number, offset: number): void {
  if (current === undefined) return;
  if (epoch !== current.epoch) {
    if (firstSeq === 0) return;
    throw new SeglogError('EOUTOFORDERSEQUENCE', `new epoch ${epoch} of producer ${producerId} starts at sequence ${firstSeq}, not 0 (offset ${offset})`);
  }
  // Only markers in this epoch so far: Kafka's NO_SEQUENCE (-1), so the first batch starts at 0.
  const lastSeq = current.batches.at(-1)?.lastSeq ?? -1;
  if (firstSeq === incrementSequence(lastSeq, 1)) return;
  throw new SeglogError('EOUTOFORDERSEQUENCE', `sequence ${firstSeq} of producer ${producerId} (epoch ${epoch}) does not follow its last sequence ${lastSeq} (offset ${offset})`);
}

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
import { BATCHES_RETAINED, incrementSequence, type ProducerEntry, type ProducerStates, type TxnEvent } from './producer-state.js';

/** The offsets an original batch (or run of batches) got. */
export interface DuplicateOf {
  baseOffset: number;
  lastOffset: number;
}

export class ProducerDraft {
  readonly #states: ProducerStates;
  readonly #now: number;
  /** Entries changed by the group's admitted appends: copies, the state's own are untouched. */
  readonly changed = new Map<number, ProducerEntry>();
  /** Transactions opened and ended by the group's admitted appends, in offset order. */
  readonly events: TxnEvent[] = [];

  constructor(states: ProducerStates, now: number) {
    this.#states = states;
    this.#now = now;
  }

  /**
   * Checks the batches of one append (in `data`, numbered from
   * `firstOffset`) and records what they change. Returns the original
   * offsets when all its producer batches are duplicates; throws
   * EPRODUCERFENCED or EOUTOFORDERSEQUENCE (nothing recorded).
   */
  admit(checks: readonly CheckedBatch[], data: Buffer, firstOffset: number, replication: boolean): DuplicateOf | undefined {
    const changed = new Map<number, ProducerEntry>();
    const events: TxnEvent[] = [];
    let duplicate: DuplicateOf | undefined;
    let duplicates = 0;
    let offset = firstOffset;
    let position = 0;
    for (const { header: h } of checks) {
      const first = offset;
      offset += h.lastOffsetDelta + 1;
      position += h.size;
      if (h.producerId < 0) continue;
      const current = changed.get(h.producerId) ?? this.changed.get(h.producerId) ?? this.#states.get(h.producerId, this.#now);
      if (current !== undefined && h.producerEpoch < current.epoch && !replication) {
        throw new SeglogError(
          'EPRODUCERFENCED',
          `epoch ${h.producerEpoch} of producer ${h.producerId} at offset ${first} is older than its epoch ${current.epoch} in the log`,
        );
      }
      const entry = nextEntry(current, h.producerId, h.producerEpoch);
      entry.lastTimestamp = h.maxTimestamp;
      if (h.control) {
        const marker = parseControlBatch(data.subarray(position - h.size, position), h);
        // Checked whole before the append was queued.
        if (typeof marker === 'string') throw new SeglogError('ECORRUPT', marker);
        if (entry.currentTxnFirstOffset >= 0) {
          events.push({ producerId: h.producerId, firstOffset: entry.currentTxnFirstOffset, lastOffset: first, aborted: marker.type === 'abort' });
          entry.currentTxnFirstOffset = -1;
        }
        entry.coordinatorEpoch = marker.coordinatorEpoch;
        changed.set(h.producerId, entry);
        continue;
      }
      const lastSeq = incrementSequence(h.baseSequence, h.lastOffsetDelta);
      if (!replication) {
        const original = current?.epoch === h.producerEpoch ? current.batches.find((b) => b.firstSeq === h.baseSequence && b.lastSeq === lastSeq) : undefined;
        if (original !== undefined) {
          duplicates++;
          duplicate = { baseOffset: duplicate?.baseOffset ?? original.lastOffset - original.offsetDelta, lastOffset: original.lastOffset };
          continue;
        }
        checkSequence(current, h.producerId, h.producerEpoch, h.baseSequence, first);
      }
      entry.batches.push({ firstSeq: h.baseSequence, lastSeq, lastOffset: offset - 1, offsetDelta: offset - 1 - first, timestamp: h.maxTimestamp });
      if (entry.batches.length > BATCHES_RETAINED) entry.batches.shift();
      if (h.transactional && entry.currentTxnFirstOffset < 0) {
        entry.currentTxnFirstOffset = first;
        events.push({ producerId: h.producerId, firstOffset: first });
      }
      changed.set(h.producerId, entry);
    }
    if (duplicates > 0) {
      if (duplicates === checks.length) return duplicate;
      throw new SeglogError('EOUTOFORDERSEQUENCE', `an append mixes ${duplicates} duplicate batches with new ones: retry the batches it did not write alone`);
    }
    for (const [id, e] of changed) this.changed.set(id, e);
    this.events.push(...events);
    return undefined;
  }
}

/** The entry a batch of `epoch` updates: a copy of `current`, its batches dropped when the epoch changes. */
function nextEntry(current: ProducerEntry | undefined, producerId: number, epoch: number): ProducerEntry {
  if (current === undefined) return { producerId, epoch, batches: [], coordinatorEpoch: -1, currentTxnFirstOffset: -1, lastTimestamp: -1 };
  const sameEpoch = current.epoch === epoch;
  return { ...current, epoch, batches: sameEpoch ? current.batches.slice() : [] };
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

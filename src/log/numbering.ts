// Numbering a group of appends as it is committed: each batch gets its
// offsets from the log end (its baseOffset rewritten in place), each append
// what it resolves to, and the epochs that start in the group are noted.
// Appends of producers pass the producer rules first (producer-append.ts).
import { setBaseOffset, type BatchHeader } from '../segment/batch.js';
import type { AppendResult, PendingAppend } from './append-queue.js';
import type { EpochEntry } from './leader-epochs.js';
import type { ProducerDraft } from './producer-append.js';

/** A group numbered: what it writes and what each of its appends resolves to. */
export interface Numbered {
  /** The appends whose batches are written (not the duplicates), in order. */
  writes: PendingAppend[];
  headers: BatchHeader[];
  /** One per append of the group that was not refused, in order. */
  results: AppendResult[];
  /** Appends the producer rules refused, each rejected already. */
  refused: PendingAppend[];
  endOffset: number;
  records: number;
  epochs: EpochEntry[];
}

/**
 * Gives the group's batches their offsets from `offset` on (rewriting each
 * baseOffset in place), works out what each append resolves to, and which
 * epochs above `lastEpoch` start where. With a `draft`, appends of
 * producers pass the producer rules first (producer-append.ts): a refused
 * one is rejected, a duplicate gets its original's offsets and is not
 * written. The headers are the appends' own (made when each append was
 * checked) and are numbered where they lie: no copy per batch.
 */
export function number(group: PendingAppend[], offset: number, lastEpoch: number, draft: ProducerDraft | undefined): Numbered {
  const n: Numbered = { writes: [], headers: [], results: [], refused: [], endOffset: offset, records: 0, epochs: [] };
  for (const a of group) {
    if (a.producers) {
      let original;
      try {
        original = draft!.admit(a.checks, a.data, offset, a.replication);
      } catch (err) {
        a.reject(err);
        n.refused.push(a);
        continue;
      }
      if (original !== undefined) {
        n.results.push({ ...original, bytes: 0, logAppendTime: -1, duplicate: true });
        continue;
      }
    }
    const baseOffset = offset;
    let position = 0;
    for (const { header: h } of a.checks) {
      setBaseOffset(a.data, position, offset);
      h.baseOffset = offset;
      h.lastOffset = offset + h.lastOffsetDelta;
      if (h.partitionLeaderEpoch > lastEpoch) {
        lastEpoch = h.partitionLeaderEpoch;
        n.epochs.push({ epoch: lastEpoch, startOffset: offset });
      }
      n.headers.push(h);
      offset += h.lastOffsetDelta + 1;
      n.records += h.recordsCount;
      position += h.size;
    }
    n.writes.push(a);
    n.results.push({ baseOffset, lastOffset: offset - 1, bytes: a.data.length, logAppendTime: a.logAppendTime, duplicate: false });
  }
  if (!Number.isSafeInteger(offset)) throw new RangeError(`offset ${offset} is beyond the safe integer range`);
  n.endOffset = offset;
  return n;
}

// Read isolation (Kafka's FetchIsolation): how far each level may read, and
// which batches a read_committed consumer drops. The transaction side comes
// through one seam, TransactionView, so that whatever keeps the log's
// transactions plugs in here and nowhere else.
import type { BatchHeader } from '../segment/batch.js';
import { checkOneOf } from '../validate.js';
import type { HighWatermark } from './high-watermark.js';
import type { AbortedTransaction } from './transactions.js';
import type { LogSegments } from './segments.js';

/**
 * What a read may see: 'all' up to the log end (replication: a follower
 * copies everything its leader has), 'uncommitted' up to the high watermark
 * (Kafka's read_uncommitted), 'committed' up to the last stable offset
 * (read_committed). A batch is returned only whole and only if all of it lies
 * below the bound, as Kafka's fetch caps at the position of the batch that
 * holds the bound.
 */
export type IsolationLevel = 'uncommitted' | 'committed' | 'all';

const LEVELS: readonly IsolationLevel[] = ['uncommitted', 'committed', 'all'];

export function checkIsolation(name: string, value: unknown): IsolationLevel {
  return value === undefined ? 'all' : checkOneOf(name, value, LEVELS);
}


/**
 * The seam to the log's transactions (producer state, `.txnindex`). Nothing
 * else in the read path knows of them. A view that updates on segment events
 * listens before the log's followers, so a woken follower sees the new state.
 */
export interface TransactionView {
  /**
   * The first offset of the earliest transaction not yet decided below
   * `highWatermark`: still open, or closed by a marker at or past it (Kafka's
   * first unstable offset, which waits for the marker to be replicated).
   * Undefined when there is none.
   */
  firstUnstableOffset(highWatermark: number): number | undefined;
  /** Aborted transactions that overlap [fromOffset, toOffset): lastOffset >= fromOffset and firstOffset < toOffset, by firstOffset. */
  abortedTransactions(fromOffset: number, toOffset: number): readonly AbortedTransaction[];
}

/** A log that keeps no transaction state: nothing is unstable, nothing aborted. */
export const NO_TRANSACTIONS: TransactionView = {
  firstUnstableOffset: () => undefined,
  abortedTransactions: () => [],
};

/** Decides, for one read's batches, which a read_committed consumer would not see. */
export type BatchFilter = (header: BatchHeader) => boolean;

export class ReadIsolation {
  readonly #segments: LogSegments;
  readonly #highWatermark: HighWatermark;
  readonly #transactions: TransactionView;

  constructor(segments: LogSegments, highWatermark: HighWatermark, transactions: TransactionView) {
    this.#segments = segments;
    this.#highWatermark = highWatermark;
    this.#transactions = transactions;
  }

  /** Kafka's LSO: the high watermark, or the first unstable offset when that is below it. */
  get lastStableOffset(): number {
    const hw = this.#highWatermark.offset;
    const unstable = this.#transactions.firstUnstableOffset(hw);
    return unstable === undefined ? hw : Math.min(unstable, hw);
  }

  /** The exclusive offset a read under `level` stops at. */
  bound(level: IsolationLevel): number {
    if (level === 'all') return this.#segments.endOffset;
    return level === 'uncommitted' ? this.#highWatermark.offset : this.lastStableOffset;
  }

  /**
   * For batches read from `fromOffset` up to `toOffset`: true for those a
   * read_committed consumer skips, control batches (transaction markers) and
   * the transactional batches of an aborted transaction (its producer's, from
   * its first offset up to its ABORT marker; a producer has one transaction
   * open at a time, so those are the transaction's own).
   */
  skipped(fromOffset: number, toOffset: number): BatchFilter {
    const aborted = this.#transactions.abortedTransactions(fromOffset, toOffset);
    if (aborted.length === 0) return (h) => h.control;
    return (h) =>
      h.control || (h.transactional && aborted.some((t) => t.producerId === h.producerId && t.firstOffset <= h.baseOffset && h.lastOffset <= t.lastOffset));
  }
}

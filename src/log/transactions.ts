// A log's aborted transactions: one `.txnindex` per segment that holds an
// ABORT marker (src/index/transaction-index.ts), kept in step with the
// segment set (gone with their segment, synced when it is sealed), and the
// question a Fetch at read_committed asks of them: which aborted
// transactions overlap a range of offsets.
import { rm } from 'node:fs/promises';
import { segmentFileName, segmentPaths } from '../layout.js';
import { TransactionIndex, type AbortedTxn } from '../index/transaction-index.js';
import type { Segment } from '../segment/segment.js';
import type { SegmentEvents } from './segments.js';

/** What Log.abortedTransactions returns of each transaction (what a Fetch response carries). */
export interface AbortedTransaction {
  producerId: number;
  firstOffset: number;
  lastOffset: number;
}

export class TxnIndexes implements SegmentEvents {
  readonly #dir: string;
  /** By segment base offset; a segment without an entry has no aborted transaction. */
  readonly #indexes = new Map<number, TransactionIndex>();

  constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Reads the indexes of `segments` that have a file among `names`; returns
   * the base offset of the first segment whose index is damaged (its
   * entries must be rebuilt from there), undefined when none is.
   */
  async load(segments: readonly Segment[], names: ReadonlySet<string>): Promise<number | undefined> {
    let damaged: number | undefined;
    for (const s of segments) {
      if (!names.has(segmentFileName(s.baseOffset, 'txnindex'))) continue;
      const path = segmentPaths(this.#dir, s.baseOffset).txnIndex;
      const index = await TransactionIndex.read(path);
      if (index === undefined) {
        await rm(path, { force: true });
        damaged ??= s.baseOffset;
        continue;
      }
      if (index.entries.length > 0) this.#indexes.set(s.baseOffset, index);
    }
    return damaged;
  }

  /** Records transactions aborted by markers just written to `segment` (the active one). */
  async append(segment: Segment, aborted: readonly AbortedTxn[]): Promise<void> {
    let index = this.#indexes.get(segment.baseOffset);
    if (index === undefined) {
      index = new TransactionIndex(segmentPaths(this.#dir, segment.baseOffset).txnIndex);
      this.#indexes.set(segment.baseOffset, index);
    }
    await index.append(aborted);
  }

  /** Drops the entries of markers at or after `offset`, in every segment. */
  async truncateTo(offset: number): Promise<void> {
    for (const [base, index] of this.#indexes) {
      await index.truncateTo(offset);
      if (index.entries.length > 0) continue;
      this.#indexes.delete(base);
      await index.delete();
    }
  }

  /** Makes `segment`'s entries durable (a sealed segment's index is never rebuilt by a later replay). */
  async sync(segment: Segment): Promise<void> {
    await this.#indexes.get(segment.baseOffset)?.sync();
  }

  async close(): Promise<void> {
    await Promise.all([...this.#indexes.values()].map((i) => i.close()));
  }

  /** The segments' files are removed with them (retention renames them, truncation deletes them): only the memory goes here. */
  removed(segments: readonly Segment[]): void {
    for (const s of segments) {
      const index = this.#indexes.get(s.baseOffset);
      if (index === undefined) continue;
      this.#indexes.delete(s.baseOffset);
      void index.close().catch(() => undefined);
    }
  }

  /** The aborted transactions whose markers lie in `segment`, in marker order. */
  entriesOf(segment: Segment): readonly AbortedTxn[] {
    return this.#indexes.get(segment.baseOffset)?.entries ?? [];
  }

  /** The cleaner swapped `segment` in for `sources` (their files gone or replaced): the sources' entries go, the new one's file is read. */
  async swapped(sources: readonly Segment[], segment: Segment): Promise<void> {
    this.removed(sources);
    const index = await TransactionIndex.read(segmentPaths(this.#dir, segment.baseOffset).txnIndex);
    if (index !== undefined && index.entries.length > 0) this.#indexes.set(segment.baseOffset, index);
  }

  /**
   * The aborted transactions with records in [fromOffset, toOffset): markers
   * at or after fromOffset, first offsets below toOffset; by first offset.
   * As Kafka, the entries are searched in marker order until one whose last
   * stable offset reaches toOffset (no later marker can abort a transaction
   * that began below it).
   */
  abortedTransactions(fromOffset: number, toOffset: number): AbortedTransaction[] {
    const out: AbortedTransaction[] = [];
    // Segments in offset order: entries then come in marker order.
    search: for (const base of [...this.#indexes.keys()].sort((a, b) => a - b)) {
      for (const e of this.#indexes.get(base)!.entries) {
        if (e.lastOffset < fromOffset) continue;
        if (e.firstOffset < toOffset) out.push({ producerId: e.producerId, firstOffset: e.firstOffset, lastOffset: e.lastOffset });
        if (e.lastStableOffset >= toOffset) break search;
      }
    }
    return out.sort((a, b) => a.firstOffset - b.firstOffset);
  }
}

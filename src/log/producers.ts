// A log's producer and transaction state kept in step with its files
// (Kafka's ProducerStateManager around the log): loaded at open from the
// latest producer snapshot at or below the recovered end and the batch
// headers after it; each written group's changes applied, its aborted
// transactions written to the active segment's `.txnindex`; a snapshot
// written on roll (at the new segment's base) and on clean close (at the
// log end, so a clean reopen replays nothing and opens no sealed segment);
// rebuilt the same way after truncateTo; snapshots below the first segment
// dropped with retention.
//
// Crash safety: a snapshot at offset S describes data below S that was
// durable when it was written (a roll syncs the sealed segment first, close
// flushes first), so after a crash every snapshot at or below the recovered
// end is good; those above it (a truncation, a lost tail) are removed, and
// durably before anything is written again. The active segment's
// `.txnindex` is rebuilt by the replay; sealed ones were synced on roll.
import { snapshotOffsets } from '../layout.js';
import { fsyncDir } from '../native.js';
import { HEADER_READ_BYTES, BatchReader } from '../segment/batch-reader.js';
import { walkBatches } from '../segment/batch-walk.js';
import type { Segment } from '../segment/segment.js';
import { ProducerDraft } from './producer-append.js';
import { ProducerStates, type ProducerInfo, type ProducerLimits } from './producer-state.js';
import { readSnapshot, removeSnapshots, writeSnapshot } from './producer-snapshot.js';
import { TxnIndexes, type AbortedTransaction } from './transactions.js';

export class Producers {
  readonly #dir: string;
  readonly #states: ProducerStates;
  /** Also a listener of the segment set (the log registers it). */
  readonly txnIndexes: TxnIndexes;
  /** Offsets of the snapshots on disk, rising. */
  #snapshots: number[];
  readonly #draft: ProducerDraft;

  private constructor(dir: string, limits: ProducerLimits, snapshots: number[]) {
    this.#dir = dir;
    this.#states = new ProducerStates(limits);
    this.#draft = new ProducerDraft(this.#states, 0);
    this.txnIndexes = new TxnIndexes(dir);
    this.#snapshots = snapshots;
  }

  /** The state of the loaded log in `dir` (`names`: its listing at open; `segments`: recovered, oldest first). */
  static async load(dir: string, names: readonly string[], segments: readonly Segment[], limits: ProducerLimits): Promise<Producers> {
    const p = new Producers(dir, limits, snapshotOffsets(names));
    const end = segments.at(-1)!.nextOffset;
    const first = segments[0]!.baseOffset;
    const stray = p.#snapshots.filter((o) => o > end);
    const below = p.#snapshots.filter((o) => o < first);
    if (stray.length + below.length > 0) {
      await removeSnapshots(dir, [...stray, ...below]);
      p.#snapshots = p.#snapshots.filter((o) => o <= end && o >= first);
      // Before any write: a snapshot of data that is gone must not outlive a crash once new data takes its offsets.
      if (stray.length > 0) await fsyncDir(dir);
    }
    const damaged = await p.txnIndexes.load(segments, new Set(names));
    await p.#rebuild(segments, Math.min(end, damaged ?? end));
    return p;
  }

  /**
   * Loads the latest good snapshot at or below `bound` (damaged ones are
   * removed) and replays the batch headers from it to the end; the
   * `.txnindex` entries from the snapshot on are rebuilt by the replay.
   */
  async #rebuild(segments: readonly Segment[], bound: number): Promise<void> {
    const now = Date.now();
    this.#states.clear();
    let from = segments[0]!.baseOffset;
    for (const offset of this.#snapshots.filter((o) => o <= bound).reverse()) {
      const entries = await readSnapshot(this.#dir, offset);
      if (entries !== undefined) {
        this.#states.load(entries, now);
        from = offset;
        break;
      }
      await removeSnapshots(this.#dir, [offset]);
      this.#snapshots = this.#snapshots.filter((o) => o !== offset);
    }
    await this.txnIndexes.truncateTo(from);
    for (const s of segments) {
      if (s.nextOffset <= from) continue;
      // A segment a clean shutdown vouched for is not open yet: only those the replay needs are opened.
      await s.load();
      const reader = BatchReader.ofFile(s.log, s.size, HEADER_READ_BYTES);
      const draft = new ProducerDraft(this.#states, now);
      let aborted;
      try {
        await walkBatches(reader, {
          baseOffset: s.baseOffset,
          checkCrc: false,
          gapsBelow: s.gapsBelow,
          onBatch: (h, position) => {
            if (h.lastOffset < from || h.producerId < 0) return undefined;
            // Only a marker's record is read; data batches are known by their headers (and cost no await).
            if (!h.control) return void draft.admit([{ ok: true, header: h }], EMPTY, h.baseOffset, true);
            return reader.bytes(position, h.size).then((data) => void draft.admit([{ ok: true, header: h }], data, h.baseOffset, true));
          },
        });
        aborted = this.#states.apply(draft);
      } finally {
        // The draft's rows go back to the table, applied or not.
        draft.release();
      }
      if (aborted.length > 0) await this.txnIndexes.append(s, aborted);
    }
  }

  /**
   * The draft for the next group's appends, against the state as the groups
   * written so far left it. One object, emptied for each group: groups are
   * drafted one at a time, each applied (written) or dropped before the next.
   */
  draft(): ProducerDraft {
    return this.#draft.reset(Date.now());
  }

  /**
   * A group was written to `active`: its changes become the state, its
   * aborted transactions go to the segment's index (the promise, only then:
   * most groups settle without one).
   */
  written(draft: ProducerDraft, active: Segment): Promise<void> | undefined {
    const aborted = this.#states.apply(draft);
    return aborted.length > 0 ? this.txnIndexes.append(active, aborted) : undefined;
  }

  /** `sealed` was synced and the next segment starts at `offset`: its index is made durable and the state saved there. */
  async rolled(sealed: Segment, offset: number): Promise<void> {
    await this.txnIndexes.sync(sealed);
    await this.#snapshot(offset);
  }

  async #snapshot(offset: number): Promise<void> {
    await writeSnapshot(this.#dir, offset, this.#states.toSnapshot(Date.now()));
    if (this.#snapshots.at(-1) !== offset) this.#snapshots.push(offset);
  }

  /**
   * Closes the index files; on a clean close (`active` flushed, the
   * clean-shutdown marker to be written) first saves the state at the log
   * end, so the next open replays nothing.
   */
  async close(clean: { active: Segment; endOffset: number } | undefined): Promise<void> {
    try {
      if (clean === undefined) return;
      await this.txnIndexes.sync(clean.active);
      await this.#snapshot(clean.endOffset);
    } finally {
      await this.txnIndexes.close();
    }
  }

  /** After truncateTo cut the log at the end of `segments`: later snapshots go (durably), the state is rebuilt. */
  async truncated(segments: readonly Segment[]): Promise<void> {
    const end = segments.at(-1)!.nextOffset;
    const stray = this.#snapshots.filter((o) => o > end);
    if (stray.length > 0) {
      await removeSnapshots(this.#dir, stray);
      this.#snapshots = this.#snapshots.filter((o) => o <= end);
      await fsyncDir(this.#dir);
    }
    await this.#rebuild(segments, end);
  }

  /** Segments below `firstBase` were removed: so are the snapshots below it (Kafka keeps the one at the first segment). */
  async startMoved(firstBase: number): Promise<void> {
    const below = this.#snapshots.filter((o) => o < firstBase);
    if (below.length === 0) return;
    await removeSnapshots(this.#dir, below);
    this.#snapshots = this.#snapshots.filter((o) => o >= firstBase);
  }

  list(): ProducerInfo[] {
    return this.#states.list(Date.now());
  }

  /** See ProducerStates.firstUnstableOffset: call it with the high watermark (also when it moves, to let go of what it passed). */
  firstUnstableOffset(highWatermark: number): number | undefined {
    return this.#states.firstUnstableOffset(highWatermark);
  }

  abortedTransactions(fromOffset: number, toOffset: number): AbortedTransaction[] {
    return this.txnIndexes.abortedTransactions(fromOffset, toOffset);
  }
}

const EMPTY = Buffer.alloc(0);

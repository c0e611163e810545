// Own mode's writes leave no trail in the page cache: once appended bytes
// are on disk their pages are dropped (fadvise DONTNEED), the tail cache
// holding the ones readers still want. After an fdatasync that is all there
// is to do. Between fdatasyncs, every WRITE_BEHIND_BYTES the new bytes are
// handed to writeback (sync_file_range WRITE), so that the next fdatasync
// has less to wait for. A log that never syncs (flush 'none') also waits
// for the previous batch of bytes, by then mostly written, and drops it:
// Linux's write-behind recipe. All of it runs off the append path. The page
// holding the end of the data is kept, or the next append would have to
// read it back from disk.
import type { SeglogError } from '../errors.js';
import { PAGE_SIZE } from '../native.js';
import type { Segment } from '../segment/segment.js';
import type { SyncPolicy } from './log-cache.js';

export const WRITE_BEHIND_BYTES = 4 * 1024 * 1024;

interface Progress {
  /** Writeback was started for bytes below it. */
  kicked: number;
  /** Pages below it were dropped. */
  dropped: number;
}

const pageFloor = (n: number) => Math.floor(n / PAGE_SIZE) * PAGE_SIZE;

export class WriteBehind {
  readonly #progress = new Map<Segment, Progress>();
  /** Background work, one step at a time. */
  #chain: Promise<void> = Promise.resolve();
  readonly #onError: (err: unknown) => void;
  readonly #syncs: SyncPolicy;

  /**
   * `onError` gets a failed sync_file_range: like a failed fsync, it may have
   * consumed the writeback error a later fdatasync would have reported.
   */
  constructor(onError: (err: unknown) => void, syncs: SyncPolicy) {
    this.#onError = onError;
    this.#syncs = syncs;
  }

  #of(segment: Segment): Progress {
    let p = this.#progress.get(segment);
    if (p === undefined) {
      p = { kicked: 0, dropped: 0 };
      this.#progress.set(segment, p);
    }
    return p;
  }

  #then(step: () => Promise<void>): void {
    this.#chain = this.#chain.then(step).catch((err: SeglogError) => {
      // The segment went away (retention, truncation, close): nothing left to drop.
      if (err.code !== 'ECLOSED') this.#onError(err);
    });
  }

  /** Bytes up to `end` of the active segment were written (and, under 'always', synced). */
  appended(segment: Segment, end: number): void {
    if (this.#syncs === 'always') {
      this.synced(segment, end, true);
      return;
    }
    const p = this.#of(segment);
    if (end - p.kicked < WRITE_BEHIND_BYTES) return;
    const kickFrom = p.kicked;
    const dropFrom = p.dropped;
    // Dropping is left to the fdatasyncs of a log that has them: waiting here would hold a thread.
    const dropTo = this.#syncs === 'none' ? pageFloor(kickFrom) : dropFrom;
    p.kicked = end;
    p.dropped = Math.max(dropFrom, dropTo);
    this.#then(async () => {
      await segment.log.syncRange(kickFrom, end - kickFrom, { write: true });
      if (dropTo <= dropFrom) return;
      await segment.log.syncRange(dropFrom, dropTo - dropFrom, { waitBefore: true, write: true, waitAfter: true });
      await segment.log.advise(dropFrom, dropTo - dropFrom, 'dontneed');
    });
  }

  /** An fdatasync made the first `end` bytes of `segment` durable (and their pages clean). */
  synced(segment: Segment, end: number, always = false): void {
    const p = this.#of(segment);
    const to = pageFloor(end);
    p.kicked = Math.max(p.kicked, end);
    // Under 'always' this runs after every group: drop in batches, not a call per append.
    if (to - p.dropped < (always ? WRITE_BEHIND_BYTES : 1)) return;
    const from = p.dropped;
    p.dropped = to;
    this.#then(() => segment.log.advise(from, to - from, 'dontneed'));
  }

  /** `segment` is complete (rolled away from): all of it goes once written back. */
  sealed(segment: Segment): void {
    const from = this.#of(segment).dropped;
    this.#progress.delete(segment);
    this.#then(async () => {
      // Length 0: to the end of the file.
      await segment.log.syncRange(from, 0, { waitBefore: true, write: true, waitAfter: true });
      await segment.log.advise(from, 0, 'dontneed');
    });
  }

  /** Forgets `segments` (removed from the log). */
  forget(segments: readonly Segment[]): void {
    for (const s of segments) this.#progress.delete(s);
  }

  /** Forgets every segment (after a truncation); later appends start over. */
  clear(): void {
    this.#progress.clear();
  }

  /** Waits for the background work queued so far. */
  drain(): Promise<void> {
    return this.#chain;
  }
}

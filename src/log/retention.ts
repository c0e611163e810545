// Removing records: from the start (retention by age or size, Kafka's
// DeleteRecords) by dropping whole segments behind a durable start offset,
// and from the end (truncateTo, a follower matching its leader) by deleting
// later segments and cutting the one that holds the offset. Runs as
// exclusive work between append groups.
import { rename, rm } from 'node:fs/promises';
import { SeglogError } from '../errors.js';
import { replaceWithCopy } from '../common/durable-files.js';
import { COPY_SUFFIX, DELETED_SUFFIX, segmentPaths } from '../layout.js';
import { fsyncDir } from '../native.js';
import { Segment, type SegmentConfig } from '../segment/segment.js';
import type { CleanedPoint } from './cleaned-point.js';
import type { LogContext } from './context.js';
import type { LeaderEpochs } from './leader-epochs.js';
import type { Producers } from './producers.js';
import type { LogSegments } from './segments.js';

export class Retention {
  readonly #dir: string;
  readonly #segmentConfig: SegmentConfig;
  readonly #fileDeleteDelayMs: number;
  readonly #segments: LogSegments;
  readonly #epochs: LeaderEpochs;
  readonly #producers: Producers;
  readonly #context: LogContext;
  readonly #cleanedPoint: CleanedPoint;
  /** Puts the log in its failed state and returns the error that stopped it. */
  readonly #fail: (err: unknown) => unknown;

  constructor(
    dir: string,
    segmentConfig: SegmentConfig,
    fileDeleteDelayMs: number,
    parts: { segments: LogSegments; epochs: LeaderEpochs; producers: Producers; context: LogContext; cleanedPoint: CleanedPoint; fail: (err: unknown) => unknown },
  ) {
    this.#dir = dir;
    this.#segmentConfig = segmentConfig;
    this.#fileDeleteDelayMs = fileDeleteDelayMs;
    this.#segments = parts.segments;
    this.#epochs = parts.epochs;
    this.#producers = parts.producers;
    this.#context = parts.context;
    this.#cleanedPoint = parts.cleanedPoint;
    this.#fail = parts.fail;
  }

  /** Removes every record at or after `offset`; a batch holding it goes whole. Returns the new end offset. */
  async truncateTo(offset: number): Promise<number> {
    const segments = this.#segments;
    if (offset >= segments.endOffset) return segments.endOffset;
    if (offset < segments.startOffset) throw new SeglogError('EOFFSETRANGE', `cannot truncate to ${offset}, before the log start ${segments.startOffset}`, { path: this.#dir });
    // Where the cut lands, found before anything is removed (opening the segment if never read since a clean
    // reopen): damage on the way there refuses the truncation with nothing changed.
    const keep = segments.floor(offset);
    await keep.load();
    const cut = await keep.locate(offset);
    // A transfer's end is not the socket's: sendfile(2) returns once the kernel holds the page-cache pages.
    // Cut in place, the folio holding the cut (a page, or up to megabytes with large folios, so even a
    // page-aligned cut) is zeroed past it and then rewritten by appends, under bytes a slow receiver has yet
    // to read. So the kept bytes move to a new inode first; the old one's pages stay as they were. Done
    // before anything changes, so a failed copy (ENOSPC) leaves the log as it was.
    if (cut !== undefined && cut.position > 0) await replaceWithCopy(keep.log.path, keep.log.path + COPY_SUFFIX);
    const doomed = segments.takeAfter(offset);
    for (const s of doomed) await s.delete();
    // Gone for good before the kept segment is cut: a power cut in between leaves a prefix of the log, not a gap.
    if (doomed.length > 0) await fsyncDir(this.#dir);
    // Cut through a new Segment (writable: it is the active one now), published only once cut: closing the
    // old one waits for the reads and sendTo transfers under way on it, so none sees bytes change under it.
    const kept = segments.replacing();
    await kept.close();
    let segment: Segment | undefined;
    let end: number;
    try {
      segment = await Segment.open(this.#dir, kept.baseOffset, this.#segmentConfig, true);
      end = await segment.truncateTo(offset);
      // Durable before it is reported, or a power cut could bring the cut records back (fdatasync persists the new size).
      await segment.log.datasync();
    } catch (err) {
      await segment?.close().catch(() => undefined);
      throw this.#fail(err);
    }
    segments.replaceActive(segment, end);
    // What the cut left of a cleaned segment keeps its gaps; what is appended after it must not have any.
    if (this.#cleanedPoint.offset > end) await this.#cleanedPoint.set(end).catch((err) => Promise.reject(this.#fail(err)));
    // After the cut (a crash between leaves epochs past the end, which open drops), before any append: an epoch
    // left in the file at an offset that later appends of an older epoch fill would outlive a crash.
    await this.#epochs.truncateFromEnd(end).catch((err) => Promise.reject(this.#fail(err)));
    // Producer state as of the new end, before any append is checked against it (a failure leaves it wrong: stop).
    await this.#producers.truncated(segments.all).catch((err) => Promise.reject(this.#fail(err)));
    return end;
  }

  /** Makes every record before `offset` unreadable: the start offset moves there durably, then whole segments below it go. */
  async deleteRecordsBefore(offset: number): Promise<number> {
    const segments = this.#segments;
    if (offset > segments.endOffset) {
      throw new SeglogError('EOFFSETRANGE', `cannot delete records before ${offset}, past the log end ${segments.endOffset}`, { path: this.#dir });
    }
    if (segments.raiseStart(offset)) await this.#context.persistStartOffset(offset);
    await this.#removeSegmentsBelow(segments.startOffset);
    await this.#epochs.truncateFromStart(segments.startOffset);
    await this.#producers.startMoved(segments.all[0]!.baseOffset);
    return segments.startOffset;
  }

  /**
   * Deletes whole oldest segments (never the active one) while they are
   * older than `retentionMs` at `now` (by their newest record) or the log is
   * larger than `retentionBytes`. Returns the number of segments removed.
   */
  async apply(retentionMs: number, retentionBytes: number, now: number): Promise<number> {
    const all = this.#segments.all;
    let size = this.#segments.size;
    let cut = 0;
    for (const s of all.slice(0, -1)) {
      const expired = s.maxTimestamp >= 0 && now - s.maxTimestamp > retentionMs;
      const oversize = size - s.size >= retentionBytes;
      if (!expired && !oversize) break;
      size -= s.size;
      cut++;
    }
    if (cut === 0) return 0;
    const newStart = all[cut]!.baseOffset;
    if (this.#segments.raiseStart(newStart)) await this.#context.persistStartOffset(newStart);
    const removed = await this.#removeSegmentsBelow(newStart);
    // After the start offset is durable: epochs below it that a crash leaves in the file, open drops.
    await this.#epochs.truncateFromStart(newStart);
    await this.#producers.startMoved(newStart);
    return removed;
  }

  /**
   * Removes inactive segments that hold nothing at or after `start`: renamed
   * to *.deleted at once (a crash cannot bring them back), closed once calls
   * under way on them finish, unlinked after fileDeleteDelayMs.
   */
  async #removeSegmentsBelow(start: number): Promise<number> {
    const doomed = this.#segments.takeBelow(start);
    if (doomed.length === 0) return 0;
    const renamed: string[] = [];
    for (const s of doomed) {
      for (const path of Object.values(segmentPaths(this.#dir, s.baseOffset))) {
        await rename(path, path + DELETED_SUFFIX).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
        renamed.push(path + DELETED_SUFFIX);
      }
    }
    await fsyncDir(this.#dir);
    // Not awaited: a slow reader of these files must not hold up appends.
    for (const s of doomed) void s.close().catch(() => undefined);
    this.#context.scheduler.once(this.#fileDeleteDelayMs, async () => {
      await Promise.all(renamed.map((p) => rm(p, { force: true })));
      await fsyncDir(this.#dir);
    });
    return doomed.length;
  }
}

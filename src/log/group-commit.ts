// Committing a group of queued appends: number the batches from the log end,
// roll to a new segment when the active one is full or old, write the group
// with one pwritev, under 'always' fdatasync it, then publish it (readers and
// followers see it) and settle its appends. Under 'always' the fdatasync is
// pipelined: the next group is written while it runs, and waits for the next
// one. A failed write leaves no partial batch; a failed fdatasync stops the
// log, and no group written before it settled is acknowledged. A segment is
// durable before the next one is created, so the segments on disk never leave
// a hole.
import { loopTurnDue } from '../common/loop-turns.js';
import { SeglogError } from '../errors.js';
import { freeBytes } from '../native.js';
import type { BatchHeader } from '../segment/batch.js';
import { Segment, type SegmentConfig } from '../segment/segment.js';
import type { AppendResult, PendingAppend } from './append-queue.js';
import type { Flusher } from './flusher.js';
import type { EpochEntry, LeaderEpochs } from './leader-epochs.js';
import { INT32_MAX, type LogConfig } from './options.js';
import { number } from './numbering.js';
import type { Producers } from './producers.js';
import type { LogSegments } from './segments.js';

/** Most bytes one group commit writes with one pwritev. */
const MAX_GROUP_BYTES = 16 * 1024 * 1024;
/**
 * Groups up to this size are written on the event loop: a page-cache copy of
 * 2 MiB takes a few hundred microseconds, less than a threadpool round trip
 * costs a small group (~40 us) times the groups it would hold up. Larger
 * groups go to the threadpool. An inline write that took over INLINE_SLOW_MS
 * was either preempted (a busy CPU: the threadpool would not help) or held
 * by the kernel throttling dirty pages (which would stall the event loop
 * write after write): the next group goes to the threadpool, timed, to tell
 * which. When that one is slow too, writes stay on the threadpool for a
 * while, doubling with each slow probe in a row and reset by a fast write.
 */
const INLINE_WRITE_BYTES = 2 * 1024 * 1024;
const INLINE_SLOW_MS = 4;
const INLINE_BACKOFF_MS = { first: 50, most: 2000 };
/**
 * Most bytes a full segment takes beyond segmentBytes (an eighth of it at most) while the fdatasync ahead
 * of its roll runs; none below ROLL_SLACK_FROM, whose fdatasync is short enough to wait for.
 */
const ROLL_SLACK_BYTES = 128 * 1024 * 1024;
const ROLL_SLACK_FROM = 16 * 1024 * 1024;

/** A group on file, to be published and settled (under 'always': once an fdatasync begun after its write returned). */
interface Written {
  group: PendingAppend[];
  results: AppendResult[];
  position: number;
  chunks: Uint8Array[];
  headers: BatchHeader[];
  endOffset: number;
  bytes: number;
  records: number;
}

export class GroupCommit {
  readonly #dir: string;
  readonly #config: LogConfig;
  readonly #segmentConfig: SegmentConfig;
  readonly #segments: LogSegments;
  readonly #flusher: Flusher;
  readonly #epochs: LeaderEpochs;
  readonly #producers: Producers;
  /** Puts the log in its failed state and returns the error that stopped it. */
  readonly #fail: (err: unknown) => unknown;
  readonly #failure: () => unknown;
  /** Settled appends leave the queue (see AppendQueue.settled). */
  readonly #settled: (appends: readonly PendingAppend[]) => void;
  /** Resolves once nothing stops a write any more (the clean-shutdown marker is gone); undefined when nothing does. */
  readonly #beforeWrite: () => Promise<void> | undefined;
  #freeSpaceUnknown = false;
  /** Until then (performance.now()), writes go to the threadpool: an inline write was slow. */
  #inlineAfter = 0;
  /** The last back-off from inline writes (ms), 0 after a fast write. */
  #backoff = 0;
  /** An inline write was slow: the next group goes to the threadpool, timed, to see whether the disk is. */
  #probing = false;
  /** Under 'always': groups written and not yet settled, oldest first; the first ones may be in the fdatasync under way. */
  readonly #written: Written[] = [];
  /** The fdatasync of the full active segment begun ahead of its roll (see #rollIfNeeded). */
  #rollSync: { segment: Segment; done: boolean } | undefined;
  /** The fdatasync pass under way, if any (see #syncWritten). */
  #syncing: Promise<void> | undefined;

  constructor(
    dir: string,
    config: LogConfig,
    segmentConfig: SegmentConfig,
    parts: {
      segments: LogSegments;
      flusher: Flusher;
      epochs: LeaderEpochs;
      producers: Producers;
      fail: (err: unknown) => unknown;
      failure: () => unknown;
      settled: (appends: readonly PendingAppend[]) => void;
      beforeWrite: () => Promise<void> | undefined;
    },
  ) {
    this.#dir = dir;
    this.#config = config;
    this.#segmentConfig = segmentConfig;
    this.#segments = parts.segments;
    this.#flusher = parts.flusher;
    this.#epochs = parts.epochs;
    this.#producers = parts.producers;
    this.#fail = parts.fail;
    this.#failure = parts.failure;
    this.#settled = parts.settled;
    this.#beforeWrite = parts.beforeWrite;
  }

  /**
   * Takes the appends that one pwritev can write into one segment and
   * commits them. Under 'always' it returns once the group is written: its
   * fdatasync runs while the next group is written (see #syncWritten).
   */
  async commit(take: (room: number) => PendingAppend[]): Promise<void> {
    const taken = take(Math.min(this.#sizeLimit(this.#segments.active) - this.#segments.active.size, MAX_GROUP_BYTES));
    let group = this.#admit(taken);
    let handedOver = false;
    try {
      if (group.length === 0) return;
      this.#throwIfFailed();
      const unblocked = this.#beforeWrite();
      if (unblocked !== undefined) await unblocked;
      // Offsets go on from the last group written, published or not.
      const firstOffset = this.#written.at(-1)?.endOffset ?? this.#segments.endOffset;
      // Producer rules see every append ahead of this group (written, synced or not) and the group's earlier ones.
      const draft = group.some((a) => a.producers) ? this.#producers.draft() : undefined;
      const numbered = number(group, firstOffset, this.#epochs.last, draft);
      if (numbered.refused.length > 0) {
        this.#settled(numbered.refused);
        group = group.filter((a) => !numbered.refused.includes(a));
      }
      const { headers, results, endOffset, records, epochs, writes } = numbered;
      const chunks = writes.map((a) => a.data);
      const bytes = chunks.reduce((n, c) => n + c.length, 0);
      const { active, position } = await this.#writeGroup(chunks, headers, bytes, firstOffset, endOffset, epochs);
      // The data is on file: state that does not follow it would answer retries wrongly, so a failure here stops the log.
      const indexed = draft === undefined ? undefined : this.#producers.written(draft, active);
      if (indexed !== undefined) await indexed.catch((err) => Promise.reject(this.#fail(err)));
      const written = { group, results, position, chunks, headers, endOffset, bytes, records };
      if (!this.#config.flush.always) {
        this.#publish(written);
        return;
      }
      this.#written.push(written);
      handedOver = true;
      this.#syncWritten();
    } catch (err) {
      for (const a of group) a.reject(err);
    } finally {
      if (!handedOver) this.#settled(group);
    }
  }

  /** Rolls if needed, records the group's new epochs and writes its chunks (none: all duplicates) to the active segment: which one, and where. */
  async #writeGroup(
    chunks: Uint8Array[],
    headers: BatchHeader[],
    bytes: number,
    firstOffset: number,
    endOffset: number,
    epochs: EpochEntry[],
  ): Promise<{ active: Segment; position: number }> {
    if (chunks.length === 0) return { active: this.#segments.active, position: this.#segments.active.size };
    await this.#rollIfNeeded(bytes, endOffset - 1);
    // A new epoch is durable before its first batch is written: after a crash the checkpoint misses no epoch of the data.
    if (epochs.length > 0) await this.#epochs.assign(epochs).catch((err) => Promise.reject(this.#fail(err)));
    const active = this.#segments.active;
    const position = active.size;
    try {
      await this.#write(active, chunks, headers, bytes);
    } catch (err) {
      // No partial batch may stay: cut the file back to the last good end, or stop. Nor an epoch the file lost.
      await active.log.truncate(active.size).catch((cutErr) => this.#fail(cutErr));
      if (epochs.length > 0) await this.#epochs.truncateFromEnd(firstOffset).catch((cutErr) => this.#fail(cutErr));
      throw err;
    }
    return { active, position };
  }

  /**
   * The appends of `taken` whose batches keep the log's epochs from going
   * back (Kafka fences a leader with an older epoch); the others are refused
   * whole, EFENCEDLEADEREPOCH, and settled. Batches without an epoch (-1) are
   * not tracked.
   */
  #admit(taken: PendingAppend[]): PendingAppend[] {
    let floor = this.#epochs.last;
    let refused: PendingAppend[] | undefined;
    for (const a of taken) {
      const epoch = epochAfter(a, floor);
      if (epoch !== undefined) {
        floor = epoch;
        continue;
      }
      a.reject(new SeglogError('EFENCEDLEADEREPOCH', `a batch's leader epoch is older than the log's latest epoch (${floor}) or than the batch before it`));
      (refused ??= []).push(a);
    }
    if (refused === undefined) return taken;
    this.#settled(refused);
    return taken.filter((a) => !refused.includes(a));
  }

  /** Resolves once every written group has been synced (or rejected) and settled: rolls and exclusive work wait for it. */
  async idle(): Promise<void> {
    while (this.#syncing !== undefined) await this.#syncing;
  }

  #throwIfFailed(): void {
    const failure = this.#failure();
    if (failure !== undefined) throw failure;
  }

  /**
   * Under 'always': one fdatasync at a time covers every group written before
   * it began; groups written meanwhile wait for the next one. Each group is
   * acknowledged after an fdatasync that began once its write had returned,
   * in write order, and only while the log has not failed: after a failed
   * fdatasync (here or in the flusher) a later one may succeed without the
   * lost pages, so nothing written before it is ever acknowledged.
   */
  #syncWritten(): void {
    if (this.#syncing !== undefined || this.#written.length === 0) return;
    const covered = this.#written.length;
    // Every written group is in the active segment: a roll waits for idle() first.
    const file = this.#segments.active.log;
    this.#syncing = (async () => {
      let failure = this.#failure();
      if (failure === undefined) {
        try {
          await file.datasync();
        } catch (err) {
          this.#fail(err);
        }
        failure = this.#failure();
      }
      if (failure === undefined) {
        for (const w of this.#written.splice(0, covered)) this.#publish(w);
        return;
      }
      for (const w of this.#written.splice(0)) {
        for (const a of w.group) a.reject(failure);
        this.#settled(w.group);
      }
    })().finally(() => {
      this.#syncing = undefined;
      this.#syncWritten();
    });
  }

  /** Only bytes on file (under 'always': durable) are published, before readers can ask for them; then the appends settle. */
  #publish(w: Written): void {
    try {
      if (w.chunks.length > 0) {
        this.#segments.appended(w.position, w.chunks, w.headers, w.endOffset);
        this.#flusher.written(w.bytes, w.records, w.endOffset);
      }
      w.group.forEach((a, i) => a.resolve(w.results[i]!));
    } catch (err) {
      for (const a of w.group) a.reject(err);
    } finally {
      this.#settled(w.group);
    }
  }

  /** Writes inline when the group is small and the page cache takes writes quickly, else on the threadpool. */
  #write(active: Segment, chunks: Uint8Array[], headers: BatchHeader[], bytes: number): Promise<void> | undefined {
    const start = performance.now();
    if (bytes > INLINE_WRITE_BYTES || active.log.direct) return active.append(chunks, headers);
    if (this.#probing) return this.#probeWrite(active, chunks, headers, start);
    if (start < this.#inlineAfter) return active.append(chunks, headers);
    // Nothing is written yet: the group waits for the turn as it is, numbered, in its segment.
    const turn = loopTurnDue(start);
    if (turn !== undefined) return turn.then(() => this.#write(active, chunks, headers, bytes));
    active.appendNow(chunks, headers);
    const end = performance.now();
    if (end - start <= INLINE_SLOW_MS) this.#backoff = 0;
    else this.#probing = true;
    return undefined;
  }

  /** A write on the threadpool after a slow inline one: slow as well, the disk is holding writes, so they stay off the event loop for a while. */
  async #probeWrite(active: Segment, chunks: Uint8Array[], headers: BatchHeader[], start: number): Promise<void> {
    this.#probing = false;
    await active.append(chunks, headers);
    const end = performance.now();
    if (end - start <= INLINE_SLOW_MS) {
      this.#backoff = 0;
      return;
    }
    this.#backoff = Math.min(INLINE_BACKOFF_MS.most, this.#backoff === 0 ? INLINE_BACKOFF_MS.first : 2 * this.#backoff);
    this.#inlineAfter = end + this.#backoff;
  }

  async #rollIfNeeded(bytes: number, lastOffset: number, now = Date.now()): Promise<void> {
    const s = this.#segments.active;
    if (s.isEmpty) return;
    const old = s.firstAppendAt !== undefined && now - s.firstAppendAt >= this.#config.segmentMs;
    // Relative offsets in the indexes are i32.
    const overflow = lastOffset - s.baseOffset > INT32_MAX;
    if (old || overflow || s.indexesFull) return this.roll();
    if (s.size + bytes <= this.#config.segmentBytes) return;
    // Its roll waits for an fdatasync of all of it (under 'always' done already). That fdatasync is begun now, off
    // the append path, and appends go on into the segment (see #sizeLimit); the roll then finds little left to
    // sync. The next segment is still created only once this one is durable.
    if (this.#config.flush.always || s.size + bytes > this.#slackLimit()) return this.roll();
    if (this.#rollSync?.segment !== s) {
      const sync = { segment: s, done: false };
      this.#rollSync = sync;
      s.log.datasync().then(
        () => (sync.done = true),
        // A segment closed meanwhile (close, truncateTo, retention) needs no sync; any other failure stops the log.
        (err: SeglogError) => (err.code === 'ECLOSED' ? undefined : this.#fail(err)),
      );
    }
    if (this.#rollSync.done) return this.roll();
  }

  /** The size the active segment `s` may reach: segmentBytes, or more while the fdatasync ahead of its roll runs. */
  #sizeLimit(s: Segment): number {
    return this.#rollSync?.segment === s && !this.#rollSync.done ? this.#slackLimit() : this.#config.segmentBytes;
  }

  /** segmentBytes and up to an eighth more (ROLL_SLACK_BYTES at most; positions in the indexes are i32). */
  #slackLimit(): number {
    const segmentBytes = this.#config.segmentBytes;
    if (segmentBytes < ROLL_SLACK_FROM) return segmentBytes;
    return segmentBytes + Math.min(Math.floor(segmentBytes / 8), ROLL_SLACK_BYTES, INT32_MAX - segmentBytes);
  }

  /** Said once per log: the minFreeBytes floor cannot apply where the filesystem reports no size. */
  #warnFreeSpaceUnknown(): void {
    if (this.#freeSpaceUnknown) return;
    this.#freeSpaceUnknown = true;
    process.emitWarning(`the filesystem of ${this.#dir} reports no size (0 total blocks): free space is unknown, so minFreeBytes does not apply`, {
      code: 'SEGLOG_FREE_SPACE_UNKNOWN',
    });
  }

  /** Starts a new active segment at the log end (a no-op when the active one is empty). Run between groups. */
  async roll(): Promise<void> {
    // Under 'always' the groups written so far are synced first: the sealed segment is durable before the next exists.
    await this.idle();
    this.#throwIfFailed();
    const s = this.#segments.active;
    if (s.isEmpty) return;
    if (this.#config.minFreeBytes > 0) {
      const free = await freeBytes(this.#dir);
      if (free === undefined) this.#warnFreeSpaceUnknown();
      else if (free < this.#config.minFreeBytes) {
        throw new SeglogError('ENOSPC', `refusing to roll ${this.#dir}: ${free} bytes free, below the floor of ${this.#config.minFreeBytes} (minFreeBytes)`, {
          path: this.#dir,
        });
      }
    }
    if (!this.#config.flush.always) {
      // Durable before the next segment exists: a power cut must not leave a later segment behind a hole in this one.
      const size = s.size;
      try {
        await s.log.datasync();
      } catch (err) {
        throw this.#fail(err);
      }
      this.#segments.synced(s, size);
    }
    // The state as of the new segment's base, saved once the sealed segment is durable (Kafka's snapshot on roll).
    await this.#producers.rolled(s, this.#segments.endOffset);
    const next = await Segment.create(this.#dir, this.#segments.endOffset, this.#segmentConfig);
    try {
      await s.seal();
    } catch (err) {
      // The roll did not happen: its files go, or a later truncation would leave them as a segment past the log end.
      await next.delete().catch(() => undefined);
      throw err;
    }
    this.#segments.rolled(next);
    this.#rollSync = undefined;
  }
}

/** The newest epoch once `a`'s batches follow `floor`; undefined when one goes back. */
function epochAfter(a: PendingAppend, floor: number): number | undefined {
  let epoch = floor;
  for (const { header } of a.checks) {
    const e = header.partitionLeaderEpoch;
    if (e < 0) continue;
    if (e < epoch) return undefined;
    epoch = e;
  }
  return epoch;
}

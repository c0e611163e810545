// Log: one partition as a directory of segments, Kafka's UnifiedLog in
// small. This facade checks every argument, owns the lifecycle (open, close)
// and the failed state (fail-stop), and hands the work to the parts below:
//   loader.ts        open + recovery            segments.ts   the segment set and its events
//   append-queue.ts  call order, backpressure   group-commit.ts  numbering, pwritev, sync, roll
//   flusher.ts       fdatasync policy           reader.ts     read, sendTo, time lookup
//   follow.ts        batches(), records()       retention.ts  retention, truncation
//   append-checks.ts Kafka's checks of appends  leader-epochs.ts  epochs, leader-epoch-checkpoint
//   high-watermark.ts the HW, 'auto' or 'manual' isolation.ts  how far each isolation level reads
//   producers.ts     producer state, transactions, snapshots, .txnindex
//   cleaner.ts       compaction passes (cleaned-swap.ts, key-map.ts, cleaned-point.ts)
import type { Writable } from 'node:stream';
import { logCacheStats } from '../cache/group.js';
import type { AppendMemory, LogCache } from '../cache/log-cache.js';
import { residency, type CacheStats, type Residency } from '../cache/stats.js';
import { SeglogError } from '../errors.js';
import type { LogRecord, RecordInput } from '../segment/batch.js';
import { checkInteger, checkOptions, checkString } from '../validate.js';
import { appendRulesOf, prepareBatches, prepareControl, prepareRecords, type AppendRules } from './append-checks.js';
import { AppendQueue, type AppendResult, type PreparedAppend } from './append-queue.js';
import { MarkerOnOpen, writeCleanShutdown } from './clean-shutdown.js';
import { Cleaner, type CompactionState, type CompactResult } from './cleaner.js';
import { EncodeRing } from './encode-ring.js';
import type { LogContext } from './context.js';
import { Flusher } from './flusher.js';
import { batches, Followers, records, type FollowSource, type LogBatch } from './follow.js';
import { GroupCommit } from './group-commit.js';
import { HighWatermark } from './high-watermark.js';
import { ReadIsolation, type IsolationLevel } from './isolation.js';
import { loadLog, segmentConfigOf, type LoadedLog, type OffsetRange } from './loader.js';
import { LeaderEpochs, type EpochEnd } from './leader-epochs.js';
import {
  checkCompactOptions,
  checkLogOptions,
  NEVER,
  syncPolicyOf,
  INT32_MAX,
  type AppendBatchesOptions,
  type AppendOptions,
  type CleanupPolicy,
  type CompactOptions,
  type ControlOptions,
  type LogConfig,
  type LogOptions,
  type RecordsOptions,
  type RetentionPolicy,
} from './options.js';
import { checkReadBounds, LogReader, type ReadBounds, type ReadOptions, type ReadResult, type SendToOptions, type SendToResult } from './reader.js';
import type { ProducerInfo } from './producer-state.js';
import type { Producers } from './producers.js';
import { Retention } from './retention.js';
import { LogSegments } from './segments.js';
import type { AbortedTransaction } from './transactions.js';

export type { AppendResult } from './append-queue.js';
export type { LogContext } from './context.js';
export type { OffsetRange } from './loader.js';
export type { ProducerInfo } from './producer-state.js';
export type { AbortedTransaction } from './transactions.js';
export type { CompactionState, CompactResult } from './cleaner.js';
export type { AppendBatchesOptions, AppendOptions, CompactOptions, CleanupPolicy, ControlOptions, FlushPolicy, LogOptions, RecordsOptions, RetentionPolicy, TimestampType } from './options.js';
export type { EpochEnd } from './leader-epochs.js';
export type { HighWatermarkMode } from './high-watermark.js';
export type { IsolationLevel } from './isolation.js';
export type { LogBatch } from './follow.js';
export type { ReadOptions, ReadResult, SendToOptions, SendToResult } from './reader.js';

/** Most encode memory a log reuses (fewer when maxPendingBytes is smaller). */
const ENCODE_RING_BYTES = 8 * 1024 * 1024;

export class Log {
  readonly dir: string;
  /**
   * What `repair: true` gave up on open because segment files were lost:
   * offset ranges, [from, to] inclusive, below a lost first segment (the
   * start offset moved past them) and from a hole further on to the old end
   * (the log was cut there). Empty when no segment was missing.
   */
  readonly missingRanges: readonly OffsetRange[];
  readonly #config: LogConfig;
  readonly #rules: AppendRules;
  readonly #context: LogContext;
  readonly #ownContext: boolean;
  readonly #segments: LogSegments;
  /** Where reads come from and what happens to written pages (src/cache/). */
  readonly #cache: LogCache;
  readonly #flusher: Flusher;
  readonly #queue: AppendQueue;
  /** Memory appends encode into, reused once each append settled: the own cache's tail, else a ring. */
  readonly #appendMemory: AppendMemory;
  readonly #commit: GroupCommit;
  readonly #reader: LogReader;
  readonly #followers: Followers;
  readonly #retention: Retention;
  readonly #cleaner: Cleaner;
  readonly #epochs: LeaderEpochs;
  readonly #highWatermark: HighWatermark;
  /** The bound of each isolation level, the transaction side from the producer state. */
  readonly #isolation: ReadIsolation;
  readonly #producers: Producers;
  /** The clean-shutdown marker open found, until the first write removes it. */
  readonly #marker: MarkerOnOpen;
  readonly #cancelInterval: (() => void) | undefined;
  /** Set by a failed fdatasync (or a failed cleanup of a failed write): the log stops accepting appends. */
  #failure: unknown;
  #closing: Promise<void> | undefined;

  private constructor(dir: string, config: LogConfig, loaded: LoadedLog) {
    this.dir = dir;
    this.missingRanges = loaded.missing;
    this.#config = config;
    this.#rules = appendRulesOf(config);
    const context = loaded.context;
    this.#context = context;
    this.#ownContext = loaded.ownContext;
    const fail = (err: unknown) => this.#fail(err);
    const failure = () => this.#failure;
    const segmentConfig = segmentConfigOf(config, loaded.cleanedPoint);
    this.#marker = new MarkerOnOpen(dir, loaded.markerOnDisk, fail);
    const segments = new LogSegments(loaded.segments, context.logStartOffset);
    this.#segments = segments;
    this.#cache = context.cache.attach(fail, syncPolicyOf(config.flush), config.maxPendingBytes);
    this.#flusher = new Flusher(segments, loaded.durableEnd, config.flush, fail, failure);
    const followers = (this.#followers = new Followers());
    this.#epochs = loaded.epochs;
    this.#producers = loaded.producers;
    this.#highWatermark = new HighWatermark(segments, config.highWatermark, context.highWatermark, () => followers.wakeAll());
    this.#isolation = new ReadIsolation(segments, this.#highWatermark, this.#producers);
    segments.listen(this.#cache);
    segments.listen(this.#producers.txnIndexes);
    segments.listen(this.#flusher);
    // Before the followers: what an append publishes, its epoch included, is there when they wake.
    segments.listen(this.#epochs);
    segments.listen(this.#highWatermark);
    segments.listen(followers);
    this.#appendMemory = this.#cache.appendMemory ?? new EncodeRing(Math.min(config.maxPendingBytes, ENCODE_RING_BYTES));
    this.#queue = new AppendQueue(config.maxPendingBytes, (take) => this.#commit.commit(take), (data) => this.#appendMemory.release(data));
    this.#commit = new GroupCommit(dir, config, segmentConfig, {
      segments,
      flusher: this.#flusher,
      epochs: this.#epochs,
      producers: this.#producers,
      fail,
      failure,
      settled: (appends) => this.#queue.settled(appends),
      beforeWrite: () => this.#marker.beforeWrite(),
    });
    this.#reader = new LogReader(dir, segments, this.#cache, () => this.#checkOpen());
    this.#retention = new Retention(dir, segmentConfig, config.fileDeleteDelayMs, {
      segments,
      epochs: this.#epochs,
      producers: this.#producers,
      context,
      cleanedPoint: loaded.cleanedPoint,
      fail,
    });
    this.#cleaner = new Cleaner(dir, config, segmentConfig, {
      segments,
      point: loaded.cleanedPoint,
      txnIndexes: this.#producers.txnIndexes,
      lastStableOffset: () => this.#isolation.lastStableOffset,
      skipped: (from, to) => this.#isolation.skipped(from, to),
      producerLastOffsets: () => this.#producers.list().map((p) => p.lastOffset),
      fail,
      exclusive: (work) => this.#exclusive(work),
      dropPages: this.#cache.mode === 'own',
    });
    const intervalMs = config.flush.intervalMs;
    this.#cancelInterval = intervalMs === NEVER ? undefined : context.scheduler.every(intervalMs, () => this.#flusher.flush());
  }

  /**
   * Opens the log in `dir`, creating it if needed. After an unclean shutdown
   * (no clean-shutdown marker) every segment from the recovery point on is
   * scanned: torn tails are cut, indexes rebuilt, and corruption followed by
   * valid data is refused (ECORRUPT) unless `repair`.
   */
  static async open(dir: string, options?: LogOptions, context?: LogContext): Promise<Log> {
    checkString('dir', dir);
    const config = checkLogOptions(options);
    return new Log(dir, config, await loadLog(dir, config, context));
  }

  /** First offset still in the log. */
  get startOffset(): number {
    return this.#segments.startOffset;
  }

  /** Offset the next appended record will get. */
  get endOffset(): number {
    return this.#segments.endOffset;
  }

  /** Every offset below this has been made durable with fdatasync (Kafka's recovery point). */
  get flushedOffset(): number {
    return this.#flusher.flushedOffset;
  }

  /** Kafka's high watermark, where 'uncommitted' reads stop: the log end under 'auto' (see LogOptions.highWatermark), else where setHighWatermark() put it. */
  get highWatermark(): number {
    return this.#highWatermark.offset;
  }

  /** Kafka's last stable offset, where 'committed' reads stop: the high watermark, or the first undecided transaction's first offset below it. */
  get lastStableOffset(): number {
    return this.#isolation.lastStableOffset;
  }

  /** Under highWatermark 'manual', moves it forward to `offset` clamped to [startOffset, endOffset] (never back: only truncateTo lowers it); returns it. */
  setHighWatermark(offset: number): number {
    this.#checkOpen();
    checkInteger('offset', offset);
    if (!this.#highWatermark.manual) {
      throw new SeglogError('EINVAL', `setHighWatermark needs options.highWatermark 'manual': under 'auto' it follows the log end (${this.dir})`, { path: this.dir });
    }
    return this.#highWatermark.set(offset);
  }

  /** The newest leader epoch of the log's data (appends stamped with one, or batches that carried one); -1 when none. */
  get latestEpoch(): number {
    return this.#epochs.latest;
  }

  /**
   * Kafka's OffsetsForLeaderEpoch answer for `epoch`: the largest epoch of
   * the log <= `epoch`, and where it ends (the start offset of the next
   * epoch, or endOffset for the latest). An epoch below the first the log
   * knows gets itself back with the first epoch's start offset; -1 (none)
   * and epochs past the latest get { epoch: -1, endOffset: -1 }.
   */
  endOffsetForEpoch(epoch: number): EpochEnd {
    this.#checkOpen();
    checkInteger('epoch', epoch, -1, INT32_MAX);
    return this.#epochs.endOffsetFor(epoch, this.endOffset);
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The error that stopped the log (a failed fdatasync), or undefined while healthy. */
  get failure(): unknown {
    return this.#failure;
  }

  /** Number of segments, the active one included. */
  get segmentCount(): number {
    return this.#segments.count;
  }

  /** Total bytes of all .log files. */
  get size(): number {
    return this.#segments.size;
  }

  /** This log's read counters and cache memory (see CacheStats); the same figures in both cache modes. */
  cacheStats(): CacheStats {
    return logCacheStats(this.#cache);
  }

  /** How much of the log's .log files sits in the page cache now (mincore). */
  residency(): Promise<Residency> {
    try {
      this.#checkOpen();
      return residency(this.#segments.all);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw new SeglogError('ECLOSED', `log is closed: ${this.dir}`, { path: this.dir });
  }

  #checkWritable(): void {
    this.#checkOpen();
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Enters the failed state: every queued and later append is rejected with `err`. */
  #fail(err: unknown): unknown {
    if (this.#failure === undefined) {
      this.#failure = err;
      this.#queue.rejectAppends(err);
    }
    return this.#failure;
  }

  /**
   * Encodes `records` as one batch at the log end and writes it. Refused
   * before anything is queued: a batch over maxMessageBytes
   * (ERECORDTOOLARGE), timestamps outside the log's bounds
   * (EINVALIDTIMESTAMP); at its turn, a leaderEpoch below the log's latest
   * (EFENCEDLEADEREPOCH).
   */
  append(records: RecordInput[], options?: AppendOptions): Promise<AppendResult> {
    try {
      this.#checkWritable();
      // Encoded and checked before queueing, so a bad record is rejected at once.
      return this.#enqueue(prepareRecords(records, options, this.#config.compression, this.#rules, this.#appendMemory));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * A broker's path: appends one or more already-encoded v2 batches, after
   * checking size, magic, CRC and header fields, and for a producer's
   * batches (origin 'client') what append() is refused for and the record
   * counts (ECORRUPT). Offsets are assigned by rewriting each baseOffset;
   * `leaderEpoch` is written into each batch; under LogAppendTime, or with
   * `logAppendTime`, each batch is stamped (CRC recomputed). All or nothing.
   */
  appendBatches(buffer: Uint8Array, options?: AppendBatchesOptions): Promise<AppendResult> {
    try {
      this.#checkWritable();
      return this.#enqueue(prepareBatches(buffer, options, this.#rules, this.#appendMemory));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  readonly #stillWritable = (): void => this.#checkWritable();

  /** Queues a checked append; throws (the callers' try turns it into a rejection) if it can never fit. */
  #enqueue(prepared: PreparedAppend): Promise<AppendResult> {
    const { data } = prepared;
    if (data.length > this.#config.segmentBytes) {
      this.#appendMemory.release(data);
      throw new RangeError(`append of ${data.length} bytes exceeds segmentBytes ${this.#config.segmentBytes}`);
    }
    return this.#queue.append(prepared, this.#stillWritable);
  }

  /**
   * Writes a transaction marker (Kafka's WriteTxnMarkers): a control batch
   * that commits or aborts the producer's open transaction (an aborted one
   * goes to the segment's .txnindex). A marker of a producer with no open
   * transaction is written and changes nothing; an epoch older than the
   * producer's is EPRODUCERFENCED.
   */
  appendControl(marker: ControlOptions): Promise<AppendResult> {
    try {
      this.#checkWritable();
      return this.#enqueue(prepareControl(marker, this.#appendMemory));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The producers the log remembers (idempotence and transactions), least recently appending first. */
  producerState(): ProducerInfo[] {
    this.#checkOpen();
    return this.#producers.list();
  }

  /**
   * The first offset of the earliest transaction still open, or ended by a
   * marker the high watermark has not passed (the last stable offset stays
   * below it); undefined when there is none.
   */
  firstUnstableOffset(): number | undefined {
    return this.#producers.firstUnstableOffset(this.#highWatermark.offset);
  }

  /** The aborted transactions with records in [fromOffset, toOffset), by first offset, from the .txnindex files (what a Fetch response lists). */
  abortedTransactions(fromOffset: number, toOffset: number): AbortedTransaction[] {
    this.#checkOpen();
    checkInteger('fromOffset', fromOffset);
    checkInteger('toOffset', toOffset);
    return this.#producers.abortedTransactions(fromOffset, toOffset);
  }

  /** Starts a new active segment at the log end (a no-op when the active one is empty). */
  roll(): Promise<void> {
    return this.#exclusive(() => this.#commit.roll());
  }

  /** Runs `work` alone between append groups once the log is known writable; a throw here is a rejection. */
  #exclusive<T>(work: () => Promise<T>, check?: () => void): Promise<T> {
    try {
      this.#checkWritable();
      check?.();
      // After every group written before it has settled (under 'always' its fdatasync may still run), and
      // once the clean-shutdown marker is gone: all exclusive work may change files.
      return this.#queue.exclusive(async () => {
        await this.#commit.idle();
        await this.#marker.beforeWrite();
        return work();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  readonly #boundOf = (level: IsolationLevel): number => this.#isolation.bound(level);

  /** A read's bounds from the caller's arguments: the offset must lie in the log, maxOffset is capped at its isolation level's bound. */
  #bounds(offset: number, options: ReadOptions | undefined): ReadBounds {
    this.#checkOpen();
    return checkReadBounds(offset, options, this.#boundOf);
  }

  /**
   * Bytes of whole batches from the batch holding `offset`, across segment
   * boundaries, up to `maxBytes` (at least one batch), each wholly below the
   * bound of `isolation` (default 'all': the log end). Empty from that bound
   * to the log end; EOFFSETRANGE before the start or past the end.
   */
  async read(offset: number, options?: ReadOptions): Promise<ReadResult> {
    return this.#reader.read(this.#bounds(offset, options));
  }

  /**
   * Sends what read() would return to `socket` without copying it through JS:
   * sendfile(2) on a plain TCP or Unix socket, a copying fallback for TLS and
   * other streams (src/sendfile/send.ts). The batches take their place in the
   * socket's write order at this call, so a header written before and one
   * written after frame them even if the caller does not await. Each segment
   * stays open until the transfer ends, whatever retention or truncation do
   * meanwhile. Bad arguments and an offset outside the log reject without
   * touching the socket; a failure after that destroys it (see sendParts).
   * Each range's batch CRCs are checked the first time it is served after
   * open (bytes this process appended, and segments recovery scanned, count
   * as checked): a damaged batch rejects with ECORRUPT before any byte of
   * the fetch, prefix included, is sent.
   */
  sendTo(socket: Writable, offset: number, options?: SendToOptions): Promise<SendToResult> {
    try {
      const o = checkOptions<SendToOptions>('options', options);
      if (o.prefix !== undefined && typeof o.prefix !== 'function') throw new TypeError('options.prefix must be a function');
      return this.#reader.sendTo(socket, this.#bounds(offset, o), o.prefix);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Decoded batches, each with its header and its records from `fromOffset`
   * on, up to the bound of `isolation` ('committed' leaves out control
   * batches and aborted transactions). With `follow`, waits for that bound to
   * move instead of finishing (until the log closes or `signal` aborts). Keys
   * and values are views of the read buffer, valid while referenced (see LogBatch).
   */
  batches(fromOffset: number, options?: RecordsOptions): AsyncGenerator<LogBatch> {
    return batches(this.#followSource, this.#followers, fromOffset, options);
  }

  /** The records of batches(), one by one (the same options, the same views). */
  records(fromOffset: number, options?: RecordsOptions): AsyncGenerator<LogRecord, undefined> {
    return records(this.#followSource, this.#followers, fromOffset, options);
  }

  readonly #followSource: FollowSource = {
    bound: (isolation) => this.#isolation.bound(isolation),
    closed: () => this.closed,
    read: (offset, maxBytes, isolation) => this.read(offset, { maxBytes, isolation }),
    skipped: (isolation, from, to) => (isolation === 'committed' ? this.#isolation.skipped(from, to) : undefined),
  };

  /** The record at `offset`, or undefined below startOffset and at or past endOffset. Key and value are the caller's copies. */
  readRecord(offset: number): Promise<LogRecord | undefined> {
    try {
      this.#checkOpen();
      checkInteger('offset', offset);
      return this.#reader.readRecord(offset);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** First offset whose record timestamp is >= `timestamp`, or undefined if none is. */
  async offsetForTimestamp(timestamp: number): Promise<number | undefined> {
    this.#checkOpen();
    checkInteger('timestamp', timestamp, -1);
    return this.#reader.offsetForTimestamp(timestamp);
  }

  /**
   * Removes every record at or after `offset` (a follower matching its
   * leader). A batch holding `offset` goes whole, so the new end may be below
   * `offset`. Returns the new endOffset.
   */
  truncateTo(offset: number): Promise<number> {
    return this.#exclusive(
      () => this.#retention.truncateTo(offset),
      () => checkInteger('offset', offset),
    );
  }

  /**
   * Makes every record before `offset` unreadable (Kafka's DeleteRecords):
   * the start offset moves there durably, then whole segments below it go.
   */
  deleteRecordsBefore(offset: number): Promise<number> {
    return this.#exclusive(
      () => this.#retention.deleteRecordsBefore(offset),
      () => checkInteger('offset', offset),
    );
  }

  /**
   * Deletes whole oldest segments (never the active one) while they are older
   * than `retentionMs` (by their newest record) or the log is larger than
   * `retentionBytes`. Returns the number of segments removed.
   */
  applyRetention(policy: RetentionPolicy): Promise<number> {
    let ms = NEVER;
    let bytes = NEVER;
    let now = 0;
    return this.#exclusive(
      () => this.#retention.apply(ms, bytes, now),
      () => {
        const o = checkOptions<RetentionPolicy>('policy', policy);
        ms = o.retentionMs === undefined ? NEVER : checkInteger('policy.retentionMs', o.retentionMs);
        bytes = o.retentionBytes === undefined ? NEVER : checkInteger('policy.retentionBytes', o.retentionBytes);
        now = o.now === undefined ? Date.now() : checkInteger('policy.now', o.now);
      },
    );
  }

  /** Kafka's cleanup.policy of the log (LogOptions.cleanupPolicy). */
  get cleanupPolicy(): CleanupPolicy {
    return this.#config.cleanupPolicy;
  }

  /**
   * One cleaning pass of a compacted log now (see cleaner.ts): below the
   * active segment, the last stable offset and minCompactionLagMs, every key
   * keeps only its latest record, offsets unchanged; tombstones and ended
   * transactions' markers go deleteRetentionMs after the pass that first
   * saw them. Runs beside appends and reads; passes of one log run one at a
   * time. A pass that retention, truncateTo or close() cut short resolves
   * with what it did. EINVAL for a log whose cleanupPolicy has no 'compact'.
   */
  compact(options?: CompactOptions): Promise<CompactResult> {
    try {
      this.#checkWritable();
      const o = checkCompactOptions(options);
      this.#checkCompacted();
      return this.#cleaner.compact({ now: o.now, memoryBytes: o.memoryBytes, bytesPerSecond: o.bytesPerSecond });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** How much a pass at `now` (default: the clock) would find to clean: what a LogStore weighs to pick the log it cleans next. */
  compactionState(now = Date.now()): Promise<CompactionState> {
    try {
      this.#checkOpen();
      checkInteger('now', now);
      this.#checkCompacted();
      return this.#cleaner.state(now);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #checkCompacted(): void {
    if (!this.#config.compacted) throw new SeglogError('EINVAL', `compaction needs options.cleanupPolicy 'compact' or 'compact,delete' (${this.dir})`, { path: this.dir });
  }

  /** Forces every record appended before the call to disk; flushedOffset then covers them. */
  flush(): Promise<void> {
    try {
      this.#checkWritable();
      return this.#flusher.flush();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Lets queued appends finish, makes everything durable, closes the files
   * and writes the clean-shutdown marker, which records each segment for the
   * next open (not after a failure: reopening then runs recovery; nor when
   * the marker open found is still there, nothing having been written since).
   * Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#cleaner.stop();
      while (this.#queue.running !== undefined) await this.#queue.running;
      await this.#commit.idle();
      this.#cancelInterval?.();
      this.#followers.wakeAll();
      let clean = this.#failure === undefined;
      if (clean) await this.#flusher.flush().catch(() => (clean = false));
      await this.#context.cache.detach(this.#cache);
      await Promise.all(this.#segments.all.map((s) => s.close()));
      if (this.#ownContext) this.#context.scheduler.stop();
      const marked = clean && !this.#marker.untouched;
      await this.#producers.close(marked ? { active: this.#segments.active, endOffset: this.endOffset } : undefined);
      if (marked) await writeCleanShutdown(this.dir, this.#segments.all);
    })();
    return this.#closing;
  }
}

// A log's options as callers write them, their defaults, and their checks:
// a bad option is a TypeError/RangeError before anything touches the disk.
import { checkCacheOptions, type CacheConfig, type CacheOptions } from '../cache/options.js';
import type { SyncPolicy } from '../cache/log-cache.js';
import { BATCH_HEADER_SIZE } from '../segment/batch-header.js';
import { checkBoolean, checkInteger, checkOneOf, checkOptions, checkString } from '../validate.js';
import type { HighWatermarkMode } from './high-watermark.js';
import { checkIsolation, type IsolationLevel } from './isolation.js';

export const INT32_MAX = 0x7fffffff;
/** "No limit" for thresholds and retention. */
export const NEVER = Number.MAX_SAFE_INTEGER;

/**
 * When appended data is forced to disk (fdatasync) and what an append's
 * promise means:
 * - 'none': the kernel writes back when it likes; the promise means "written".
 * - { intervalMs, bytes, messages }: fdatasync in the background every
 *   intervalMs and/or once that many bytes or records are unflushed; the
 *   promise still means "written".
 * - 'always': the promise resolves only after the data is durable. Appends
 *   queued meanwhile are group-committed: one pwritev, one fdatasync.
 */
export type FlushPolicy = 'none' | 'always' | { intervalMs?: number; bytes?: number; messages?: number };

export interface LogOptions {
  /**
   * Roll to a new segment before a segment's .log would exceed this. Default 1 GiB. Unless flush is
   * 'always', the roll first waits for an fdatasync of the full segment; that fdatasync starts when the
   * segment fills, and appends go on into it meanwhile, for up to an eighth of segmentBytes (128 MiB at
   * most) more; not below 16 MiB, where that fdatasync is short.
   */
  segmentBytes?: number;
  /** Roll once the active segment's first append is this old. Default 7 days. */
  segmentMs?: number;
  /** Bytes of log between offset index entries. Default 4096. */
  indexIntervalBytes?: number;
  /** Preallocated size of each index file. Default 10 MiB. */
  segmentIndexBytes?: number;
  /** On open, cut corrupt data (and everything after it) instead of refusing to open. Default false. */
  repair?: boolean;
  /** Compression for append(). Default 'none'. */
  compression?: string;
  /** Durability policy. Default 'none'. */
  flush?: FlushPolicy;
  /** Bytes of appends that may wait to be written; further appends wait for room. Default 64 MiB. */
  maxPendingBytes?: number;
  /** Refuse to create a segment when the filesystem has fewer free bytes than this (0: no check). Default 64 MiB. */
  minFreeBytes?: number;
  /** Delay before segment files removed by retention are unlinked. Default 60 s. */
  fileDeleteDelayMs?: number;
  /** Read path and its memory: { mode: 'pagecache' } (default) or { mode: 'own', ... }, see CacheOptions. In a LogStore, set for the whole store. */
  cache?: CacheOptions;
  /** Largest batch an append may write, in bytes with its 12-byte log overhead (Kafka's max.message.bytes); larger is ERECORDTOOLARGE. Default 1048588. */
  maxMessageBytes?: number;
  /** Under CreateTime, refuse (EINVALIDTIMESTAMP) records timestamped more than this many ms before now (Kafka's message.timestamp.before.max.ms). Default: no limit. */
  messageTimestampBeforeMaxMs?: number;
  /** Under CreateTime, refuse (EINVALIDTIMESTAMP) records timestamped more than this many ms after now (message.timestamp.after.max.ms). Default: no limit. */
  messageTimestampAfterMaxMs?: number;
  /** 'CreateTime' (default) keeps the producer's timestamps; 'LogAppendTime' stamps every appended batch with the time of the append (Kafka's message.timestamp.type). */
  messageTimestampType?: TimestampType;
  /**
   * How the high watermark moves: 'auto' (default; a partition with one
   * replica) keeps it at the log end, under flush 'always' the durable end;
   * 'manual' (a replicated partition) moves it only through
   * setHighWatermark(), and a LogStore keeps it in its
   * replication-offset-checkpoint across restarts.
   */
  highWatermark?: HighWatermarkMode;
  /** Forget a producer (its sequences and epoch) once its last batch is this old, unless its transaction is open (Kafka's producer.id.expiration.ms). Default 1 day. */
  producerIdExpirationMs?: number;
  /** Most producers a log remembers; past it the least recently appending ones are forgotten first (never one with an open transaction). Default 100000. */
  maxProducerIds?: number;
  /**
   * Kafka's cleanup.policy: 'delete' (default) removes old segments only
   * through retention; 'compact' keeps the latest record of every key
   * (compact() cleans, and the log refuses records without a key,
   * EINVALIDRECORD); 'compact,delete' does both.
   */
  cleanupPolicy?: CleanupPolicy;
  /** Kafka's min.cleanable.dirty.ratio: a store cleans a compacted log once this share of its cleanable bytes is not yet cleaned. Default 0.5. */
  minCleanableDirtyRatio?: number;
  /** Kafka's min.compaction.lag.ms: a record stays uncompacted for at least this long (by its segment's newest timestamp). Default 0. */
  minCompactionLagMs?: number;
  /** Kafka's max.compaction.lag.ms: a store cleans a log whose uncleaned records are older than this whatever its dirty ratio. Default: no limit. */
  maxCompactionLagMs?: number;
  /** Kafka's delete.retention.ms: how long a tombstone (null value) and an ended transaction's marker stay after the pass that first cleaned them. Default 1 day. */
  deleteRetentionMs?: number;
}

export type CleanupPolicy = 'delete' | 'compact' | 'compact,delete';

export type TimestampType = 'CreateTime' | 'LogAppendTime';

/** Options of Log.append. */
export interface AppendOptions {
  /** The records' timestamp (ms since the epoch) where a record has none. Default: now. */
  timestamp?: number;
  /** The leader epoch to write into the batch (partitionLeaderEpoch) and track; below the log's latest epoch is EFENCEDLEADEREPOCH. Default: none (-1, not tracked). */
  leaderEpoch?: number;
}

/** Options of Log.appendBatches. */
export interface AppendBatchesOptions {
  /**
   * Stamp every batch as LogAppendTime with this timestamp (the CRC is
   * recomputed). Default: keep the producer's times, or the time of the
   * append under messageTimestampType 'LogAppendTime'.
   */
  logAppendTime?: number;
  /**
   * The leader epoch to write into every batch (partitionLeaderEpoch, outside
   * the CRC); below the log's latest epoch is EFENCEDLEADEREPOCH. Default:
   * each batch keeps the epoch it carries (tracked when >= 0).
   */
  leaderEpoch?: number;
  /**
   * Who wrote the batches, as Kafka's append origin: 'client' (default, a
   * producer's batches: checked against maxMessageBytes, the timestamp
   * bounds and the record counts, stamped under LogAppendTime) or
   * 'replication' (a follower copying its leader's batches, which the leader
   * checked and stamped: only size, magic, CRC and header fields are checked,
   * and the bytes are kept as they are but for their offsets).
   */
  origin?: 'client' | 'replication';
}

/** What Log.appendControl writes: a transaction marker (Kafka's WriteTxnMarkers) for a producer. */
export interface ControlOptions {
  producerId: number;
  producerEpoch: number;
  /** COMMIT or ABORT of the producer's open transaction. */
  type: 'commit' | 'abort';
  /** The epoch of the transaction coordinator that wrote it. */
  coordinatorEpoch: number;
  /** The marker's timestamp. Default: now. */
  timestamp?: number;
}

/** Options of Log.records and Log.batches. */
export interface RecordsOptions {
  /** Wait for appends at the end instead of finishing, until the log closes or `signal` aborts. Default false. */
  follow?: boolean;
  signal?: AbortSignal;
  /** Bytes read per step. Default 1 MiB. */
  maxBytes?: number;
  /**
   * How far to read (see IsolationLevel): 'all' (default) to the log end,
   * 'uncommitted' to the high watermark, 'committed' to the last stable
   * offset, leaving out control batches and the batches of aborted
   * transactions. With `follow`, waits for that bound to move.
   */
  isolation?: IsolationLevel;
}

/** Options of Log.compact. */
export interface CompactOptions {
  /** Most memory of the pass's key map (24 bytes a key); a pass cleans as far as the map holds. Default 128 MiB. */
  cleanerMemoryBytes?: number;
  /** Most bytes the pass reads and writes per second. Default: no limit. */
  cleanerBytesPerSecond?: number;
  /** The time to judge minCompactionLagMs and delete horizons against. Default: Date.now(). */
  now?: number;
}

/** The cleaner's own options (a LogStore's, or one compact() call's) checked; undefined stays undefined. */
export function checkCleanerOptions(name: string, o: { cleanerMemoryBytes?: number; cleanerBytesPerSecond?: number }): void {
  if (o.cleanerMemoryBytes !== undefined) checkInteger(`${name}.cleanerMemoryBytes`, o.cleanerMemoryBytes, 1024);
  if (o.cleanerBytesPerSecond !== undefined && o.cleanerBytesPerSecond !== Infinity) checkInteger(`${name}.cleanerBytesPerSecond`, o.cleanerBytesPerSecond, 1);
}

/** The cleaner's key-map memory when cleanerMemoryBytes is not given. */
export const CLEANER_MEMORY_BYTES = 128 * 1024 * 1024;

/** CompactOptions checked, with defaults. */
export function checkCompactOptions(options: unknown): { memoryBytes: number; bytesPerSecond: number; now: number } {
  const o = checkOptions<CompactOptions>('options', options);
  checkCleanerOptions('options', o);
  return {
    memoryBytes: o.cleanerMemoryBytes ?? CLEANER_MEMORY_BYTES,
    bytesPerSecond: o.cleanerBytesPerSecond ?? Infinity,
    now: o.now === undefined ? Date.now() : checkInteger('options.now', o.now),
  };
}

/** What Log.applyRetention removes. */
export interface RetentionPolicy {
  /** Delete segments whose newest record is older than this. Default: keep. */
  retentionMs?: number;
  /** Delete oldest segments while the log stays at least this big without them. Default: keep. */
  retentionBytes?: number;
  /** The time to judge age against. Default: Date.now(). */
  now?: number;
}

export interface FlushConfig {
  always: boolean;
  intervalMs: number;
  bytes: number;
  messages: number;
}

export interface LogConfig {
  segmentBytes: number;
  segmentMs: number;
  indexIntervalBytes: number;
  segmentIndexBytes: number;
  repair: boolean;
  compression: string;
  flush: FlushConfig;
  maxPendingBytes: number;
  minFreeBytes: number;
  fileDeleteDelayMs: number;
  cache: CacheConfig;
  maxMessageBytes: number;
  messageTimestampBeforeMaxMs: number;
  messageTimestampAfterMaxMs: number;
  messageTimestampType: TimestampType;
  highWatermark: HighWatermarkMode;
  producerIdExpirationMs: number;
  maxProducerIds: number;
  cleanupPolicy: CleanupPolicy;
  /** cleanupPolicy includes 'compact'. */
  compacted: boolean;
  minCleanableDirtyRatio: number;
  minCompactionLagMs: number;
  maxCompactionLagMs: number;
  deleteRetentionMs: number;
}

const CLEANUP_POLICIES: readonly CleanupPolicy[] = ['delete', 'compact', 'compact,delete'];
const TIMESTAMP_TYPES: readonly TimestampType[] = ['CreateTime', 'LogAppendTime'];
const HIGH_WATERMARK_MODES: readonly HighWatermarkMode[] = ['auto', 'manual'];

const NO_FLUSH: FlushConfig = { always: false, intervalMs: NEVER, bytes: NEVER, messages: NEVER };

function checkFlushPolicy(policy: unknown): FlushConfig {
  if (policy === undefined || policy === 'none') return NO_FLUSH;
  if (policy === 'always') return { ...NO_FLUSH, always: true };
  if (typeof policy === 'string') throw new RangeError(`options.flush must be 'none', 'always' or an object, got '${policy}'`);
  const o = checkOptions<{ intervalMs?: number; bytes?: number; messages?: number }>('options.flush', policy);
  if (o.intervalMs === undefined && o.bytes === undefined && o.messages === undefined) {
    throw new RangeError('options.flush needs at least one of intervalMs, bytes, messages');
  }
  return {
    always: false,
    intervalMs: o.intervalMs === undefined ? NEVER : checkInteger('options.flush.intervalMs', o.intervalMs, 1),
    bytes: o.bytes === undefined ? NEVER : checkInteger('options.flush.bytes', o.bytes, 1),
    messages: o.messages === undefined ? NEVER : checkInteger('options.flush.messages', o.messages, 1),
  };
}

/** An option's value: its default when absent, else checked by `check`. */
function pick<T>(value: T | undefined, fallback: T, check: (v: T) => T): T {
  return value === undefined ? fallback : check(value);
}

/** A ratio in [0, 1]. */
function checkRatio(name: string, value: unknown): number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw new TypeError(`${name} must be a number`);
  if (value < 0 || value > 1) throw new RangeError(`${name} must be between 0 and 1, got ${value}`);
  return value;
}

export function checkLogOptions(options: unknown): LogConfig {
  const o = checkOptions<LogOptions>('options', options);
  const int = (name: keyof LogOptions, min = 0, max?: number) => (v: number) => checkInteger(`options.${name}`, v, min, max);
  const cleanupPolicy = pick<CleanupPolicy>(o.cleanupPolicy, 'delete', (v) => checkOneOf('options.cleanupPolicy', v, CLEANUP_POLICIES));
  return {
    segmentBytes: pick(o.segmentBytes, 1024 * 1024 * 1024, int('segmentBytes', 1024, INT32_MAX)),
    segmentMs: pick(o.segmentMs, 7 * 24 * 3600 * 1000, int('segmentMs', 1)),
    indexIntervalBytes: pick(o.indexIntervalBytes, 4096, int('indexIntervalBytes', 0, INT32_MAX)),
    segmentIndexBytes: pick(o.segmentIndexBytes, 10 * 1024 * 1024, int('segmentIndexBytes', 64, INT32_MAX)),
    repair: pick(o.repair, false, (v) => checkBoolean('options.repair', v)),
    compression: pick(o.compression, 'none', (v) => checkString('options.compression', v)),
    flush: checkFlushPolicy(o.flush),
    maxPendingBytes: pick(o.maxPendingBytes, 64 * 1024 * 1024, int('maxPendingBytes', 1)),
    minFreeBytes: pick(o.minFreeBytes, 64 * 1024 * 1024, int('minFreeBytes')),
    fileDeleteDelayMs: pick(o.fileDeleteDelayMs, 60_000, int('fileDeleteDelayMs')),
    cache: checkCacheOptions('options.cache', o.cache),
    maxMessageBytes: pick(o.maxMessageBytes, 1048588, int('maxMessageBytes', BATCH_HEADER_SIZE, INT32_MAX)),
    messageTimestampBeforeMaxMs: pick(o.messageTimestampBeforeMaxMs, NEVER, int('messageTimestampBeforeMaxMs')),
    messageTimestampAfterMaxMs: pick(o.messageTimestampAfterMaxMs, NEVER, int('messageTimestampAfterMaxMs')),
    messageTimestampType: pick(o.messageTimestampType, 'CreateTime', (v) => checkOneOf('options.messageTimestampType', v, TIMESTAMP_TYPES)),
    highWatermark: pick(o.highWatermark, 'auto', (v) => checkOneOf('options.highWatermark', v, HIGH_WATERMARK_MODES)),
    producerIdExpirationMs: pick(o.producerIdExpirationMs, 24 * 3600 * 1000, int('producerIdExpirationMs', 1)),
    maxProducerIds: pick(o.maxProducerIds, 100_000, int('maxProducerIds', 1)),
    cleanupPolicy,
    compacted: cleanupPolicy !== 'delete',
    minCleanableDirtyRatio: pick(o.minCleanableDirtyRatio, 0.5, (v) => checkRatio('options.minCleanableDirtyRatio', v)),
    minCompactionLagMs: pick(o.minCompactionLagMs, 0, int('minCompactionLagMs')),
    // Infinity is how callers say "no limit" (Kafka's Long.MAX_VALUE).
    maxCompactionLagMs: o.maxCompactionLagMs === Infinity ? NEVER : pick(o.maxCompactionLagMs, NEVER, int('maxCompactionLagMs', 1)),
    deleteRetentionMs: pick(o.deleteRetentionMs, 24 * 3600 * 1000, int('deleteRetentionMs')),
  };
}

/** AppendOptions checked: the records' default timestamp and the epoch to stamp (-1: none). */
export function checkAppendOptions(options: unknown): { timestamp: number | undefined; leaderEpoch: number } {
  const o = checkOptions<AppendOptions>('options', options);
  return {
    timestamp: o.timestamp === undefined ? undefined : checkInteger('options.timestamp', o.timestamp),
    leaderEpoch: o.leaderEpoch === undefined ? -1 : checkInteger('options.leaderEpoch', o.leaderEpoch, 0, INT32_MAX),
  };
}

/** AppendBatchesOptions checked; -1 for an absent timestamp or epoch. */
export function checkAppendBatchesOptions(options: unknown): { logAppendTime: number; leaderEpoch: number; replication: boolean } {
  const o = checkOptions<AppendBatchesOptions>('options', options);
  const replication = o.origin === undefined ? false : checkOneOf('options.origin', o.origin, ['client', 'replication']) === 'replication';
  const leaderEpoch = o.leaderEpoch === undefined ? -1 : checkInteger('options.leaderEpoch', o.leaderEpoch, 0, INT32_MAX);
  const logAppendTime = o.logAppendTime === undefined ? -1 : checkInteger('options.logAppendTime', o.logAppendTime);
  if (replication && (leaderEpoch >= 0 || logAppendTime >= 0)) {
    throw new RangeError("options.origin 'replication' keeps the leader's batches as they are: leaderEpoch and logAppendTime do not apply");
  }
  return { logAppendTime, leaderEpoch, replication };
}

/** ControlOptions checked, the timestamp filled in. */
export function checkControlOptions(options: unknown): Required<ControlOptions> {
  const o = checkOptions<ControlOptions>('marker', options);
  if (options === undefined) throw new TypeError('marker must be an object');
  return {
    producerId: checkInteger('marker.producerId', o.producerId, 0),
    producerEpoch: checkInteger('marker.producerEpoch', o.producerEpoch, 0, 0x7fff),
    type: checkOneOf('marker.type', o.type, ['commit', 'abort']),
    coordinatorEpoch: checkInteger('marker.coordinatorEpoch', o.coordinatorEpoch, 0, INT32_MAX),
    timestamp: o.timestamp === undefined ? Date.now() : checkInteger('marker.timestamp', o.timestamp),
  };
}

/** When a flush policy makes data durable, as the cache needs to know it. */
export function syncPolicyOf(flush: FlushConfig): SyncPolicy {
  if (flush.always) return 'always';
  return flush.intervalMs !== NEVER || flush.bytes !== NEVER || flush.messages !== NEVER ? 'periodic' : 'none';
}

/** RecordsOptions checked, with defaults. */
export interface FollowConfig {
  follow: boolean;
  signal: AbortSignal | undefined;
  maxBytes: number;
  isolation: IsolationLevel;
}

export function checkRecordsOptions(options: unknown): FollowConfig {
  const o = checkOptions<RecordsOptions>('options', options);
  const follow = o.follow === undefined ? false : checkBoolean('options.follow', o.follow);
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('options.signal must be an AbortSignal');
  const maxBytes = o.maxBytes === undefined ? 1024 * 1024 : checkInteger('options.maxBytes', o.maxBytes, 1, INT32_MAX);
  return { follow, signal, maxBytes, isolation: checkIsolation('options.isolation', o.isolation) };
}

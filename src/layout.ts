// The on-disk layout, in one place: segment file names (Kafka's 20-digit base
// offset plus a suffix), the markers and checkpoint files of a log and of a
// store, and the widths of index entries. Everything that names or parses a
// file on disk (log, store, segment, index, CLI, tests) takes it from here.
import { join } from 'node:path';

export const LOG_SUFFIX = '.log';
export const INDEX_SUFFIX = '.index';
export const TIME_INDEX_SUFFIX = '.timeindex';
/** A segment's aborted transactions (Kafka's transaction index); only segments that hold an ABORT marker have one. */
export const TXN_INDEX_SUFFIX = '.txnindex';
/** Producer state as of the offset in the name (Kafka's producer snapshot), written on roll and clean close. */
export const SNAPSHOT_SUFFIX = '.snapshot';
/** Appended to segment files removed by retention until they are unlinked (fileDeleteDelayMs later). */
export const DELETED_SUFFIX = '.deleted';
/** Appended to the copy of a segment's .log that truncateTo cuts (see Retention.truncateTo) until it replaces the original; a leftover is removed on open. */
export const COPY_SUFFIX = '.copy';
/** Appended to a segment's files while the cleaner writes them (a leftover is removed on open). */
export const CLEANED_SUFFIX = '.cleaned';
/** Appended to a cleaned segment's files once written whole: on open they replace the segments they cover. */
export const SWAP_SUFFIX = '.swap';

/** Present while a log (or a store) is closed cleanly; its absence on open means recovery. */
export const CLEAN_SHUTDOWN_FILE = '.clean-shutdown';
/** A standalone log's start offset when deleteRecordsBefore or retention moved it. */
export const LOG_START_OFFSET_FILE = '.log-start-offset';
/** A log's leader epochs and the offset each began at, in Kafka's leader-epoch checkpoint layout. */
export const LEADER_EPOCH_CHECKPOINT = 'leader-epoch-checkpoint';
/** How far a compacted log was cleaned (Kafka's cleaner offset checkpoint layout, one line: the log's directory name and the offset). */
export const CLEANER_OFFSET_CHECKPOINT = 'cleaner-offset-checkpoint';
/** A store's lock file: flock'd while a LogStore has the data directory open; holds its pid. */
export const LOCK_FILE = '.lock';
/** A store's checkpoints, in Kafka's offset checkpoint layout (one line per log). */
export const RECOVERY_POINT_CHECKPOINT = 'recovery-point-offset-checkpoint';
export const LOG_START_OFFSET_CHECKPOINT = 'log-start-offset-checkpoint';
/** A store's logs' high watermarks (Kafka's name for the file). */
export const REPLICATION_OFFSET_CHECKPOINT = 'replication-offset-checkpoint';

/** Bytes of an offset index entry: relative offset i32, file position i32 (Kafka's layout). */
export const OFFSET_INDEX_ENTRY_BYTES = 8;
/** Bytes of a time index entry: timestamp i64, relative offset i32 (Kafka's layout). */
export const TIME_INDEX_ENTRY_BYTES = 12;
/** Bytes of a transaction index entry: version i16, producerId, firstOffset, lastOffset, lastStableOffset i64 (Kafka's AbortedTxn). */
export const TXN_INDEX_ENTRY_BYTES = 34;

export type SegmentFileKind = 'log' | 'index' | 'timeindex' | 'txnindex';

const SUFFIXES: Record<SegmentFileKind, string> = { log: LOG_SUFFIX, index: INDEX_SUFFIX, timeindex: TIME_INDEX_SUFFIX, txnindex: TXN_INDEX_SUFFIX };
/** A segment file: 20 digits, a suffix, and `.deleted` once retention removed it. */
const SEGMENT_FILE = /^(\d{20})\.(log|index|timeindex|txnindex)(\.deleted)?$/;
/** A producer snapshot: the 20-digit offset it holds the state at. */
const SNAPSHOT_FILE = /^(\d{20})\.snapshot$/;

/** Kafka's file name for a segment: the base offset, 20 digits, zero padded, then the suffix. */
export function segmentFileName(baseOffset: number, kind: SegmentFileKind): string {
  return `${String(baseOffset).padStart(20, '0')}${SUFFIXES[kind]}`;
}

/** The paths of the files of the segment at `baseOffset` in `dir` (the transaction index may not exist). */
export function segmentPaths(dir: string, baseOffset: number): { log: string; index: string; timeIndex: string; txnIndex: string } {
  return {
    log: join(dir, segmentFileName(baseOffset, 'log')),
    index: join(dir, segmentFileName(baseOffset, 'index')),
    timeIndex: join(dir, segmentFileName(baseOffset, 'timeindex')),
    txnIndex: join(dir, segmentFileName(baseOffset, 'txnindex')),
  };
}

/** Kafka's name for the producer snapshot at `offset`: 20 digits, zero padded, then `.snapshot`. */
export function snapshotFileName(offset: number): string {
  return `${String(offset).padStart(20, '0')}${SNAPSHOT_SUFFIX}`;
}

/** The offsets of the producer snapshots among `names` (a directory listing), in order; names beyond the safe range are left out. */
export function snapshotOffsets(names: readonly string[]): number[] {
  return names
    .map((n) => SNAPSHOT_FILE.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .filter(Number.isSafeInteger)
    .sort((a, b) => a - b);
}

/**
 * What a file name says, when it is a segment file: its kind, its base
 * offset (NaN beyond the safe integer range) and whether retention removed
 * it. Undefined for any other name.
 */
export function parseSegmentFileName(name: string): { kind: SegmentFileKind; baseOffset: number; deleted: boolean } | undefined {
  const m = SEGMENT_FILE.exec(name);
  if (m === null) return undefined;
  const baseOffset = Number(m[1]);
  return { kind: m[2] as SegmentFileKind, baseOffset: Number.isSafeInteger(baseOffset) ? baseOffset : Number.NaN, deleted: m[3] !== undefined };
}

/** Whether `name` is a live segment's .log (the file that makes a segment exist). */
export function isSegmentLog(name: string): boolean {
  const p = parseSegmentFileName(name);
  return p !== undefined && p.kind === 'log' && !p.deleted;
}

/** A cleaner's file: a segment file name with `.cleaned` (being written) or `.swap` (written whole, to be swapped in). */
const CLEANER_FILE = /^(\d{20})\.(log|index|timeindex|txnindex)\.(cleaned|swap)$/;

/** What a cleaner's file name says (see CLEANED_SUFFIX, SWAP_SUFFIX); undefined for any other name. */
export function parseCleanerFileName(name: string): { kind: SegmentFileKind; baseOffset: number; stage: 'cleaned' | 'swap' } | undefined {
  const m = CLEANER_FILE.exec(name);
  if (m === null) return undefined;
  return { kind: m[2] as SegmentFileKind, baseOffset: Number(m[1]), stage: m[3] as 'cleaned' | 'swap' };
}

/**
 * The base offsets of the segments among `names` (a directory listing), in
 * order. A name beyond the safe integer range comes back as NaN, last.
 */
export function segmentBases(names: readonly string[]): number[] {
  return names
    .filter(isSegmentLog)
    .map((n) => parseSegmentFileName(n)!.baseOffset)
    .sort((a, b) => (Number.isNaN(a) ? 1 : Number.isNaN(b) ? -1 : a - b));
}

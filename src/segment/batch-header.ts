// The RecordBatch v2 (magic 2) header, byte for byte as Kafka lays it out:
// parsing, checking (size, magic, CRC) and the in-place edits a broker makes. Layout of the 61-byte big-endian header:
//
//   0 baseOffset i64     8 batchLength i32   12 partitionLeaderEpoch i32
//  16 magic i8          17 crc u32           21 attributes i16
//  23 lastOffsetDelta i32                    27 baseTimestamp i64
//  35 maxTimestamp i64  43 producerId i64    51 producerEpoch i16
//  53 baseSequence i32  57 recordsCount i32  61 records...
//
// The CRC-32C covers attributes to the end, so a broker may rewrite baseOffset
// and partitionLeaderEpoch without recomputing it.
import { SeglogError } from '../errors.js';
import { crc32c } from '../native.js';
import { checkBytes, checkInteger } from '../validate.js';

export const BATCH_HEADER_SIZE = 61;
/** baseOffset and batchLength: the bytes batchLength does not count. */
export const BATCH_OVERHEAD = 12;
export const MAGIC = 2;

export const OFF_BATCH_LENGTH = 8;
export const OFF_LEADER_EPOCH = 12;
export const OFF_MAGIC = 16;
export const OFF_CRC = 17;
export const OFF_ATTRIBUTES = 21;
export const OFF_LAST_OFFSET_DELTA = 23;
export const OFF_BASE_TIMESTAMP = 27;
export const OFF_MAX_TIMESTAMP = 35;
export const OFF_PRODUCER_ID = 43;
export const OFF_PRODUCER_EPOCH = 51;
export const OFF_BASE_SEQUENCE = 53;
export const OFF_RECORDS_COUNT = 57;

/** Smallest batchLength: a header with no records. */
export const MIN_BATCH_LENGTH = BATCH_HEADER_SIZE - BATCH_OVERHEAD;
export const INT32_MAX = 0x7fffffff;
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Smallest encoded record: length, attributes, timestampDelta, offsetDelta, keyLength, valueLength, headersCount. */
export const MIN_RECORD_SIZE = 7;

export const COMPRESSION_MASK = 0x07;
export const TIMESTAMP_TYPE_BIT = 0x08;
export const TRANSACTIONAL_BIT = 0x10;
export const CONTROL_BIT = 0x20;



export interface BatchHeader {
  baseOffset: number;
  batchLength: number;
  /** Whole batch in bytes: batchLength + BATCH_OVERHEAD. */
  size: number;
  partitionLeaderEpoch: number;
  magic: number;
  crc: number;
  attributes: number;
  /** 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd. */
  compression: number;
  timestampType: 'create' | 'logAppend';
  transactional: boolean;
  control: boolean;
  lastOffsetDelta: number;
  /** baseOffset + lastOffsetDelta. */
  lastOffset: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordsCount: number;
}


export type CheckBatchResult =
  | { ok: true; header: BatchHeader }
  | { ok: false; reason: 'truncated' | 'length' | 'magic' | 'crc' | 'records' };

// ---------------------------------------------------------------- big-endian fields

// Hand-rolled so they work on any Uint8Array (mmap'd regions, file reads)
// without building a DataView per call.
export function readI16(buf: Uint8Array, p: number): number {
  return (((buf[p]! << 8) | buf[p + 1]!) << 16) >> 16;
}

export function readI32(buf: Uint8Array, p: number): number {
  return (buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!;
}

/** An i64 as a number; NaN when it is not a safe integer. */
export function readI64(buf: Uint8Array, p: number): number {
  const value = readI32(buf, p) * 0x100000000 + (readI32(buf, p + 4) >>> 0);
  return Number.isSafeInteger(value) ? value : Number.NaN;
}

export function writeI16(buf: Uint8Array, p: number, v: number): void {
  buf[p] = v >>> 8;
  buf[p + 1] = v;
}

export function writeI32(buf: Uint8Array, p: number, v: number): void {
  buf[p] = v >>> 24;
  buf[p + 1] = v >>> 16;
  buf[p + 2] = v >>> 8;
  buf[p + 3] = v;
}

export function writeI64(buf: Uint8Array, p: number, v: number): void {
  const high = Math.floor(v / 0x100000000);
  writeI32(buf, p, high);
  writeI32(buf, p + 4, v - high * 0x100000000);
}

// ---------------------------------------------------------------- header

/** Parses the header at `p` (61 bytes must be there); null when an i64 field is not a safe integer. */
export function parseHeader(buf: Uint8Array, p: number): BatchHeader | null {
  const baseOffset = readI64(buf, p);
  const baseTimestamp = readI64(buf, p + OFF_BASE_TIMESTAMP);
  const maxTimestamp = readI64(buf, p + OFF_MAX_TIMESTAMP);
  const producerId = readI64(buf, p + OFF_PRODUCER_ID);
  const batchLength = readI32(buf, p + OFF_BATCH_LENGTH);
  const lastOffsetDelta = readI32(buf, p + OFF_LAST_OFFSET_DELTA);
  const lastOffset = baseOffset + lastOffsetDelta;
  if (Number.isNaN(baseTimestamp) || Number.isNaN(maxTimestamp) || Number.isNaN(producerId) || !Number.isSafeInteger(lastOffset)) {
    return null;
  }
  const attributes = readI16(buf, p + OFF_ATTRIBUTES);
  return {
    baseOffset,
    batchLength,
    size: batchLength + BATCH_OVERHEAD,
    partitionLeaderEpoch: readI32(buf, p + OFF_LEADER_EPOCH),
    magic: (buf[p + OFF_MAGIC]! << 24) >> 24,
    crc: readI32(buf, p + OFF_CRC) >>> 0,
    attributes,
    compression: attributes & COMPRESSION_MASK,
    timestampType: attributes & TIMESTAMP_TYPE_BIT ? 'logAppend' : 'create',
    transactional: (attributes & TRANSACTIONAL_BIT) !== 0,
    control: (attributes & CONTROL_BIT) !== 0,
    lastOffsetDelta,
    lastOffset,
    baseTimestamp,
    maxTimestamp,
    producerId,
    producerEpoch: readI16(buf, p + OFF_PRODUCER_EPOCH),
    baseSequence: readI32(buf, p + OFF_BASE_SEQUENCE),
    recordsCount: readI32(buf, p + OFF_RECORDS_COUNT),
  };
}

/**
 * Parses the batch header at `position` without validating it (see
 * checkBatch). RangeError if fewer than 61 bytes are there; SeglogError
 * ECORRUPT if an i64 field (or the last offset) is not a safe integer.
 */
export function readBatchHeader(buf: Uint8Array, position = 0): BatchHeader {
  checkBytes('buf', buf);
  checkInteger('position', position, 0, buf.length);
  if (buf.length - position < BATCH_HEADER_SIZE) {
    throw new RangeError(`a batch header needs ${BATCH_HEADER_SIZE} bytes, only ${buf.length - position} at position ${position}`);
  }
  const header = parseHeader(buf, position);
  if (header === null) {
    throw new SeglogError('ECORRUPT', `batch header at ${position} has a 64-bit field beyond the safe integer range`, { position });
  }
  return header;
}

/**
 * Validates the batch at `position` without decoding its records: length,
 * magic, CRC and the header's record fields. Never throws on bad data (only
 * on bad arguments), so recovery can scan garbage. Reasons:
 * - truncated: `end` comes before the end of the batch (a torn write),
 * - length: batchLength below the empty-batch size or above `maxBatchSize`,
 * - magic: not a v2 batch,
 * - crc: the checksum does not match,
 * - records: header fields out of range or inconsistent (offsets, counts, timestamps).
 */
export function checkBatch(buf: Uint8Array, position: number, end: number, maxBatchSize = INT32_MAX): CheckBatchResult {
  checkBytes('buf', buf);
  checkInteger('position', position, 0, buf.length);
  checkInteger('end', end, position, buf.length);
  checkInteger('maxBatchSize', maxBatchSize, BATCH_HEADER_SIZE, INT32_MAX);
  const available = end - position;
  if (available < BATCH_OVERHEAD) return { ok: false, reason: 'truncated' };
  const batchLength = readI32(buf, position + OFF_BATCH_LENGTH);
  if (batchLength < MIN_BATCH_LENGTH || batchLength > maxBatchSize - BATCH_OVERHEAD) return { ok: false, reason: 'length' };
  const size = batchLength + BATCH_OVERHEAD;
  if (available < size) return { ok: false, reason: 'truncated' };
  if (buf[position + OFF_MAGIC] !== MAGIC) return { ok: false, reason: 'magic' };
  const crc = crc32c(buf.subarray(position + OFF_ATTRIBUTES, position + size));
  if (crc !== readI32(buf, position + OFF_CRC) >>> 0) return { ok: false, reason: 'crc' };
  const header = parseHeader(buf, position);
  if (header === null || !headerConsistent(header)) return { ok: false, reason: 'records' };
  return { ok: true, header };
}

export function headerConsistent(h: BatchHeader): boolean {
  const { recordsCount, lastOffsetDelta } = h;
  if (h.baseOffset < 0 || recordsCount < 0 || lastOffsetDelta < 0 || lastOffsetDelta < recordsCount - 1) return false;
  const payload = h.batchLength - MIN_BATCH_LENGTH;
  // Uncompressed records take at least MIN_RECORD_SIZE bytes each; a
  // compressed block of any records is never empty.
  if (h.compression === 0) return recordsCount * MIN_RECORD_SIZE <= payload;
  return recordsCount === 0 || payload > 0;
}

export function corrupt(message: string, position: number, cause?: unknown): SeglogError {
  return new SeglogError('ECORRUPT', message, cause === undefined ? { position } : { position, cause });
}

// ---------------------------------------------------------------- in-place edits

function checkHeaderRoom(buf: Uint8Array, position: number): void {
  checkBytes('buf', buf);
  checkInteger('position', position, 0, buf.length);
  if (buf.length - position < BATCH_HEADER_SIZE) {
    throw new RangeError(`a batch header needs ${BATCH_HEADER_SIZE} bytes, only ${buf.length - position} at position ${position}`);
  }
}

/** Rewrites the batch's baseOffset in place; the CRC does not cover it. */
export function setBaseOffset(buf: Uint8Array, position: number, baseOffset: number): void {
  checkHeaderRoom(buf, position);
  const lastOffsetDelta = Math.max(0, readI32(buf, position + OFF_LAST_OFFSET_DELTA));
  checkInteger('baseOffset', baseOffset, 0, MAX_SAFE - lastOffsetDelta);
  writeI64(buf, position, baseOffset);
}

/**
 * Marks the batch as LogAppendTime with `timestamp` as its maxTimestamp (the
 * timestamp every record then reads as, as in Kafka) and recomputes the CRC.
 * The batch must be whole and valid first, so that a new CRC never blesses
 * damaged bytes: otherwise SeglogError ECORRUPT.
 */
export function setLogAppendTime(buf: Uint8Array, position: number, timestamp: number): void {
  checkHeaderRoom(buf, position);
  checkInteger('timestamp', timestamp);
  const checked = checkBatch(buf, position, buf.length);
  if (!checked.ok) throw corrupt(`invalid record batch at ${position} (${checked.reason})`, position);
  stampLogAppendTime(buf, position, checked.header, timestamp);
}

/**
 * setLogAppendTime without its check, for a batch the caller has just
 * checked whole (`header` is its parsed header, updated to match): the
 * attributes and maxTimestamp are rewritten and the CRC computed once.
 */
export function stampLogAppendTime(buf: Uint8Array, position: number, header: BatchHeader, timestamp: number): void {
  header.attributes |= TIMESTAMP_TYPE_BIT;
  header.timestampType = 'logAppend';
  header.maxTimestamp = timestamp;
  writeI16(buf, position + OFF_ATTRIBUTES, header.attributes);
  writeI64(buf, position + OFF_MAX_TIMESTAMP, timestamp);
  header.crc = crc32c(buf.subarray(position + OFF_ATTRIBUTES, position + header.size));
  writeI32(buf, position + OFF_CRC, header.crc);
}

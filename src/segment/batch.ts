// Kafka RecordBatch v2 (magic 2), byte for byte, so that Kafka tools and
// clients can read seglog's files. Layout of the 61-byte big-endian header:
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
import { checkBytes, checkInteger, checkOptions } from '../validate.js';
import { codecById, codecByName, KAFKA_CODEC_NAMES, type Codec, type CodecId } from './codecs.js';
import { VarintReader, varintSize, varlongSize, writeVarint, writeVarlong } from './varint.js';

export const BATCH_HEADER_SIZE = 61;
/** baseOffset and batchLength: the bytes batchLength does not count. */
export const BATCH_OVERHEAD = 12;
export const MAGIC = 2;

const OFF_BATCH_LENGTH = 8;
const OFF_LEADER_EPOCH = 12;
const OFF_MAGIC = 16;
const OFF_CRC = 17;
const OFF_ATTRIBUTES = 21;
const OFF_LAST_OFFSET_DELTA = 23;
const OFF_BASE_TIMESTAMP = 27;
const OFF_MAX_TIMESTAMP = 35;
const OFF_PRODUCER_ID = 43;
const OFF_PRODUCER_EPOCH = 51;
const OFF_BASE_SEQUENCE = 53;
const OFF_RECORDS_COUNT = 57;

/** Smallest batchLength: a header with no records. */
const MIN_BATCH_LENGTH = BATCH_HEADER_SIZE - BATCH_OVERHEAD;
const INT32_MAX = 0x7fffffff;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Smallest encoded record: length, attributes, timestampDelta, offsetDelta, keyLength, valueLength, headersCount. */
const MIN_RECORD_SIZE = 7;

const COMPRESSION_MASK = 0x07;
const TIMESTAMP_TYPE_BIT = 0x08;
const TRANSACTIONAL_BIT = 0x10;
const CONTROL_BIT = 0x20;

export interface RecordInput {
  key?: Uint8Array | string | null;
  value: Uint8Array | string | null;
  headers?: Array<{ key: string; value: Uint8Array | string | null }>;
  /** Milliseconds since the epoch; encodeBatch's `now` when absent. */
  timestamp?: number;
}

export interface LogRecord {
  offset: number;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<{ key: string; value: Buffer | null }>;
}

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

export interface EncodeOptions {
  /** Offset of the first record. Default 0 (the log assigns real offsets with setBaseOffset). */
  baseOffset?: number;
  /** 'none' (default), 'gzip', or the name of a codec given to registerCodec(). */
  compression?: string;
  /** Timestamp for records that have none. Default Date.now(). */
  now?: number;
  /** Default -1 (none), as Kafka producers write it. */
  partitionLeaderEpoch?: number;
  /** Idempotent-producer fields; default -1 (none). */
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
}

export type CheckBatchResult =
  | { ok: true; header: BatchHeader }
  | { ok: false; reason: 'truncated' | 'length' | 'magic' | 'crc' | 'records' };

// ---------------------------------------------------------------- big-endian fields

// Hand-rolled so they work on any Uint8Array (mmap'd regions, file reads)
// without building a DataView per call.
function readI16(buf: Uint8Array, p: number): number {
  return (((buf[p]! << 8) | buf[p + 1]!) << 16) >> 16;
}

function readI32(buf: Uint8Array, p: number): number {
  return (buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!;
}

/** An i64 as a number; NaN when it is not a safe integer. */
function readI64(buf: Uint8Array, p: number): number {
  const value = readI32(buf, p) * 0x100000000 + (readI32(buf, p + 4) >>> 0);
  return Number.isSafeInteger(value) ? value : Number.NaN;
}

function writeI16(buf: Uint8Array, p: number, v: number): void {
  buf[p] = v >>> 8;
  buf[p + 1] = v;
}

function writeI32(buf: Uint8Array, p: number, v: number): void {
  buf[p] = v >>> 24;
  buf[p + 1] = v >>> 16;
  buf[p + 2] = v >>> 8;
  buf[p + 3] = v;
}

function writeI64(buf: Uint8Array, p: number, v: number): void {
  const high = Math.floor(v / 0x100000000);
  writeI32(buf, p, high);
  writeI32(buf, p + 4, v - high * 0x100000000);
}

// ---------------------------------------------------------------- header

/** Parses the header at `p` (61 bytes must be there); null when an i64 field is not a safe integer. */
function parseHeader(buf: Uint8Array, p: number): BatchHeader | null {
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

function headerConsistent(h: BatchHeader): boolean {
  const { recordsCount, lastOffsetDelta } = h;
  if (h.baseOffset < 0 || recordsCount < 0 || lastOffsetDelta < 0 || lastOffsetDelta < recordsCount - 1) return false;
  const payload = h.batchLength - MIN_BATCH_LENGTH;
  // Uncompressed records take at least MIN_RECORD_SIZE bytes each; a
  // compressed block of any records is never empty.
  if (h.compression === 0) return recordsCount * MIN_RECORD_SIZE <= payload;
  return recordsCount === 0 || payload > 0;
}

// ---------------------------------------------------------------- encode

function bytesLength(name: string, value: unknown): number {
  if (value === null) return -1;
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8');
  if (value instanceof Uint8Array) return value.length;
  throw new TypeError(`${name} must be a Buffer, Uint8Array, string or null`);
}

/** Bytes of a length-prefixed field whose content is `length` bytes (-1: null). */
function fieldSize(length: number): number {
  return length < 0 ? 1 : varintSize(length) + length;
}

function writeField(buf: Buffer, pos: number, value: Uint8Array | string | null, length: number): number {
  pos = writeVarint(buf, pos, length);
  if (value === null) return pos;
  if (typeof value === 'string') return pos + buf.write(value, pos, 'utf8');
  buf.set(value, pos);
  return pos + length;
}

function compressionCodec(name: string): { id: CodecId; codec: Codec } | null {
  if (typeof name !== 'string') throw new TypeError('options.compression must be a string');
  if (name === 'none') return null;
  const found = codecByName(name);
  if (found === undefined) throw new RangeError(`options.compression: no codec registered as '${name}'`);
  return found;
}

/**
 * Encodes `records` as one batch with offsets baseOffset.. and its CRC filled
 * in. Timestamps are create time; baseTimestamp is the first record's, as
 * Kafka producers write it.
 */
export function encodeBatch(records: RecordInput[], options?: EncodeOptions): Buffer {
  if (!Array.isArray(records)) throw new TypeError('records must be an array');
  const count = records.length;
  if (count === 0) throw new RangeError('records must not be empty');
  const o = checkOptions<EncodeOptions>('options', options);
  const baseOffset = o.baseOffset === undefined ? 0 : checkInteger('options.baseOffset', o.baseOffset, 0, MAX_SAFE - (count - 1));
  const compression = o.compression === undefined ? null : compressionCodec(o.compression);
  const now = o.now === undefined ? Date.now() : checkInteger('options.now', o.now);
  const leaderEpoch = o.partitionLeaderEpoch === undefined ? -1 : checkInteger('options.partitionLeaderEpoch', o.partitionLeaderEpoch, -1, INT32_MAX);
  const producerId = o.producerId === undefined ? -1 : checkInteger('options.producerId', o.producerId, -1);
  const producerEpoch = o.producerEpoch === undefined ? -1 : checkInteger('options.producerEpoch', o.producerEpoch, -1, 0x7fff);
  const baseSequence = o.baseSequence === undefined ? -1 : checkInteger('options.baseSequence', o.baseSequence, -1, INT32_MAX);

  // Pass 1: check every record and measure it, so that pass 2 writes into
  // one buffer of the exact size. Per record, `lengths` holds bodySize,
  // keyLength, valueLength, then keyLength and valueLength of each header.
  const timestamps = new Array<number>(count);
  const lengths: number[] = [];
  let baseTimestamp = 0;
  let maxTimestamp = 0;
  let recordsSize = 0;
  for (let i = 0; i < count; i++) {
    const r = records[i];
    if (r === null || typeof r !== 'object') throw new TypeError(`records[${i}] must be an object`);
    const timestamp = r.timestamp === undefined ? now : checkInteger(`records[${i}].timestamp`, r.timestamp);
    if (i === 0) baseTimestamp = maxTimestamp = timestamp;
    else if (timestamp > maxTimestamp) maxTimestamp = timestamp;
    timestamps[i] = timestamp;
    if (r.value === undefined) throw new TypeError(`records[${i}].value is required (null for a tombstone)`);
    const keyLength = r.key === undefined ? -1 : bytesLength(`records[${i}].key`, r.key);
    const valueLength = bytesLength(`records[${i}].value`, r.value);
    const at = lengths.length;
    lengths.push(0, keyLength, valueLength);
    const headers = r.headers;
    let headersSize = 0;
    if (headers !== undefined) {
      if (!Array.isArray(headers)) throw new TypeError(`records[${i}].headers must be an array`);
      for (let j = 0; j < headers.length; j++) {
        const h = headers[j];
        if (h === null || typeof h !== 'object' || typeof h.key !== 'string') {
          throw new TypeError(`records[${i}].headers[${j}] must be an object with a string key`);
        }
        if (h.value === undefined) throw new TypeError(`records[${i}].headers[${j}].value is required (null for none)`);
        const hk = Buffer.byteLength(h.key, 'utf8');
        const hv = bytesLength(`records[${i}].headers[${j}].value`, h.value);
        lengths.push(hk, hv);
        headersSize += fieldSize(hk) + fieldSize(hv);
      }
    }
    const bodySize =
      1 + // attributes
      varlongSize(timestamp - baseTimestamp) +
      varintSize(i) +
      fieldSize(keyLength) +
      fieldSize(valueLength) +
      varintSize(headers === undefined ? 0 : headers.length) +
      headersSize;
    lengths[at] = bodySize;
    recordsSize += varintSize(bodySize) + bodySize;
    if (recordsSize > INT32_MAX - MIN_BATCH_LENGTH) throw new RangeError('records do not fit in one batch (2 GiB)');
  }

  // Pass 2: write the records, after the header unless they get compressed.
  const out = Buffer.allocUnsafe(compression === null ? BATCH_HEADER_SIZE + recordsSize : recordsSize);
  let pos = compression === null ? BATCH_HEADER_SIZE : 0;
  let li = 0;
  for (let i = 0; i < count; i++) {
    const r = records[i]!;
    pos = writeVarint(out, pos, lengths[li++]!);
    out[pos++] = 0;
    pos = writeVarlong(out, pos, timestamps[i]! - baseTimestamp);
    pos = writeVarint(out, pos, i);
    pos = writeField(out, pos, r.key ?? null, lengths[li++]!);
    pos = writeField(out, pos, r.value, lengths[li++]!);
    const headers = r.headers;
    if (headers === undefined) {
      out[pos++] = 0;
      continue;
    }
    pos = writeVarint(out, pos, headers.length);
    for (const h of headers) {
      pos = writeField(out, pos, h.key, lengths[li++]!);
      pos = writeField(out, pos, h.value, lengths[li++]!);
    }
  }

  let batch = out;
  if (compression !== null) {
    const block = compression.codec.compress(out);
    if (!(block instanceof Uint8Array)) throw new TypeError(`codec '${o.compression}' compress() must return a Uint8Array`);
    if (block.length > INT32_MAX - MIN_BATCH_LENGTH) throw new RangeError('compressed records do not fit in one batch (2 GiB)');
    batch = Buffer.allocUnsafe(BATCH_HEADER_SIZE + block.length);
    batch.set(block, BATCH_HEADER_SIZE);
  }
  writeI64(batch, 0, baseOffset);
  writeI32(batch, OFF_BATCH_LENGTH, batch.length - BATCH_OVERHEAD);
  writeI32(batch, OFF_LEADER_EPOCH, leaderEpoch);
  batch[OFF_MAGIC] = MAGIC;
  writeI16(batch, OFF_ATTRIBUTES, compression === null ? 0 : compression.id);
  writeI32(batch, OFF_LAST_OFFSET_DELTA, count - 1);
  writeI64(batch, OFF_BASE_TIMESTAMP, baseTimestamp);
  writeI64(batch, OFF_MAX_TIMESTAMP, maxTimestamp);
  writeI64(batch, OFF_PRODUCER_ID, producerId);
  writeI16(batch, OFF_PRODUCER_EPOCH, producerEpoch);
  writeI32(batch, OFF_BASE_SEQUENCE, baseSequence);
  writeI32(batch, OFF_RECORDS_COUNT, count);
  writeI32(batch, OFF_CRC, crc32c(batch.subarray(OFF_ATTRIBUTES)));
  return batch;
}

// ---------------------------------------------------------------- decode

function corrupt(message: string, position: number, cause?: unknown): SeglogError {
  return new SeglogError('ECORRUPT', message, cause === undefined ? { position } : { position, cause });
}

/**
 * Decodes every record of the one batch that `batch` holds (exactly: extra
 * bytes are an error), after checking it as checkBatch does. Keys and values
 * are views into one private copy of the (decompressed) records, never into
 * `batch`. Throws SeglogError ECORRUPT (with `position` within `batch`) on
 * malformed content, EUNSUPPORTED when the batch's codec is not registered.
 */
export function decodeBatch(batch: Uint8Array): LogRecord[] {
  checkBytes('batch', batch);
  const checked = checkBatch(batch, 0, batch.length);
  if (!checked.ok) throw corrupt(`invalid record batch (${checked.reason})`, 0);
  const h = checked.header;
  if (h.size !== batch.length) throw corrupt(`batch is ${h.size} bytes but ${batch.length} were given`, h.size);
  if (h.compression === 0) {
    const data = Buffer.from(batch.subarray(BATCH_HEADER_SIZE));
    try {
      return decodeRecords(h, data);
    } catch (err) {
      const e = err as SeglogError;
      throw corrupt(`${e.message} at byte ${BATCH_HEADER_SIZE + e.position!} of the batch`, BATCH_HEADER_SIZE + e.position!);
    }
  }
  if (h.compression > 4) throw corrupt(`unknown compression type ${h.compression}`, OFF_ATTRIBUTES);
  const name = KAFKA_CODEC_NAMES[h.compression as CodecId];
  const codec = codecById(h.compression as CodecId);
  const block = Buffer.from(batch.buffer, batch.byteOffset + BATCH_HEADER_SIZE, batch.length - BATCH_HEADER_SIZE);
  let raw: Uint8Array;
  try {
    raw = codec.decompress(block);
  } catch (err) {
    throw corrupt(`cannot decompress ${name} records: ${(err as Error).message}`, BATCH_HEADER_SIZE, err);
  }
  if (!(raw instanceof Uint8Array)) throw new TypeError(`codec for ${name} decompress() must return a Uint8Array`);
  try {
    return decodeRecords(h, Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.length));
  } catch (err) {
    // A position in decompressed data means nothing in the batch: blame the block.
    const e = err as SeglogError;
    throw corrupt(`${e.message} at byte ${e.position!} of the decompressed ${name} records`, BATCH_HEADER_SIZE);
  }
}

/** Parses records filling all of `data`; ECORRUPT errors carry positions within `data`. */
function decodeRecords(h: BatchHeader, data: Buffer): LogRecord[] {
  const reader = new VarintReader(data, 0, data.length);
  /** A length-prefixed field that must end by `limit`; null for length -1. */
  const readField = (what: string, limit: number): Buffer | null => {
    const start = reader.pos;
    const length = reader.varint();
    if (length === -1) return null;
    if (length < -1 || length > limit - reader.pos) throw corrupt(`${what} length ${length} out of range`, start);
    const p = reader.pos;
    reader.pos += length;
    return data.subarray(p, p + length);
  };

  const logAppend = h.timestampType === 'logAppend';
  const records: LogRecord[] = [];
  while (reader.pos < data.length) {
    const start = reader.pos;
    if (records.length === h.recordsCount) throw corrupt(`batch holds more than its ${h.recordsCount} records`, start);
    const length = reader.varint();
    const bodyStart = reader.pos;
    // The length prefix itself is one of MIN_RECORD_SIZE's bytes.
    if (length < MIN_RECORD_SIZE - 1 || length > data.length - bodyStart) throw corrupt(`record length ${length} out of range`, start);
    const end = bodyStart + length;
    reader.pos++; // attributes: no record-level attribute is defined in v2
    const timestampDelta = reader.varlong();
    const offsetDelta = reader.varint();
    if (offsetDelta < 0 || offsetDelta > h.lastOffsetDelta) throw corrupt(`record offset delta ${offsetDelta} out of range`, start);
    const timestamp = logAppend ? h.maxTimestamp : h.baseTimestamp + timestampDelta;
    if (!Number.isSafeInteger(timestamp)) throw corrupt('record timestamp beyond the safe integer range', start);
    const key = readField('key', end);
    const value = readField('value', end);
    const headersCount = reader.varint();
    // Each header takes at least two bytes: its two length prefixes.
    if (headersCount < 0 || headersCount * 2 > end - reader.pos) throw corrupt(`headers count ${headersCount} out of range`, start);
    const headers: LogRecord['headers'] = [];
    for (let j = 0; j < headersCount; j++) {
      const headerKey = readField('header key', end);
      if (headerKey === null) throw corrupt('header key is null', start);
      headers.push({ key: headerKey.toString('utf8'), value: readField('header value', end) });
    }
    if (reader.pos !== end) throw corrupt(`record is ${length} bytes but its fields take ${reader.pos - bodyStart}`, start);
    records.push({ offset: h.baseOffset + offsetDelta, timestamp, key, value, headers });
  }
  if (records.length !== h.recordsCount) throw corrupt(`batch holds ${records.length} records, its header says ${h.recordsCount}`, reader.pos);
  return records;
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
  const end = position + checked.header.size;
  writeI16(buf, position + OFF_ATTRIBUTES, checked.header.attributes | TIMESTAMP_TYPE_BIT);
  writeI64(buf, position + OFF_MAX_TIMESTAMP, timestamp);
  writeI32(buf, position + OFF_CRC, crc32c(buf.subarray(position + OFF_ATTRIBUTES, end)));
}

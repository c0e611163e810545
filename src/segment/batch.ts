// Kafka RecordBatch v2 (magic 2), byte for byte, so that Kafka tools and
// clients can read seglog's files: records encoded into a batch. The header,
// its checks and in-place edits are in batch-header.ts; decoding is in
// batch-decode.ts.
import { crc32c } from '../native.js';
import { checkBoolean, checkInteger, checkOptions } from '../validate.js';
import {
  BATCH_HEADER_SIZE,
  BATCH_OVERHEAD,
  CONTROL_BIT,
  INT32_MAX,
  MAGIC,
  MAX_SAFE,
  MIN_BATCH_LENGTH,
  OFF_ATTRIBUTES,
  OFF_BASE_SEQUENCE,
  OFF_BASE_TIMESTAMP,
  OFF_BATCH_LENGTH,
  OFF_CRC,
  OFF_LAST_OFFSET_DELTA,
  OFF_LEADER_EPOCH,
  OFF_MAGIC,
  OFF_MAX_TIMESTAMP,
  OFF_PRODUCER_EPOCH,
  OFF_PRODUCER_ID,
  OFF_RECORDS_COUNT,
  TIMESTAMP_TYPE_BIT,
  TRANSACTIONAL_BIT,
  writeI16,
  writeI32,
  writeI64,
} from './batch-header.js';
import { codecByName, type Codec, type CodecId } from './codecs.js';
import { varintSize, varlongSize, writeVarint, writeVarlong } from './varint.js';

export { BATCH_HEADER_SIZE, BATCH_OVERHEAD, MAGIC, checkBatch, readBatchHeader, setBaseOffset, setLogAppendTime, stampLogAppendTime } from './batch-header.js';
export type { BatchHeader, CheckBatchResult } from './batch-header.js';
export { decodeBatch, decodeChecked, offsetAtTimestamp, RecordCursor, recordAt, recordTimestampRange } from './batch-decode.js';
export type { LogRecord } from './batch-decode.js';

export type HeaderValue = Uint8Array | string | null;

/**
 * A record's headers: a list of key/value pairs, kept as given (order and
 * repeated keys), or the object form of Node Kafka clients, `{ key: value |
 * value[] }`, where an array gives the key once per value, in array order.
 */
export type RecordHeaders = Array<{ key: string; value: HeaderValue }> | { [key: string]: HeaderValue | HeaderValue[] };

export interface RecordInput {
  key?: Uint8Array | string | null;
  value: Uint8Array | string | null;
  headers?: RecordHeaders;
  /** Milliseconds since the epoch; encodeBatch's `now` when absent. */
  timestamp?: number;
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
  /** Stamp the batch as LogAppendTime with this timestamp (what its records then read as), as a broker does. Default: create time. */
  logAppendTime?: number;
  /** Idempotent-producer fields; default -1 (none). */
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
  /** Attributes bit 4: the batch belongs to its producer's open transaction. Default false. */
  transactional?: boolean;
  /** Attributes bit 5: a control batch (a transaction marker, see control-record.ts). Default false. */
  control?: boolean;
}

// ---------------------------------------------------------------- encode

function bytesLength(name: string, value: unknown): number {
  return lengthOf(checkField(name, value));
}

function checkField(name: string, value: unknown): HeaderValue {
  if (value !== null && typeof value !== 'string' && !(value instanceof Uint8Array)) {
    throw new TypeError(`${name} must be a Buffer, Uint8Array, string or null`);
  }
  return value;
}

/** Bytes of a field's content; -1 for null. */
function lengthOf(value: HeaderValue): number {
  if (value === null) return -1;
  return typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.length;
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

/**
 * `headers` (either form) as a list of pairs, every key and value checked:
 * the array form itself, the object form spread out key by key.
 */
function headerList(name: string, headers: unknown): Array<{ key: string; value: HeaderValue }> {
  if (Array.isArray(headers)) {
    for (let j = 0; j < headers.length; j++) {
      const h: unknown = headers[j];
      if (h === null || typeof h !== 'object' || typeof (h as { key: unknown }).key !== 'string') {
        throw new TypeError(`${name}[${j}] must be an object with a string key`);
      }
      checkHeaderValue(`${name}[${j}].value`, (h as { value: unknown }).value);
    }
    return headers as Array<{ key: string; value: HeaderValue }>;
  }
  // Only a plain object: a Map keeps its entries out of its own properties, so it would lose its headers silently.
  const proto = headers === null || typeof headers !== 'object' ? undefined : Object.getPrototypeOf(headers);
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError(`${name} must be an array of { key, value } or a plain object of key: value | value[]`);
  }
  const list: Array<{ key: string; value: HeaderValue }> = [];
  for (const [key, value] of Object.entries(headers as Record<string, unknown>)) {
    if (!Array.isArray(value)) {
      list.push({ key, value: checkHeaderValue(`${name}[${JSON.stringify(key)}]`, value) });
      continue;
    }
    for (let j = 0; j < value.length; j++) list.push({ key, value: checkHeaderValue(`${name}[${JSON.stringify(key)}][${j}]`, value[j]) });
  }
  return list;
}

function checkHeaderValue(name: string, value: unknown): HeaderValue {
  if (value === undefined) throw new TypeError(`${name} is required (null for none)`);
  return checkField(name, value);
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
 * Kafka producers write it. `allocate(size)` gives the memory the batch is
 * encoded into (exactly `size` bytes; default a fresh Buffer), so a caller
 * can encode into memory it reuses.
 */
export function encodeBatch(records: RecordInput[], options?: EncodeOptions, allocate: (size: number) => Buffer = Buffer.allocUnsafe): Buffer {
  if (!Array.isArray(records)) throw new TypeError('records must be an array');
  const count = records.length;
  if (count === 0) throw new RangeError('records must not be empty');
  const o = checkOptions<EncodeOptions>('options', options);
  const baseOffset = o.baseOffset === undefined ? 0 : checkInteger('options.baseOffset', o.baseOffset, 0, MAX_SAFE - (count - 1));
  const compression = o.compression === undefined ? null : compressionCodec(o.compression);
  const now = o.now === undefined ? Date.now() : checkInteger('options.now', o.now);
  const leaderEpoch = o.partitionLeaderEpoch === undefined ? -1 : checkInteger('options.partitionLeaderEpoch', o.partitionLeaderEpoch, -1, INT32_MAX);
  const logAppendTime = o.logAppendTime === undefined ? -1 : checkInteger('options.logAppendTime', o.logAppendTime);
  const producerId = o.producerId === undefined ? -1 : checkInteger('options.producerId', o.producerId, -1);
  const producerEpoch = o.producerEpoch === undefined ? -1 : checkInteger('options.producerEpoch', o.producerEpoch, -1, 0x7fff);
  const baseSequence = o.baseSequence === undefined ? -1 : checkInteger('options.baseSequence', o.baseSequence, -1, INT32_MAX);
  const flags =
    (o.transactional === undefined || !checkBoolean('options.transactional', o.transactional) ? 0 : TRANSACTIONAL_BIT) |
    (o.control === undefined || !checkBoolean('options.control', o.control) ? 0 : CONTROL_BIT);

  // Pass 1: check every record and measure it, so that pass 2 writes into
  // one buffer of the exact size. Per record, `lengths` holds bodySize,
  // keyLength, valueLength, then keyLength and valueLength of each header.
  const timestamps = new Array<number>(count);
  // Per record, its headers as a checked list of pairs.
  const lists = new Array<Array<{ key: string; value: HeaderValue }> | undefined>(count);
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
    const headers = r.headers === undefined ? undefined : headerList(`records[${i}].headers`, r.headers);
    lists[i] = headers;
    let headersSize = 0;
    if (headers !== undefined) {
      for (const h of headers) {
        const hk = Buffer.byteLength(h.key, 'utf8');
        const hv = lengthOf(h.value);
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
  // Compressed records are a scratch input to the codec; only the batch itself goes into `allocate`'s memory.
  const out = compression === null ? allocate(BATCH_HEADER_SIZE + recordsSize) : Buffer.allocUnsafe(recordsSize);
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
    const headers = lists[i];
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
    batch = allocate(BATCH_HEADER_SIZE + block.length);
    batch.set(block, BATCH_HEADER_SIZE);
  }
  writeI64(batch, 0, baseOffset);
  writeI32(batch, OFF_BATCH_LENGTH, batch.length - BATCH_OVERHEAD);
  writeI32(batch, OFF_LEADER_EPOCH, leaderEpoch);
  batch[OFF_MAGIC] = MAGIC;
  writeI16(batch, OFF_ATTRIBUTES, (compression === null ? 0 : compression.id) | (logAppendTime < 0 ? 0 : TIMESTAMP_TYPE_BIT) | flags);
  writeI32(batch, OFF_LAST_OFFSET_DELTA, count - 1);
  writeI64(batch, OFF_BASE_TIMESTAMP, baseTimestamp);
  writeI64(batch, OFF_MAX_TIMESTAMP, logAppendTime < 0 ? maxTimestamp : logAppendTime);
  writeI64(batch, OFF_PRODUCER_ID, producerId);
  writeI16(batch, OFF_PRODUCER_EPOCH, producerEpoch);
  writeI32(batch, OFF_BASE_SEQUENCE, baseSequence);
  writeI32(batch, OFF_RECORDS_COUNT, count);
  writeI32(batch, OFF_CRC, crc32c(batch.subarray(OFF_ATTRIBUTES)));
  return batch;
}

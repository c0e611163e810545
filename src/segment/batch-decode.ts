// Decoding the records of a RecordBatch v2: all of them (decodeBatch for
// callers with bytes of unknown origin, decodeChecked for the log's reads,
// whose CRCs were just checked), one at a time (RecordCursor, for records()),
// or the one at an offset (recordAt) or timestamp (offsetAtTimestamp), which
// step over the others by their length prefixes, or as spans of their bytes
// for the cleaner to keep or drop (recordSpans). One record parser for all.
import { SeglogError } from '../errors.js';
import { checkBytes } from '../validate.js';
import { BATCH_HEADER_SIZE, MIN_RECORD_SIZE, OFF_ATTRIBUTES, checkBatch, corrupt, type BatchHeader } from './batch-header.js';
import { codecById, KAFKA_CODEC_NAMES, type CodecId } from './codecs.js';
import { VarintReader } from './varint.js';

export interface LogRecord {
  offset: number;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<{ key: string; value: Buffer | null }>;
}

/**
 * Decodes every record of the one batch that `batch` holds (exactly: extra
 * bytes are an error), after checking it as checkBatch does. Keys and values
 * are views into one private copy of the (decompressed) records, never into
 * `batch`. Throws SeglogError ECORRUPT (with `position` within `batch`) on
 * malformed content, EUNSUPPORTED when the package behind the batch's codec
 * is not installed.
 */
export function decodeBatch(batch: Uint8Array): LogRecord[] {
  checkBytes('batch', batch);
  const checked = checkBatch(batch, 0, batch.length);
  if (!checked.ok) throw corrupt(`invalid record batch (${checked.reason})`, 0);
  const h = checked.header;
  if (h.size !== batch.length) throw corrupt(`batch is ${h.size} bytes but ${batch.length} were given`, h.size);
  // The private copy: the caller may change or reuse `batch` afterwards.
  const own = h.compression === 0 ? Buffer.from(batch) : Buffer.from(batch.buffer, batch.byteOffset, batch.length);
  return decodeChecked(own, h);
}

/**
 * Every record of `batch` (exactly one whole batch, `header` parsed from it)
 * whose CRC the caller has checked: not checked again. Uncompressed keys and
 * values are views of `batch`, which must therefore stay unchanged while
 * they are used. Errors as decodeBatch.
 */
export function decodeChecked(batch: Buffer, header: BatchHeader): LogRecord[] {
  const cursor = new RecordCursor(batch, header);
  const records: LogRecord[] = [];
  for (let r = cursor.next(); r !== undefined; r = cursor.next()) records.push(r);
  return records;
}

/**
 * The records of a batch as decodeChecked takes it, decoded one at a time
 * (a reader of records one by one holds no array of them), with the same
 * views and errors; a compressed batch is decompressed when the cursor is made.
 */
export class RecordCursor {
  readonly #header: BatchHeader;
  readonly #reader: VarintReader;
  readonly #views: Views;
  #decoded = 0;

  constructor(batch: Buffer, header: BatchHeader) {
    const data = recordsBlock(batch, header);
    this.#header = header;
    this.#reader = new VarintReader(data, 0, data.length);
    this.#views = new Views(data);
  }

  /** The next record; undefined after the last. */
  next(): LogRecord | undefined {
    const reader = this.#reader;
    const h = this.#header;
    try {
      if (reader.pos >= reader.end) {
        if (this.#decoded !== h.recordsCount) throw corrupt(`batch holds ${this.#decoded} records, its header says ${h.recordsCount}`, reader.pos);
        return undefined;
      }
      if (this.#decoded === h.recordsCount) throw corrupt(`batch holds more than its ${h.recordsCount} records`, reader.pos);
      this.#decoded++;
      return decodeRecord(reader, this.#views, h);
    } catch (err) {
      throw inBatch(err, h);
    }
  }
}

/**
 * The record at `offset` in `batch` (as decodeChecked takes it), or
 * undefined if the batch does not hold it. Only that record is decoded: the
 * walk reads each record's length and offset delta and steps over the rest.
 */
export function recordAt(batch: Buffer, header: BatchHeader, offset: number): LogRecord | undefined {
  if (offset < header.baseOffset || offset > header.lastOffset) return undefined;
  return parse(batch, header, (data, h) => {
    const reader = new VarintReader(data, 0, data.length);
    while (reader.pos < data.length) {
      const start = reader.pos;
      const end = recordEnd(reader);
      reader.pos++; // attributes
      reader.varlong(); // timestamp delta
      const at = h.baseOffset + reader.varint();
      if (at > offset) return undefined;
      reader.pos = start;
      if (at === offset) return decodeRecord(reader, new Views(data), h);
      reader.pos = end;
    }
    return undefined;
  });
}

/**
 * Offset of the first record in `batch` (as decodeChecked takes it) whose
 * timestamp is >= `timestamp`, or undefined if none is. Reads only each
 * record's length, timestamp delta and offset delta.
 */
export function offsetAtTimestamp(batch: Buffer, header: BatchHeader, timestamp: number): number | undefined {
  return parse(batch, header, (data, h) => {
    const reader = new VarintReader(data, 0, data.length);
    while (reader.pos < data.length) {
      const end = recordEnd(reader);
      reader.pos++; // attributes
      const delta = reader.varlong();
      const offsetDelta = reader.varint();
      if ((h.timestampType === 'logAppend' ? h.maxTimestamp : h.baseTimestamp + delta) >= timestamp) return h.baseOffset + offsetDelta;
      reader.pos = end;
    }
    return undefined;
  });
}

/** One record of a batch as the cleaner sees it: what decides whether it stays, and its bytes to copy if it does. */
export interface RecordSpan {
  offset: number;
  timestampDelta: number;
  key: Buffer | null;
  /** A null value: a tombstone. */
  tombstone: boolean;
  /** The record's attributes byte. */
  attributes: number;
  /** The record's bytes after its timestamp delta (offset delta, key, value, headers), a view of the records block. */
  rest: Buffer;
}

/**
 * The records of `batch` (as decodeChecked takes it) as spans of its
 * (decompressed) records block, each record's length and fields checked as
 * decoding checks them; values and headers are stepped over, not decoded.
 */
export function recordSpans(batch: Buffer, header: BatchHeader): RecordSpan[] {
  return parse(batch, header, (data, h) => {
    const reader = new VarintReader(data, 0, data.length);
    const views = new Views(data);
    const spans: RecordSpan[] = [];
    while (reader.pos < data.length) {
      const start = reader.pos;
      const end = recordEnd(reader);
      const attributes = data[reader.pos++]!;
      const timestampDelta = reader.varlong();
      const restStart = reader.pos;
      const offsetDelta = reader.varint();
      if (offsetDelta < 0 || offsetDelta > h.lastOffsetDelta) throw corrupt(`record offset delta ${offsetDelta} out of range`, start);
      const key = readField(reader, views, end, 'key');
      const tombstone = readField(reader, views, end, 'value') === null;
      spans.push({ offset: h.baseOffset + offsetDelta, timestampDelta, key, tombstone, attributes, rest: views.of(restStart, end - restStart) });
      reader.pos = end;
    }
    if (spans.length !== h.recordsCount) throw corrupt(`batch holds ${spans.length} records, its header says ${h.recordsCount}`, reader.pos);
    return spans;
  });
}

/**
 * Checks the records of a whole uncompressed batch (as decodeChecked takes
 * it) as a broker does before it takes a producer's batch: exactly as many
 * as its header says, offset deltas 0, 1, 2..., nothing after the last.
 * Reads only each record's length, timestamp delta and offset delta. Returns
 * the smallest and largest record timestamp, leaving out records without one
 * (-1), as Kafka's checks of timestamps do; both NaN when none has one.
 * ECORRUPT (position within `batch`) when a check fails.
 */
export function recordTimestampRange(batch: Buffer, header: BatchHeader): { min: number; max: number } {
  if (header.compression !== 0) throw new RangeError('recordTimestampRange reads uncompressed batches only');
  return parse(batch, header, (data, h) => {
    const reader = new VarintReader(data, 0, data.length);
    const logAppend = h.timestampType === 'logAppend';
    let min = Number.NaN;
    let max = Number.NaN;
    for (let i = 0; i < h.recordsCount; i++) {
      if (reader.pos >= data.length) throw corrupt(`batch holds ${i} records, its header says ${h.recordsCount}`, reader.pos);
      const start = reader.pos;
      const end = recordEnd(reader);
      reader.pos++; // attributes
      // A one-byte timestamp delta (records of one millisecond) is read inline: a broker walks every producer batch.
      const b = data[reader.pos]!;
      const delta = b < 0x80 ? (reader.pos++, (b >>> 1) ^ -(b & 1)) : reader.varlong();
      if (reader.varint() !== i || reader.pos > end) throw corrupt(`record ${i} has an offset delta other than ${i}`, start);
      const timestamp = logAppend ? h.maxTimestamp : h.baseTimestamp + delta;
      if (timestamp !== -1) {
        if (!(timestamp >= min)) min = timestamp;
        if (!(timestamp <= max)) max = timestamp;
      }
      reader.pos = end;
    }
    if (reader.pos !== data.length) throw corrupt(`batch holds more than its ${h.recordsCount} records`, reader.pos);
    return { min, max };
  });
}

/**
 * Runs `decode` over the records of a whole batch (recordsBlock); ECORRUPT
 * positions from `decode` are made positions within the batch.
 */
function parse<T>(batch: Buffer, h: BatchHeader, decode: (data: Buffer, h: BatchHeader) => T): T {
  const data = recordsBlock(batch, h);
  try {
    return decode(data, h);
  } catch (err) {
    throw inBatch(err, h);
  }
}

/** The records of a whole batch: a view of them when uncompressed, else the decompressed block. */
function recordsBlock(batch: Buffer, h: BatchHeader): Buffer {
  if (h.compression === 0) return batch.subarray(BATCH_HEADER_SIZE, h.size);
  if (h.compression > 4) throw corrupt(`unknown compression type ${h.compression}`, OFF_ATTRIBUTES);
  const name = KAFKA_CODEC_NAMES[h.compression as CodecId];
  const codec = codecById(h.compression as CodecId);
  let raw: Uint8Array;
  try {
    raw = codec.decompress(batch.subarray(BATCH_HEADER_SIZE, h.size));
  } catch (err) {
    // A codec whose package is missing says so; anything else it throws means the block is damaged.
    if (err instanceof SeglogError && err.code === 'EUNSUPPORTED') throw err;
    throw corrupt(`cannot decompress ${name} records: ${(err as Error).message}`, BATCH_HEADER_SIZE, err);
  }
  if (!(raw instanceof Uint8Array)) throw new TypeError(`codec for ${name} decompress() must return a Uint8Array`);
  return Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.length);
}

/** `err` from decoding the records block of batch `h`, its ECORRUPT position made a position within the batch. */
function inBatch(err: unknown, h: BatchHeader): unknown {
  const e = err as SeglogError;
  if (e.code !== 'ECORRUPT') return err;
  if (h.compression === 0) return corrupt(`${e.message} at byte ${BATCH_HEADER_SIZE + e.position!} of the batch`, BATCH_HEADER_SIZE + e.position!);
  // A position in decompressed data means nothing in the batch: blame the block.
  return corrupt(`${e.message} at byte ${e.position!} of the decompressed ${KAFKA_CODEC_NAMES[h.compression as CodecId]} records`, BATCH_HEADER_SIZE);
}

/** Reads a record's length prefix at reader.pos and returns where the record ends; the reader is left after the prefix. */
function recordEnd(reader: VarintReader): number {
  const start = reader.pos;
  const length = reader.varint();
  // The length prefix itself is one of MIN_RECORD_SIZE's bytes.
  if (length < MIN_RECORD_SIZE - 1 || length > reader.end - reader.pos) throw corrupt(`record length ${length} out of range`, start);
  return reader.pos + length;
}

/**
 * Node's own Buffer class, the one its Buffers are made with (Buffer's
 * species names it, so that map() and the like make Buffers). Keys and
 * values are made with it over the block's ArrayBuffer, looked up once:
 * Buffer.prototype.subarray looks up its source's ArrayBuffer on every call
 * (a call into the runtime), which cost more than the rest of a small
 * record's decoding. A class of our own extending Uint8Array would do as
 * well until a bundler redefines its name (tsx, esbuild's keepNames):
 * constructing it then took 8x as long.
 */
const NodeBuffer = (Buffer as unknown as { [Symbol.species]: new (memory: ArrayBuffer, byteOffset: number, length: number) => Buffer })[Symbol.species];

/** Views of one decoded block's bytes: its ArrayBuffer looked up once. */
class Views {
  readonly #memory: ArrayBuffer;
  readonly #base: number;

  constructor(data: Buffer) {
    this.#memory = data.buffer as ArrayBuffer; // or a SharedArrayBuffer, which Uint8Array takes alike
    this.#base = data.byteOffset;
  }

  /** [p, p + length) of the block, as a Buffer. */
  of(p: number, length: number): Buffer {
    return new NodeBuffer(this.#memory, this.#base + p, length);
  }
}

/** A length-prefixed field at reader.pos that must end by `end`, as a view; null for length -1. */
function readField(reader: VarintReader, views: Views, end: number, what: string): Buffer | null {
  const at = reader.pos;
  const length = reader.varint();
  if (length === -1) return null;
  if (length < -1 || length > end - reader.pos) throw corrupt(`${what} length ${length} out of range`, at);
  const p = reader.pos;
  reader.pos += length;
  return views.of(p, length);
}

/** Decodes the record at reader.pos of `data` and leaves the reader after it; ECORRUPT positions are within `data`. */
function decodeRecord(reader: VarintReader, views: Views, h: BatchHeader): LogRecord {
  const start = reader.pos;
  const end = recordEnd(reader);
  const bodyStart = reader.pos;
  reader.pos++; // attributes: no record-level attribute is defined in v2
  const timestampDelta = reader.varlong();
  const offsetDelta = reader.varint();
  if (offsetDelta < 0 || offsetDelta > h.lastOffsetDelta) throw corrupt(`record offset delta ${offsetDelta} out of range`, start);
  const timestamp = h.timestampType === 'logAppend' ? h.maxTimestamp : h.baseTimestamp + timestampDelta;
  if (!Number.isSafeInteger(timestamp)) throw corrupt('record timestamp beyond the safe integer range', start);
  const key = readField(reader, views, end, 'key');
  const value = readField(reader, views, end, 'value');
  const headersCount = reader.varint();
  // Each header takes at least two bytes: its two length prefixes.
  if (headersCount < 0 || headersCount * 2 > end - reader.pos) throw corrupt(`headers count ${headersCount} out of range`, start);
  const headers: LogRecord['headers'] = [];
  for (let j = 0; j < headersCount; j++) {
    const headerKey = readField(reader, views, end, 'header key');
    if (headerKey === null) throw corrupt('header key is null', start);
    headers.push({ key: headerKey.toString('utf8'), value: readField(reader, views, end, 'header value') });
  }
  if (reader.pos !== end) throw corrupt(`record is ${end - bodyStart} bytes but its fields take ${reader.pos - bodyStart}`, start);
  return { offset: h.baseOffset + offsetDelta, timestamp, key, value, headers };
}

// A batch with some of its records left out, as Kafka's cleaner writes it:
// the same base offset, last offset delta and producer fields, the kept
// records' bytes as they were (offset deltas unchanged, so gaps remain
// where records went), recompressed with the batch's own codec, a new CRC.
// With a delete horizon the batch carries it as Kafka does since KIP-534
// (attributes bit 6, the horizon in baseTimestamp, record timestamp deltas
// moved to it). A batch left with no record keeps only its header (Kafka's
// empty batch), uncompressed.
import { crc32c } from '../native.js';
import {
  BATCH_HEADER_SIZE,
  BATCH_OVERHEAD,
  COMPRESSION_MASK,
  OFF_ATTRIBUTES,
  OFF_BASE_TIMESTAMP,
  OFF_BATCH_LENGTH,
  OFF_CRC,
  OFF_MAX_TIMESTAMP,
  OFF_RECORDS_COUNT,
  writeI16,
  writeI32,
  writeI64,
  type BatchHeader,
} from './batch-header.js';
import type { RecordSpan } from './batch-decode.js';
import { codecById, type CodecId } from './codecs.js';
import { varintSize, varlongSize, writeVarint, writeVarlong } from './varint.js';

/** Attributes bit 6: baseTimestamp holds the batch's delete horizon (Kafka's DELETE_HORIZON_FLAG_MASK). */
export const DELETE_HORIZON_BIT = 0x40;

/** The delete horizon a batch carries (ms since the epoch), or undefined when it has none. */
export function deleteHorizonOf(header: BatchHeader): number | undefined {
  return (header.attributes & DELETE_HORIZON_BIT) !== 0 ? header.baseTimestamp : undefined;
}

/**
 * The batch `batch` (one whole batch, `header` parsed from it) with only the
 * records `kept` (spans of it from recordSpans, in order). With
 * `deleteHorizon` (a batch that has none yet), that horizon is written in.
 */
export function filterBatch(batch: Buffer, header: BatchHeader, kept: readonly RecordSpan[], deleteHorizon?: number): Buffer {
  const base = deleteHorizon ?? header.baseTimestamp;
  // Record timestamps are baseTimestamp + delta: a new base moves every delta by the difference.
  const shift = header.baseTimestamp - base;
  let size = 0;
  for (const r of kept) size += recordSize(r, r.timestampDelta + shift);
  const records = Buffer.allocUnsafe(size);
  let p = 0;
  let maxTimestamp = -1;
  for (const r of kept) {
    const delta = r.timestampDelta + shift;
    p = writeVarint(records, p, bodySize(r, delta));
    records[p++] = r.attributes;
    p = writeVarlong(records, p, delta);
    records.set(r.rest, p);
    p += r.rest.length;
    maxTimestamp = Math.max(maxTimestamp, header.baseTimestamp + r.timestampDelta);
  }
  let attributes = header.attributes;
  if (deleteHorizon !== undefined) attributes |= DELETE_HORIZON_BIT;
  const compression = attributes & COMPRESSION_MASK;
  let payload: Uint8Array = records;
  if (kept.length === 0) attributes &= ~COMPRESSION_MASK;
  else if (compression !== 0) payload = codecById(compression as CodecId).compress(records);
  const out = Buffer.allocUnsafe(BATCH_HEADER_SIZE + payload.length);
  batch.copy(out, 0, 0, BATCH_HEADER_SIZE);
  out.set(payload, BATCH_HEADER_SIZE);
  writeI32(out, OFF_BATCH_LENGTH, out.length - BATCH_OVERHEAD);
  writeI16(out, OFF_ATTRIBUTES, attributes);
  writeI64(out, OFF_BASE_TIMESTAMP, base);
  // A LogAppendTime batch's records all read as its maxTimestamp; an empty one keeps its own (Kafka's empty batch).
  if (header.timestampType === 'create' && kept.length > 0) writeI64(out, OFF_MAX_TIMESTAMP, maxTimestamp);
  writeI32(out, OFF_RECORDS_COUNT, kept.length);
  writeI32(out, OFF_CRC, crc32c(out.subarray(OFF_ATTRIBUTES)));
  return out;
}

/** Bytes of a record after its length prefix, with timestamp delta `delta`. */
function bodySize(r: RecordSpan, delta: number): number {
  return 1 + varlongSize(delta) + r.rest.length;
}

function recordSize(r: RecordSpan, delta: number): number {
  const body = bodySize(r, delta);
  return varintSize(body) + body;
}

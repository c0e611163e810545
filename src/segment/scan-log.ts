// Recovery's judgement of a .log: the batch walk with every check on, then,
// where it stopped short of the end, whether that is a torn tail (cut it) or
// damage with valid data after it (refuse, unless repairing). Only reads:
// Segment.recover and `seglog verify` share it.
import type { BatchReader } from './batch-reader.js';
import { walkBatches } from './batch-walk.js';
import { BATCH_HEADER_SIZE, MAGIC, type BatchHeader } from './batch.js';

/** What scanLog() found. */
export interface ScanResult {
  /** Bytes of valid batches from the start of the file. */
  validBytes: number;
  batches: number;
  /** Offset after the last valid batch (`baseOffset` when there is none). */
  nextOffset: number;
  /** Why the bytes at validBytes are not a valid batch; undefined when the scan reached the end. */
  reason?: string;
  /**
   * The invalid bytes are not just a torn tail: a whole valid batch with an
   * offset out of order, or a valid batch somewhere after them.
   */
  corrupt: boolean;
}

/**
 * Checks every batch of a .log from position 0 (size, magic, CRC, offsets
 * increasing from `baseOffset`, gaps allowed below `gapsBelow`), calling
 * `onBatch` for each valid one, up to the first invalid bytes.
 */
export async function scanLog(
  reader: BatchReader,
  baseOffset: number,
  onBatch?: (header: BatchHeader, position: number) => void,
  gapsBelow = 0,
): Promise<ScanResult> {
  const end = await walkBatches(reader, { baseOffset, checkCrc: true, gapsBelow, ...(onBatch === undefined ? {} : { onBatch }) });
  const result = { validBytes: end.position, batches: end.batches, nextOffset: end.nextOffset };
  if (end.reason === undefined) return { ...result, corrupt: false };
  // A torn write leaves no whole batch behind: a valid one with offsets out of place is damage (or a misnamed file).
  const corrupt = end.misplaced !== undefined || (await findValidBatchAfter(reader, end.position, baseOffset)) !== undefined;
  return { ...result, reason: end.reason, corrupt };
}

/** Position of any valid batch starting after `from`: proof that the damage is not just a torn tail. */
async function findValidBatchAfter(reader: BatchReader, from: number, baseOffset: number): Promise<number | undefined> {
  for (let p = from + 1; p + BATCH_HEADER_SIZE <= reader.end; p++) {
    // Cheap pre-filter on the magic byte before a full CRC check.
    const magic = await reader.bytes(p + 16, 1);
    if (magic[0] !== MAGIC) continue;
    const r = await reader.check(p);
    if (r.ok && r.header.baseOffset >= baseOffset) return p;
  }
  return undefined;
}

// Kafka's transaction markers (EndTransactionMarker): the one record of a
// control batch (attributes bits 4 and 5) that ends a producer's
// transaction. Key: version i16 (0), type i16 (0 ABORT, 1 COMMIT); value:
// version i16 (0), coordinatorEpoch i32. Encoded here for appendControl and
// parsed here for every control batch a log takes or replays.
import { encodeBatch } from './batch.js';
import { decodeChecked } from './batch-decode.js';
import type { BatchHeader } from './batch-header.js';

export type MarkerType = 'abort' | 'commit';

export interface TxnMarker {
  type: MarkerType;
  coordinatorEpoch: number;
}

const ABORT = 0;
const COMMIT = 1;
const KEY_BYTES = 4;
const VALUE_BYTES = 6;

export interface ControlBatchOptions extends TxnMarker {
  producerId: number;
  producerEpoch: number;
  timestamp: number;
}

/** A control batch holding one marker, as a transaction coordinator's WriteTxnMarkers has the leader write it. */
export function encodeControlBatch(o: ControlBatchOptions, allocate?: (size: number) => Buffer): Buffer {
  const key = Buffer.alloc(KEY_BYTES);
  key.writeInt16BE(o.type === 'commit' ? COMMIT : ABORT, 2);
  const value = Buffer.alloc(VALUE_BYTES);
  value.writeInt32BE(o.coordinatorEpoch, 2);
  return encodeBatch(
    [{ key, value, timestamp: o.timestamp }],
    { producerId: o.producerId, producerEpoch: o.producerEpoch, baseSequence: -1, transactional: true, control: true },
    allocate,
  );
}

/**
 * The marker of the control batch `batch` (whole, CRC checked, `header`
 * parsed), or why it is not one Kafka would write: not transactional, not
 * exactly one record, a key or value of another layout or version, an
 * unknown type.
 */
export function parseControlBatch(batch: Buffer, header: BatchHeader): TxnMarker | string {
  if (!header.transactional) return 'a control batch that is not transactional';
  let records;
  try {
    records = decodeChecked(batch, header);
  } catch (err) {
    return `records do not decode (${(err as Error).message})`;
  }
  if (records.length !== 1) return `a control batch of ${records.length} records, not 1`;
  const { key, value } = records[0]!;
  if (key === null || key.length !== KEY_BYTES || key.readInt16BE(0) !== 0) return 'a control record key that is not version 0 of 4 bytes';
  const type = key.readInt16BE(2);
  if (type !== ABORT && type !== COMMIT) return `control record type ${type} is not ABORT (0) or COMMIT (1)`;
  if (value === null || value.length !== VALUE_BYTES || value.readInt16BE(0) !== 0) return 'a marker value that is not version 0 of 6 bytes';
  return { type: type === COMMIT ? 'commit' : 'abort', coordinatorEpoch: value.readInt32BE(2) };
}

// Expected bytes of Kafka's producer-state files, built here from Kafka's
// layouts independently of seglog's encoders, so a test compares the files
// seglog writes against what Kafka would write.
import type { SnapshotEntry } from '../../src/log/producer-snapshot.js';

/** CRC-32C (Castagnoli), bit by bit. */
export function crc32cBitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** Kafka's AbortedTxn entries (.txnindex): version 0 (i16), producerId, firstOffset, lastOffset, lastStableOffset (i64). */
export function txnIndexBytes(entries: Array<[producerId: number, first: number, last: number, lso: number]>): Buffer {
  const parts = entries.map(([pid, first, last, lso]) => {
    const b = Buffer.alloc(34);
    b.writeInt16BE(0, 0);
    b.writeBigInt64BE(BigInt(pid), 2);
    b.writeBigInt64BE(BigInt(first), 10);
    b.writeBigInt64BE(BigInt(last), 18);
    b.writeBigInt64BE(BigInt(lso), 26);
    return b;
  });
  return Buffer.concat(parts);
}

/**
 * Kafka's ProducerSnapshot v1: version i16 = 1, crc u32 (CRC-32C of what
 * follows it), the entries array (count i32), each entry ProducerId i64,
 * Epoch i16, LastSequence i32, LastOffset i64, OffsetDelta i32, Timestamp
 * i64, CoordinatorEpoch i32, CurrentTxnFirstOffset i64.
 */
export function snapshotBytes(rows: SnapshotEntry[]): Buffer {
  const body = Buffer.alloc(4 + rows.length * 46);
  body.writeInt32BE(rows.length, 0);
  rows.forEach((r, i) => {
    let p = 4 + i * 46;
    body.writeBigInt64BE(BigInt(r.producerId), p);
    body.writeInt16BE(r.epoch, (p += 8));
    body.writeInt32BE(r.lastSequence, (p += 2));
    body.writeBigInt64BE(BigInt(r.lastOffset), (p += 4));
    body.writeInt32BE(r.offsetDelta, (p += 8));
    body.writeBigInt64BE(BigInt(r.timestamp), (p += 4));
    body.writeInt32BE(r.coordinatorEpoch, (p += 8));
    body.writeBigInt64BE(BigInt(r.currentTxnFirstOffset), (p += 4));
  });
  const head = Buffer.alloc(6);
  head.writeInt16BE(1, 0);
  head.writeUInt32BE(crc32cBitwise(body), 2);
  return Buffer.concat([head, body]);
}

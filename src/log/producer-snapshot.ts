// Producer snapshot files (Kafka's ProducerStateManager snapshots):
// `<20-digit offset>.snapshot` holds the producer state as of that offset,
// so open and truncation replay batch headers from there instead of from
// the start. Kafka's layout, version 1: version i16, CRC-32C u32 over
// everything after it, entry count i32, then per entry producerId i64,
// epoch i16, lastSequence i32, lastOffset i64, offsetDelta i32 (lastOffset -
// the batch's first offset), timestamp i64, coordinatorEpoch i32,
// currentTxnFirstOffset i64 (-1: none).
//
// Kafka writes one entry per producer (its last batch). seglog writes one
// per retained batch (up to 5 per producer, oldest first, the same epoch,
// coordinator epoch and transaction in each): a reader that keeps the last
// entry per producer, as Kafka's does, gets Kafka's state, and seglog gets
// the whole duplicate window back.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../common/durable-files.js';
import { snapshotFileName } from '../layout.js';
import { crc32c, File } from '../native.js';

export interface SnapshotEntry {
  producerId: number;
  epoch: number;
  lastSequence: number;
  lastOffset: number;
  offsetDelta: number;
  timestamp: number;
  coordinatorEpoch: number;
  currentTxnFirstOffset: number;
}

const VERSION = 1;
const CRC_AT = 2;
const ENTRIES_AT = 6;
const ENTRY_BYTES = 46;

export function encodeSnapshot(entries: readonly SnapshotEntry[]): Buffer {
  const out = Buffer.alloc(ENTRIES_AT + 4 + entries.length * ENTRY_BYTES);
  out.writeInt16BE(VERSION, 0);
  out.writeInt32BE(entries.length, ENTRIES_AT);
  let p = ENTRIES_AT + 4;
  for (const e of entries) {
    out.writeBigInt64BE(BigInt(e.producerId), p);
    out.writeInt16BE(e.epoch, p + 8);
    out.writeInt32BE(e.lastSequence, p + 10);
    out.writeBigInt64BE(BigInt(e.lastOffset), p + 14);
    out.writeInt32BE(e.offsetDelta, p + 22);
    out.writeBigInt64BE(BigInt(e.timestamp), p + 26);
    out.writeInt32BE(e.coordinatorEpoch, p + 34);
    out.writeBigInt64BE(BigInt(e.currentTxnFirstOffset), p + 38);
    p += ENTRY_BYTES;
  }
  out.writeUInt32BE(crc32c(out.subarray(ENTRIES_AT)), CRC_AT);
  return out;
}

/** The entries of a snapshot's bytes, or undefined when they are not a whole, intact version-1 snapshot. */
export function decodeSnapshot(bytes: Buffer): SnapshotEntry[] | undefined {
  if (bytes.length < ENTRIES_AT + 4 || bytes.readInt16BE(0) !== VERSION) return undefined;
  const count = bytes.readInt32BE(ENTRIES_AT);
  if (count < 0 || bytes.length !== ENTRIES_AT + 4 + count * ENTRY_BYTES) return undefined;
  if (bytes.readUInt32BE(CRC_AT) !== crc32c(bytes.subarray(ENTRIES_AT))) return undefined;
  const out: SnapshotEntry[] = [];
  for (let p = ENTRIES_AT + 4; p < bytes.length; p += ENTRY_BYTES) {
    const e: SnapshotEntry = {
      producerId: Number(bytes.readBigInt64BE(p)),
      epoch: bytes.readInt16BE(p + 8),
      lastSequence: bytes.readInt32BE(p + 10),
      lastOffset: Number(bytes.readBigInt64BE(p + 14)),
      offsetDelta: bytes.readInt32BE(p + 22),
      timestamp: Number(bytes.readBigInt64BE(p + 26)),
      coordinatorEpoch: bytes.readInt32BE(p + 34),
      currentTxnFirstOffset: Number(bytes.readBigInt64BE(p + 38)),
    };
    if (![e.producerId, e.lastOffset, e.timestamp, e.currentTxnFirstOffset].every(Number.isSafeInteger) || e.producerId < 0) return undefined;
    out.push(e);
  }
  return out;
}

/** Writes the snapshot at `offset` in `dir` atomically (a crash leaves none or all of it). */
export function writeSnapshot(dir: string, offset: number, entries: readonly SnapshotEntry[]): Promise<void> {
  return writeFileAtomic(join(dir, snapshotFileName(offset)), encodeSnapshot(entries));
}

/** The entries of the snapshot at `offset` in `dir`; undefined when it is damaged. */
export async function readSnapshot(dir: string, offset: number): Promise<SnapshotEntry[] | undefined> {
  const { file, size } = await File.openSized(join(dir, snapshotFileName(offset)));
  try {
    const bytes = Buffer.alloc(size);
    if ((await file.read(bytes, 0)) !== size) return undefined;
    return decodeSnapshot(bytes);
  } finally {
    await file.close();
  }
}

/** Removes the snapshots at `offsets` in `dir` (the caller fsyncs the directory when that must be durable). */
export async function removeSnapshots(dir: string, offsets: readonly number[]): Promise<void> {
  await Promise.all(offsets.map((o) => rm(join(dir, snapshotFileName(o)), { force: true })));
}

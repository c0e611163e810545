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
import { readI16, readI32, readI64, writeI16, writeI32, writeI64 } from '../segment/batch-header.js';

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
  writeI16(out, 0, VERSION);
  writeI32(out, ENTRIES_AT, entries.length);
  let p = ENTRIES_AT + 4;
  for (const e of entries) {
    writeI64(out, p, e.producerId);
    writeI16(out, p + 8, e.epoch);
    writeI32(out, p + 10, e.lastSequence);
    writeI64(out, p + 14, e.lastOffset);
    writeI32(out, p + 22, e.offsetDelta);
    writeI64(out, p + 26, e.timestamp);
    writeI32(out, p + 34, e.coordinatorEpoch);
    writeI64(out, p + 38, e.currentTxnFirstOffset);
    p += ENTRY_BYTES;
  }
  out.writeUInt32BE(crc32c(out.subarray(ENTRIES_AT)), CRC_AT);
  return out;
}

/** The entries of a snapshot's bytes, or undefined when they are not a whole, intact version-1 snapshot. */
export function decodeSnapshot(bytes: Buffer): SnapshotEntry[] | undefined {
  if (bytes.length < ENTRIES_AT + 4 || readI16(bytes, 0) !== VERSION) return undefined;
  const count = readI32(bytes, ENTRIES_AT);
  if (count < 0 || bytes.length !== ENTRIES_AT + 4 + count * ENTRY_BYTES) return undefined;
  if (bytes.readUInt32BE(CRC_AT) !== crc32c(bytes.subarray(ENTRIES_AT))) return undefined;
  const out: SnapshotEntry[] = [];
  for (let p = ENTRIES_AT + 4; p < bytes.length; p += ENTRY_BYTES) {
    const e: SnapshotEntry = {
      producerId: readI64(bytes, p),
      epoch: readI16(bytes, p + 8),
      lastSequence: readI32(bytes, p + 10),
      lastOffset: readI64(bytes, p + 14),
      offsetDelta: readI32(bytes, p + 22),
      timestamp: readI64(bytes, p + 26),
      coordinatorEpoch: readI32(bytes, p + 34),
      currentTxnFirstOffset: readI64(bytes, p + 38),
    };
    // readI64 gives NaN beyond the safe integer range.
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

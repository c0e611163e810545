// The bytes of one index entry, big-endian as in Kafka: the offset index's
// relative offset (i32) and file position (i32), the time index's timestamp
// (i64) and relative offset (i32). The index classes read their mappings
// with these and `seglog verify` / `seglog dump` read plain file bytes with
// the same functions: one decoder per format.
import { OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES } from '../layout.js';

const TWO_32 = 2 ** 32;

export const offsetEntry = {
  bytes: OFFSET_INDEX_ENTRY_BYTES,
  /** The entry's offset minus the segment's base offset. */
  relativeOffset(b: Buffer, slot: number): number {
    return b.readInt32BE(slot * OFFSET_INDEX_ENTRY_BYTES);
  },
  /** The .log position of the batch holding that offset. */
  position(b: Buffer, slot: number): number {
    return b.readInt32BE(slot * OFFSET_INDEX_ENTRY_BYTES + 4);
  },
  write(b: Buffer, slot: number, relativeOffset: number, position: number): void {
    b.writeInt32BE(relativeOffset, slot * OFFSET_INDEX_ENTRY_BYTES);
    b.writeInt32BE(position, slot * OFFSET_INDEX_ENTRY_BYTES + 4);
  },
};

export const timeEntry = {
  bytes: TIME_INDEX_ENTRY_BYTES,
  /**
   * The entry's timestamp; NaN when it is not a safe integer. Two 32-bit
   * reads instead of readBigInt64BE: no BigInt per probe. A value outside
   * the safe range cannot round back into it, so the check is exact.
   */
  timestamp(b: Buffer, slot: number): number {
    const timestamp = b.readInt32BE(slot * TIME_INDEX_ENTRY_BYTES) * TWO_32 + b.readUInt32BE(slot * TIME_INDEX_ENTRY_BYTES + 4);
    return Number.isSafeInteger(timestamp) ? timestamp : Number.NaN;
  },
  /** The offset minus the segment's base offset of the batch that first reached the timestamp. */
  relativeOffset(b: Buffer, slot: number): number {
    return b.readInt32BE(slot * TIME_INDEX_ENTRY_BYTES + 8);
  },
  write(b: Buffer, slot: number, timestamp: number, relativeOffset: number): void {
    const at = slot * TIME_INDEX_ENTRY_BYTES;
    const high = Math.floor(timestamp / TWO_32);
    b.writeInt32BE(high, at);
    b.writeUInt32BE(timestamp - high * TWO_32, at + 4);
    b.writeInt32BE(relativeOffset, at + 8);
  },
};

/**
 * Whether entry `slot` (of `entryBytes` each) is all zero: past the first
 * entry, that is room a writable index preallocated, not an entry.
 */
export function isZeroEntry(b: Buffer, slot: number, entryBytes: number): boolean {
  for (let i = slot * entryBytes; i < (slot + 1) * entryBytes; i++) if (b[i] !== 0) return false;
  return true;
}

// A Kafka RecordBatch v2 decoder that shares nothing with src/: its own
// CRC-32C (bit by bit), its own varints (on BigInt), its own header parsing.
// Tests hold seglog's batches to it (test/12 the encoder's, test/3j the
// cleaner's).
import { gunzipSync } from 'node:zlib';
import { expect } from 'vitest';
import { crc32cBitwise } from './kafka-bytes.js';

class Cursor {
  constructor(
    private readonly buf: Buffer,
    public pos = 0,
  ) {}

  zigzag(): bigint {
    let z = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('varint past the end');
      const b = this.buf[this.pos++]!;
      z |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) break;
      if (shift > 63n) throw new Error('varint too long');
    }
    return (z >> 1n) ^ -(z & 1n);
  }

  int(): number {
    return Number(this.zigzag());
  }

  bytes(n: number): Buffer {
    if (this.pos + n > this.buf.length) throw new Error('bytes past the end');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  nullableBytes(): Buffer | null {
    const n = this.int();
    return n < 0 ? null : this.bytes(n);
  }
}

export interface Decoded {
  baseOffset: bigint;
  partitionLeaderEpoch: number;
  attributes: number;
  lastOffsetDelta: number;
  baseTimestamp: bigint;
  maxTimestamp: bigint;
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
  records: Array<{ offset: bigint; timestamp: bigint; key: string | null; value: string | null; headers: Array<[string, string | null]> }>;
}

/** Decodes one v2 batch straight from the Kafka spec; throws on anything off-spec. */
export function decodeFromSpec(batch: Buffer): Decoded {
  const batchLength = batch.readInt32BE(8);
  expect(batchLength + 12).toBe(batch.length);
  expect(batch.readInt8(16)).toBe(2);
  expect(batch.readUInt32BE(17)).toBe(crc32cBitwise(batch.subarray(21)));
  const attributes = batch.readInt16BE(21);
  const baseOffset = batch.readBigInt64BE(0);
  const baseTimestamp = batch.readBigInt64BE(27);
  const count = batch.readInt32BE(57);
  const compression = attributes & 7;
  expect([0, 1]).toContain(compression);
  const body = compression === 1 ? gunzipSync(batch.subarray(61)) : batch.subarray(61);
  const c = new Cursor(body);
  const records: Decoded['records'] = [];
  for (let i = 0; i < count; i++) {
    const length = c.int();
    const end = c.pos + length;
    expect(c.bytes(1)[0]).toBe(0);
    const timestampDelta = c.zigzag();
    const offsetDelta = c.zigzag();
    const key = c.nullableBytes();
    const value = c.nullableBytes();
    const headers: Array<[string, string | null]> = [];
    for (let n = c.int(); n > 0; n--) {
      const hk = c.bytes(c.int()).toString('utf8');
      headers.push([hk, c.nullableBytes()?.toString('utf8') ?? null]);
    }
    expect(c.pos).toBe(end);
    records.push({
      offset: baseOffset + offsetDelta,
      timestamp: baseTimestamp + timestampDelta,
      key: key === null ? null : key.toString('utf8'),
      value: value === null ? null : value.toString('utf8'),
      headers,
    });
  }
  expect(c.pos).toBe(body.length);
  return {
    baseOffset,
    partitionLeaderEpoch: batch.readInt32BE(12),
    attributes,
    lastOffsetDelta: batch.readInt32BE(23),
    baseTimestamp,
    maxTimestamp: batch.readBigInt64BE(35),
    producerId: batch.readBigInt64BE(43),
    producerEpoch: batch.readInt16BE(51),
    baseSequence: batch.readInt32BE(53),
    records,
  };
}

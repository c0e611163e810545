import { describe, expect, it } from 'vitest';
import { BatchReader, type ByteSource } from '../src/segment/batch-reader.js';
import { walkBatches } from '../src/segment/batch-walk.js';
import { encodeBatch, setBaseOffset } from '../src/segment/batch.js';
import { scanLog } from '../src/segment/scan-log.js';

const T0 = 1_700_000_000_000;

/** A .log held in memory. */
function memory(bytes: Buffer): BatchReader {
  const source: ByteSource = { path: 'memory.log', end: bytes.length, bytes: async (p, n) => bytes.subarray(p, Math.min(p + n, bytes.length)) };
  return new BatchReader(source);
}

/** Batches of `counts` records each, numbered from `base`. */
function log(base: number, ...counts: number[]): { bytes: Buffer; starts: number[] } {
  const parts: Buffer[] = [];
  const starts: number[] = [];
  let offset = base;
  let at = 0;
  for (const n of counts) {
    const b = encodeBatch(Array.from({ length: n }, (_, i) => ({ value: `v${offset + i}`, timestamp: T0 + offset + i })));
    setBaseOffset(b, 0, offset);
    starts.push(at);
    parts.push(b);
    offset += n;
    at += b.length;
  }
  return { bytes: Buffer.concat(parts), starts };
}

describe('walkBatches', () => {
  it('walks every batch to the end, in order, and says where the offsets end', async () => {
    const { bytes, starts } = log(100, 2, 3, 1);
    const seen: [number, number][] = [];
    const end = await walkBatches(memory(bytes), { baseOffset: 100, checkCrc: true, onBatch: (h, p) => void seen.push([h.baseOffset, p]) });
    expect(end).toEqual({ position: bytes.length, batches: 3, nextOffset: 106 });
    expect(seen).toEqual([
      [100, starts[0]],
      [102, starts[1]],
      [105, starts[2]],
    ]);
  });

  it('starts at a batch boundary with the offset the batches before it reached', async () => {
    const { bytes, starts } = log(0, 2, 3, 1);
    const end = await walkBatches(memory(bytes), { from: starts[1], baseOffset: 0, nextOffset: 2, checkCrc: false });
    expect(end).toEqual({ position: bytes.length, batches: 2, nextOffset: 6 });
  });

  it('checks CRCs only when asked: a header walk steps over a damaged payload', async () => {
    const { bytes, starts } = log(0, 2, 3);
    bytes[starts[1]! + 70]! ^= 0xff;
    expect(await walkBatches(memory(bytes), { baseOffset: 0, checkCrc: true })).toEqual({ position: starts[1], batches: 1, nextOffset: 2, reason: 'crc' });
    expect(await walkBatches(memory(bytes), { baseOffset: 0, checkCrc: false })).toEqual({ position: bytes.length, batches: 2, nextOffset: 5 });
  });

  it('stops at a torn tail in both modes', async () => {
    const { bytes, starts } = log(0, 2, 3);
    const torn = bytes.subarray(0, bytes.length - 5);
    for (const checkCrc of [true, false]) {
      expect(await walkBatches(memory(torn), { baseOffset: 0, checkCrc })).toEqual({ position: starts[1], batches: 1, nextOffset: 2, reason: 'truncated' });
    }
  });

  it('stops at a valid batch whose offsets go backwards, leave a gap or go beyond what the segment can index, and hands it back', async () => {
    const back = Buffer.concat([log(10, 2).bytes, log(5, 1).bytes]);
    const end = await walkBatches(memory(back), { baseOffset: 10, checkCrc: false });
    expect(end).toMatchObject({ batches: 1, nextOffset: 12, reason: 'offset 5 is not after 11' });
    expect(end.misplaced?.baseOffset).toBe(5);
    // A baseOffset is outside the CRC: one flipped bit in it leaves a valid batch with a gap before it.
    const gap = Buffer.concat([log(10, 2).bytes, log(13, 1).bytes]);
    expect(await walkBatches(memory(gap), { baseOffset: 10, checkCrc: true })).toMatchObject({ batches: 1, nextOffset: 12, reason: 'offset 13 leaves a gap after 11' });
    expect(await walkBatches(memory(log(12, 1).bytes), { baseOffset: 10, checkCrc: true })).toMatchObject({ batches: 0, reason: 'offset 12 leaves a gap after 9' });
    // Walked from where the offset index points (it knows a batch's last offset, not its first), the first batch may start later.
    const first = log(0, 1).bytes;
    const far = Buffer.concat([first, log(2 ** 31, 1).bytes]);
    expect(await walkBatches(memory(far), { from: first.length, baseOffset: 0, checkCrc: true })).toMatchObject({ position: first.length, batches: 0, reason: expect.stringContaining('beyond') });
    const indexed = Buffer.concat([first, log(7, 1).bytes]);
    expect(await walkBatches(memory(indexed), { from: first.length, baseOffset: 0, checkCrc: true })).toMatchObject({ batches: 1, nextOffset: 8 });
  });

  it('lets a batch follow a gap only when it ends below gapsBelow (a compacted log cleaned to there)', async () => {
    // Cleaned: the first batch starts after the segment's base, the next after a gap.
    const cleaned = Buffer.concat([log(12, 2).bytes, log(20, 1).bytes, log(21, 1).bytes]);
    expect(await walkBatches(memory(cleaned), { baseOffset: 10, checkCrc: true, gapsBelow: 21 })).toEqual({ position: cleaned.length, batches: 3, nextOffset: 22 });
    expect(await scanLog(memory(cleaned), 10, undefined, 21)).toMatchObject({ batches: 3, corrupt: false });
    // At or past the point, a gap is damage again; going back always is.
    expect(await walkBatches(memory(cleaned), { baseOffset: 10, checkCrc: true, gapsBelow: 20 })).toMatchObject({ batches: 1, reason: 'offset 20 leaves a gap after 13' });
    expect(await walkBatches(memory(cleaned), { baseOffset: 10, checkCrc: true })).toMatchObject({ batches: 0, reason: 'offset 12 leaves a gap after 9' });
    const back = Buffer.concat([log(12, 2).bytes, log(11, 1).bytes]);
    expect(await walkBatches(memory(back), { baseOffset: 10, checkCrc: true, gapsBelow: 100 })).toMatchObject({ batches: 1, reason: 'offset 11 is not after 13' });
  });

  it('awaits an onBatch that returns a promise before reading on', async () => {
    const { bytes } = log(0, 1, 1, 1);
    const order: string[] = [];
    await walkBatches(memory(bytes), {
      baseOffset: 0,
      checkCrc: true,
      onBatch: async (h) => {
        order.push(`start ${h.baseOffset}`);
        await new Promise((resolve) => setTimeout(resolve, 1));
        order.push(`end ${h.baseOffset}`);
      },
    });
    expect(order).toEqual(['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2']);
  });
});

describe('scanLog', () => {
  it('calls a torn tail a torn tail, and damage followed by a valid batch corruption', async () => {
    const { bytes, starts } = log(0, 2, 3, 1);
    expect(await scanLog(memory(bytes.subarray(0, bytes.length - 1)), 0)).toEqual({ validBytes: starts[2], batches: 2, nextOffset: 5, reason: 'truncated', corrupt: false });
    bytes[starts[1]! + 70]! ^= 0xff;
    expect(await scanLog(memory(bytes), 0)).toEqual({ validBytes: starts[1], batches: 1, nextOffset: 2, reason: 'crc', corrupt: true });
  });
});

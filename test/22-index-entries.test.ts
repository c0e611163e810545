import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isZeroEntry, offsetEntry, timeEntry } from '../src/index/entries.js';
import { OffsetIndex } from '../src/index/offset-index.js';
import { TimeIndex } from '../src/index/time-index.js';
import { OFFSET_INDEX_ENTRY_BYTES, segmentPaths, TIME_INDEX_ENTRY_BYTES } from '../src/layout.js';

describe('index entry decoders', () => {
  it('read back what the index classes wrote to disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'seglog-entries-'));
    try {
      const p = segmentPaths(dir, 1000);
      const offsets = await OffsetIndex.open(p.index, 1000, { writable: true, maxIndexBytes: 10 * OFFSET_INDEX_ENTRY_BYTES });
      const times = await TimeIndex.open(p.timeIndex, 1000, { writable: true, maxIndexBytes: 10 * TIME_INDEX_ENTRY_BYTES });
      const t0 = 2 ** 40 + 7; // needs both halves of the i64
      for (let i = 0; i < 3; i++) {
        offsets.append(1000 + i * 5, i * 100);
        times.append(t0 + i, 1000 + i * 5);
      }
      await Promise.all([offsets.close(), times.close()]);
      const o = await readFile(p.index);
      const t = await readFile(p.timeIndex);
      expect(o.length).toBe(3 * offsetEntry.bytes);
      expect(t.length).toBe(3 * timeEntry.bytes);
      expect([0, 1, 2].map((i) => [offsetEntry.relativeOffset(o, i), offsetEntry.position(o, i)])).toEqual([
        [0, 0],
        [5, 100],
        [10, 200],
      ]);
      expect([0, 1, 2].map((i) => [timeEntry.timestamp(t, i), timeEntry.relativeOffset(t, i)])).toEqual([
        [t0, 0],
        [t0 + 1, 5],
        [t0 + 2, 10],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives NaN for a timestamp beyond the safe integer range, and negative ones exactly', () => {
    const b = Buffer.alloc(2 * timeEntry.bytes);
    b.writeBigInt64BE(2n ** 62n, 0);
    timeEntry.write(b, 1, -5, 3);
    expect(timeEntry.timestamp(b, 0)).toBeNaN();
    expect(timeEntry.timestamp(b, 1)).toBe(-5);
    expect(timeEntry.relativeOffset(b, 1)).toBe(3);
  });

  it('tells preallocated room (all-zero entries) from entries', () => {
    const b = Buffer.alloc(3 * offsetEntry.bytes);
    offsetEntry.write(b, 1, 0, 1);
    expect([0, 1, 2].map((i) => isZeroEntry(b, i, offsetEntry.bytes))).toEqual([true, false, true]);
  });
});

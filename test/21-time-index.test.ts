import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TimeIndex, type TimestampOffset } from '../src/index/time-index.js';
import { stats } from '../src/native.js';
import { random } from './helpers/random.js';

const MiB = 1024 * 1024;
const WARM_ENTRIES = Math.floor(8192 / TimeIndex.ENTRY_SIZE);

let dir: string;
let path: string;
let baseline: number;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'seglog-time-index-'));
  path = join(dir, '00000000000000001000.timeindex');
  baseline = stats().liveMappings;
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function linearLookup(entries: TimestampOffset[], base: number, target: number): TimestampOffset {
  let found: TimestampOffset = { timestamp: -1, offset: base };
  for (const e of entries) if (e.timestamp <= target) found = e;
  return found;
}

function entriesFile(entries: [bigint | number, number][], extraBytes = 0): Buffer {
  const b = Buffer.alloc(entries.length * 12 + extraBytes);
  entries.forEach(([timestamp, rel], i) => {
    b.writeBigInt64BE(BigInt(timestamp), i * 12);
    b.writeInt32BE(rel, i * 12 + 8);
  });
  return b;
}

async function expectCode(promiseOrFn: Promise<unknown> | (() => unknown), code: string, props: object = {}): Promise<void> {
  const run = typeof promiseOrFn === 'function' ? async () => promiseOrFn() : () => promiseOrFn;
  await expect(run()).rejects.toMatchObject({ name: 'SeglogError', code, ...props });
}

describe('TimeIndex', () => {
  it('preallocates a writable index to maxIndexBytes rounded down to whole 12-byte entries', async () => {
    const index = await TimeIndex.open(path, 1000, { writable: true });
    expect((await stat(path)).size).toBe(10 * MiB - ((10 * MiB) % 12));
    expect(index.maxEntries).toBe(Math.floor((10 * MiB) / 12));
    expect(index.entries).toBe(0);
    expect(index.isMapped).toBe(true);
    expect(stats().liveMappings).toBe(baseline + 1);
    await index.close();

    const small = await TimeIndex.open(path, 1000, { writable: true, maxIndexBytes: 100 });
    expect((await stat(path)).size).toBe(96);
    expect(small.maxEntries).toBe(8);
    await small.close();
    expect((await stat(path)).size).toBe(0);
    expect(stats().liveMappings).toBe(baseline);
  });

  it('appends only when the timestamp grows', async () => {
    const index = await TimeIndex.open(path, 1000, { writable: true });
    expect(index.append(-1, 1000)).toBe(false); // not above NO_TIMESTAMP
    expect(index.append(0, 1000)).toBe(true);
    expect(index.append(100, 1005)).toBe(true);
    expect(index.append(100, 1006)).toBe(false);
    expect(index.append(50, 1007)).toBe(false);
    expect(index.append(101, 1007)).toBe(true);
    expect(index.append(102, 1007)).toBe(true); // the same offset may reach a larger timestamp
    expect(index.entries).toBe(4);
    expect(index.lastEntry).toEqual({ timestamp: 102, offset: 1007 });
    expect(() => index.append(200, 1006)).toThrow(RangeError);
    expect(index.entries).toBe(4);
    await index.close();
  });

  it('agrees with a linear scan on random data, in the warm section and the cold part', async () => {
    const next = random(21);
    const index = await TimeIndex.open(path, 1000, { writable: true });
    const written: TimestampOffset[] = [];
    let timestamp = 1_700_000_000_000;
    let offset = 1000;
    for (let i = 0; i < 6000; i++) {
      // Record timestamps wander backwards too; only growth of the max makes an entry.
      const t = timestamp + Math.floor((next() - 0.3) * 1000);
      if (index.append(t, offset)) written.push({ timestamp: t, offset });
      timestamp = Math.max(timestamp, t);
      offset += 1 + Math.floor(next() * 10);
    }
    expect(written.length).toBeGreaterThan(2 * WARM_ENTRIES);
    expect(index.entries).toBe(written.length);
    const first = written[0]!.timestamp;
    const last = written.at(-1)!.timestamp;
    const firstWarm = written[written.length - WARM_ENTRIES]!.timestamp;
    const targets = [-5, -1, 0, first - 1, first, first + 1, firstWarm - 1, firstWarm, firstWarm + 1, last - 1, last, last + 1, Number.MAX_SAFE_INTEGER];
    for (let i = 0; i < 3000; i++) targets.push(first - 100 + Math.floor(next() * (last - first + 200)));
    expect(targets.some((t) => t >= first && t < firstWarm)).toBe(true);
    expect(targets.some((t) => t >= firstWarm)).toBe(true);

    const check = (ix: TimeIndex) => {
      for (const t of targets) expect(ix.lookup(t)).toEqual(linearLookup(written, 1000, t));
    };
    check(index);
    expect(index.entryAt(100)).toEqual(written[100]);
    await index.close();

    const reopened = await TimeIndex.open(path, 1000, { writable: false });
    expect(reopened.entries).toBe(written.length);
    check(reopened);
    reopened.sanityCheck();
    await reopened.close();
    expect(stats().liveMappings).toBe(baseline);
  });

  it('answers at the boundaries: empty, before the first entry, exact hits, after the last', async () => {
    const index = await TimeIndex.open(path, 1000, { writable: true });
    expect(index.lookup(5000)).toEqual({ timestamp: -1, offset: 1000 });
    expect(index.lastEntry).toEqual({ timestamp: -1, offset: 1000 });
    index.append(100, 1001);
    index.append(200, 1002);
    index.append(300, 1003);
    expect(index.lookup(Number.MIN_SAFE_INTEGER)).toEqual({ timestamp: -1, offset: 1000 });
    expect(index.lookup(99)).toEqual({ timestamp: -1, offset: 1000 });
    expect(index.lookup(100)).toEqual({ timestamp: 100, offset: 1001 });
    expect(index.lookup(250)).toEqual({ timestamp: 200, offset: 1002 });
    expect(index.lookup(300)).toEqual({ timestamp: 300, offset: 1003 });
    expect(index.lookup(301)).toEqual({ timestamp: 300, offset: 1003 });
    await index.close();
  });

  it('stores timestamps as big-endian i64 up to the largest safe integer', async () => {
    const index = await TimeIndex.open(path, 1000, { writable: true });
    const big = [1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 1_700_000_000_123, 2 ** 52 + 3, Number.MAX_SAFE_INTEGER];
    big.forEach((t, i) => index.append(t, 1000 + i));
    expect(big.map((_, i) => index.entryAt(i).timestamp)).toEqual(big);
    expect(index.lookup(2 ** 32)).toEqual({ timestamp: 2 ** 32, offset: 1002 });
    await index.close();
    expect(await readFile(path)).toEqual(entriesFile(big.map((t, i) => [t, i])));
  });

  it('rejects bad arguments', async () => {
    await expect(TimeIndex.open('', 0, { writable: true })).rejects.toThrow(RangeError);
    await expect(TimeIndex.open(path, 0.5, { writable: true })).rejects.toThrow(RangeError);
    await expect(TimeIndex.open(path, 0, {} as { writable: boolean })).rejects.toThrow(TypeError);
    await expect(TimeIndex.open(path, 0, { writable: true, maxIndexBytes: 11 })).rejects.toThrow(RangeError);
    await expect(TimeIndex.open(path, 0, { writable: true, maxIndexBytes: '4096' as unknown as number })).rejects.toThrow(TypeError);
    await expectCode(TimeIndex.open(path, 0, { writable: false }), 'ENOENT');

    const index = await TimeIndex.open(path, 1000, { writable: true });
    expect(() => index.append(10, 999)).toThrow(RangeError);
    expect(() => index.append(10, 1000 + 2 ** 31)).toThrow(RangeError);
    expect(() => index.append(2 ** 53, 1000)).toThrow(RangeError);
    expect(() => index.append(1.5, 1000)).toThrow(RangeError);
    expect(() => index.append('10' as unknown as number, 1000)).toThrow(TypeError);
    expect(() => index.append(10, undefined as unknown as number)).toThrow(TypeError);
    expect(() => index.lookup(Number.NaN)).toThrow(RangeError);
    expect(() => index.lookup(null as unknown as number)).toThrow(TypeError);
    expect(() => index.entryAt(0)).toThrow(RangeError);
    expect(() => index.truncateTo(1.5)).toThrow(RangeError);
    expect(index.entries).toBe(0);
    await index.close();
    expect(stats().liveMappings).toBe(baseline);
  });

  it('throws EINDEXFULL only when an entry is due', async () => {
    const index = await TimeIndex.open(path, 0, { writable: true, maxIndexBytes: 36 });
    for (let i = 0; i < 3; i++) index.append(i * 10, i);
    expect(index.isFull).toBe(true);
    expect(index.append(20, 5)).toBe(false); // no growth: nothing to write, no error
    await expectCode(() => index.append(21, 5), 'EINDEXFULL', { path });
    expect(index.lookup(25)).toEqual({ timestamp: 20, offset: 2 });
    await index.close();
  });

  it('truncateTo drops the entries whose offset is at or above the given one', async () => {
    const index = await TimeIndex.open(path, 1000, { writable: true });
    index.append(10, 1001);
    index.append(20, 1003);
    index.append(30, 1003);
    index.append(40, 1005);
    index.append(50, 1008);
    index.truncateTo(1006);
    expect(index.entries).toBe(4);
    index.truncateTo(1003); // both entries at offset 1003 go
    expect(index.entries).toBe(1);
    expect(index.lastEntry).toEqual({ timestamp: 10, offset: 1001 });
    expect(index.append(15, 1002)).toBe(true);
    index.truncateTo(1000);
    expect(index.lookup(100)).toEqual({ timestamp: -1, offset: 1000 });
    expect(index.append(5, 1000)).toBe(true);
    await index.close();
    expect(await readFile(path)).toEqual(entriesFile([[5, 0]]));
  });

  it('trim shrinks the file and turns it read-only and lazily mapped; a read-only reopen sees the same entries', async () => {
    const index = await TimeIndex.open(path, 1000, { writable: true });
    for (let i = 0; i < 50; i++) index.append(1000 + i * 7, 1000 + i * 2);
    await index.flush();
    await index.trim();
    expect((await stat(path)).size).toBe(600);
    expect(index.isMapped).toBe(false);
    expect(stats().liveMappings).toBe(baseline);
    await expectCode(() => index.append(5000, 2000), 'EREADONLY');
    expect(index.lookup(1010)).toEqual({ timestamp: 1007, offset: 1002 });
    expect(index.isMapped).toBe(true);
    index.release();
    expect(index.isMapped).toBe(false);
    await index.close();

    const reopened = await TimeIndex.open(path, 1000, { writable: false });
    expect(reopened.isMapped).toBe(false);
    expect(reopened.entries).toBe(50);
    expect(stats().liveMappings).toBe(baseline);
    expect(reopened.lastEntry).toEqual({ timestamp: 1000 + 49 * 7, offset: 1098 });
    expect(reopened.isMapped).toBe(true);
    expect(stats().liveMappings).toBe(baseline + 1);
    reopened.release();
    expect(stats().liveMappings).toBe(baseline);
    await reopened.close();
  });

  it('a writable reopen after a clean close keeps exactly the entries', async () => {
    const index = await TimeIndex.open(path, 1000, { writable: true, maxIndexBytes: 1200 });
    for (let i = 0; i < 10; i++) index.append(100 + i, 1000 + i);
    await index.close();
    expect((await stat(path)).size).toBe(120);

    const again = await TimeIndex.open(path, 1000, { writable: true, maxIndexBytes: 1200 });
    expect((await stat(path)).size).toBe(1200);
    expect(again.entries).toBe(10);
    expect(again.append(109, 1010)).toBe(false);
    expect(again.append(110, 1010)).toBe(true);
    again.sanityCheck();
    await again.close();
    expect((await stat(path)).size).toBe(132);
  });

  describe('sanity check', () => {
    async function corruptionAt(file: Buffer, position: number): Promise<void> {
      await writeFile(path, file);
      const index = await TimeIndex.open(path, 1000, { writable: false });
      try {
        let error: unknown;
        try {
          index.sanityCheck();
        } catch (err) {
          error = err;
        }
        expect(error).toMatchObject({ name: 'SeglogError', code: 'ECORRUPT', path, position });
        expect(index.isMapped).toBe(false);
      } finally {
        await index.close();
      }
    }

    it('passes a valid index', async () => {
      await writeFile(path, entriesFile([[0, 0], [10, 0], [20, 4], [2n ** 53n - 1n, 9]]));
      const index = await TimeIndex.open(path, 1000, { writable: false });
      index.sanityCheck();
      await index.close();
    });

    it('rejects a file size that is not a multiple of 12', async () => {
      await corruptionAt(entriesFile([[10, 1], [20, 2]], 8), 24);
    });

    it('rejects timestamps that do not strictly increase, or start below 0', async () => {
      await corruptionAt(entriesFile([[10, 1], [20, 2], [20, 3]]), 24);
      await corruptionAt(entriesFile([[10, 1], [5, 2]]), 12);
      await corruptionAt(entriesFile([[-7, 1]]), 0);
    });

    it('rejects offsets that go backwards or below the base offset', async () => {
      await corruptionAt(entriesFile([[10, 3], [20, 2]]), 12);
      await corruptionAt(entriesFile([[10, -1]]), 0);
    });

    it('rejects timestamps that are not safe integers, in lookups too', async () => {
      await corruptionAt(entriesFile([[10, 1], [2n ** 53n, 2]]), 12);
      await corruptionAt(entriesFile([[-(2n ** 53n), 1]]), 0);
      await writeFile(path, entriesFile([[10, 1], [2n ** 62n, 2]]));
      const index = await TimeIndex.open(path, 1000, { writable: false });
      await expectCode(() => index.lookup(Number.MAX_SAFE_INTEGER), 'ECORRUPT', { path, position: 12 });
      await index.close();
    });
  });

  it('throws ECLOSED after close and releases every mapping', async () => {
    const index = await TimeIndex.open(path, 1000, { writable: true });
    index.append(1, 1000);
    await index.close();
    await index.close();
    expect(stats().liveMappings).toBe(baseline);
    await expectCode(() => index.lookup(1), 'ECLOSED', { path });
    await expectCode(() => index.append(2, 1001), 'ECLOSED');
    await expectCode(() => index.entryAt(0), 'ECLOSED');
    await expectCode(() => index.lastEntry, 'ECLOSED');
    await expectCode(() => index.truncateTo(1000), 'ECLOSED');
    await expectCode(() => index.sanityCheck(), 'ECLOSED');
    await expectCode(index.flush(), 'ECLOSED');
    await expectCode(index.trim(), 'ECLOSED');
  });
});

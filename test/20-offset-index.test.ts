import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OffsetIndex, type OffsetPosition } from '../src/index/offset-index.js';
import { stats } from '../src/native.js';
import { random } from './helpers/random.js';

const MiB = 1024 * 1024;
const WARM_ENTRIES = 8192 / OffsetIndex.ENTRY_SIZE;

let dir: string;
let path: string;
let baseline: number;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'seglog-offset-index-'));
  path = join(dir, '00000000000000001000.index');
  baseline = stats().liveMappings;
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function linearLookup(entries: OffsetPosition[], base: number, target: number): OffsetPosition {
  let found: OffsetPosition = { offset: base, position: 0 };
  for (const e of entries) if (e.offset <= target) found = e;
  return found;
}

function entriesFile(entries: [number, number][], extraBytes = 0): Buffer {
  const b = Buffer.alloc(entries.length * 8 + extraBytes);
  entries.forEach(([rel, pos], i) => {
    b.writeInt32BE(rel, i * 8);
    b.writeInt32BE(pos, i * 8 + 4);
  });
  return b;
}

async function expectCode(promiseOrFn: Promise<unknown> | (() => unknown), code: string, props: object = {}): Promise<void> {
  const run = typeof promiseOrFn === 'function' ? async () => promiseOrFn() : () => promiseOrFn;
  await expect(run()).rejects.toMatchObject({ name: 'SeglogError', code, ...props });
}

describe('OffsetIndex', () => {
  it('preallocates a writable index to maxIndexBytes rounded down to whole entries', async () => {
    const index = await OffsetIndex.open(path, 1000, { writable: true });
    expect((await stat(path)).size).toBe(10 * MiB);
    expect(index.entries).toBe(0);
    expect(index.maxEntries).toBe((10 * MiB) / 8);
    expect(index.isMapped).toBe(true);
    expect(index.writable).toBe(true);
    expect(stats().liveMappings).toBe(baseline + 1);
    await index.close();

    const small = await OffsetIndex.open(path, 1000, { writable: true, maxIndexBytes: 1001 });
    expect((await stat(path)).size).toBe(1000);
    expect(small.maxEntries).toBe(125);
    expect(small.entries).toBe(0);
    await small.close();
    expect((await stat(path)).size).toBe(0);
    expect(stats().liveMappings).toBe(baseline);
  });

  it('agrees with a linear scan on random data, in the warm section and the cold part', async () => {
    const next = random(20);
    const index = await OffsetIndex.open(path, 1000, { writable: true });
    const written: OffsetPosition[] = [];
    let offset = 1000 + Math.floor(next() * 10);
    let position = 0;
    for (let i = 0; i < 5000; i++) {
      index.append(offset, position);
      written.push({ offset, position });
      offset += 1 + Math.floor(next() * 20);
      position += 1 + Math.floor(next() * 5000);
    }
    const first = written[0]!.offset;
    const last = written.at(-1)!.offset;
    const firstWarm = written[written.length - WARM_ENTRIES]!.offset;
    const targets = [0, 999, 1000, first - 1, first, first + 1, firstWarm - 1, firstWarm, firstWarm + 1, last - 1, last, last + 1, last + 1e6];
    for (let i = 0; i < 3000; i++) targets.push(1000 + Math.floor(next() * (last - 1000 + 50)));
    expect(targets.some((t) => t >= first && t < firstWarm)).toBe(true);
    expect(targets.some((t) => t >= firstWarm)).toBe(true);

    const check = (ix: OffsetIndex) => {
      for (const t of targets) expect(ix.lookup(t)).toEqual(linearLookup(written, 1000, t));
    };
    check(index);
    expect(index.entries).toBe(5000);
    expect(index.lastEntry).toEqual(written.at(-1));
    expect(index.entryAt(1234)).toEqual(written[1234]);
    await index.close();

    const reopened = await OffsetIndex.open(path, 1000, { writable: false });
    expect(reopened.entries).toBe(5000);
    check(reopened);
    reopened.sanityCheck(position);
    await reopened.close();
    expect(stats().liveMappings).toBe(baseline);
  });

  it('answers at the boundaries: empty, before the first entry, exact hits, after the last', async () => {
    const index = await OffsetIndex.open(path, 1000, { writable: true });
    expect(index.lookup(0)).toEqual({ offset: 1000, position: 0 });
    expect(index.lookup(5000)).toEqual({ offset: 1000, position: 0 });
    expect(index.lastEntry).toEqual({ offset: 1000, position: 0 });

    index.append(1010, 100);
    index.append(1020, 200);
    index.append(1030, 300);
    expect(index.lookup(999)).toEqual({ offset: 1000, position: 0 });
    expect(index.lookup(1009)).toEqual({ offset: 1000, position: 0 });
    expect(index.lookup(1010)).toEqual({ offset: 1010, position: 100 });
    expect(index.lookup(1019)).toEqual({ offset: 1010, position: 100 });
    expect(index.lookup(1020)).toEqual({ offset: 1020, position: 200 });
    expect(index.lookup(1030)).toEqual({ offset: 1030, position: 300 });
    expect(index.lookup(Number.MAX_SAFE_INTEGER)).toEqual({ offset: 1030, position: 300 });
    expect(index.entryAt(0)).toEqual({ offset: 1010, position: 100 });
    expect(index.entryAt(2)).toEqual({ offset: 1030, position: 300 });
    await index.close();
  });

  it('ceiling: the first entry at or past an offset, and where the next entry is', async () => {
    const index = await OffsetIndex.open(path, 1000, { writable: true });
    expect(index.ceiling(1000)).toBeUndefined();
    index.append(1010, 100);
    index.append(1020, 200);
    index.append(1030, 300);
    expect(index.ceiling(999)).toEqual({ offset: 1010, position: 100, nextPosition: 200 });
    expect(index.ceiling(1000)).toEqual({ offset: 1010, position: 100, nextPosition: 200 });
    expect(index.ceiling(1010)).toEqual({ offset: 1010, position: 100, nextPosition: 200 });
    expect(index.ceiling(1011)).toEqual({ offset: 1020, position: 200, nextPosition: 300 });
    expect(index.ceiling(1030)).toEqual({ offset: 1030, position: 300, nextPosition: undefined });
    expect(index.ceiling(1031)).toBeUndefined();
    await index.close();
  });

  it('accepts the base offset itself and the largest relative offset', async () => {
    const index = await OffsetIndex.open(path, 1000, { writable: true });
    index.append(1000, 0);
    index.append(1000 + 0x7fffffff, 0x7fffffff);
    expect(index.lookup(1000)).toEqual({ offset: 1000, position: 0 });
    expect(index.lookup(1000 + 0x7fffffff)).toEqual({ offset: 1000 + 0x7fffffff, position: 0x7fffffff });
    await index.close();
  });

  it('rejects appends that do not move forward, and bad arguments', async () => {
    const index = await OffsetIndex.open(path, 1000, { writable: true });
    index.append(1010, 100);
    expect(() => index.append(1010, 200)).toThrow(RangeError);
    expect(() => index.append(1005, 200)).toThrow(RangeError);
    expect(() => index.append(1020, 99)).toThrow(RangeError);
    index.append(1020, 100); // same position: non-decreasing is enough
    expect(() => index.append(999, 0)).toThrow(RangeError);
    expect(() => index.append(1000 + 2 ** 31, 200)).toThrow(RangeError);
    expect(() => index.append(1030, -1)).toThrow(RangeError);
    expect(() => index.append(1030, 2 ** 31)).toThrow(RangeError);
    expect(() => index.append(1030.5, 200)).toThrow(RangeError);
    expect(() => index.append('1030' as unknown as number, 200)).toThrow(TypeError);
    expect(() => index.append(1030, null as unknown as number)).toThrow(TypeError);
    expect(() => index.lookup(-1)).toThrow(RangeError);
    expect(() => index.lookup(1n as unknown as number)).toThrow(TypeError);
    expect(() => index.entryAt(2)).toThrow(RangeError);
    expect(() => index.entryAt(-1)).toThrow(RangeError);
    expect(() => index.truncateTo(-1)).toThrow(RangeError);
    expect(() => index.sanityCheck(-1)).toThrow(RangeError);
    expect(index.entries).toBe(2);
    await index.close();
  });

  it('rejects bad open arguments', async () => {
    await expect(OffsetIndex.open('', 0, { writable: true })).rejects.toThrow(RangeError);
    await expect(OffsetIndex.open(7 as unknown as string, 0, { writable: true })).rejects.toThrow(TypeError);
    await expect(OffsetIndex.open(path, -1, { writable: true })).rejects.toThrow(RangeError);
    await expect(OffsetIndex.open(path, 0, undefined as unknown as { writable: boolean })).rejects.toThrow(TypeError);
    await expect(OffsetIndex.open(path, 0, { writable: 'yes' as unknown as boolean })).rejects.toThrow(TypeError);
    await expect(OffsetIndex.open(path, 0, { writable: true, maxIndexBytes: 7 })).rejects.toThrow(RangeError);
    await expect(OffsetIndex.open(path, 0, { writable: true, maxIndexBytes: 2 ** 31 })).rejects.toThrow(RangeError);
    await expectCode(OffsetIndex.open(path, 0, { writable: false }), 'ENOENT');
    expect(stats().liveMappings).toBe(baseline);
  });

  it('throws EINDEXFULL when full and keeps answering lookups', async () => {
    const index = await OffsetIndex.open(path, 0, { writable: true, maxIndexBytes: 80 });
    for (let i = 0; i < 10; i++) {
      expect(index.isFull).toBe(false);
      index.append(i * 10, i * 100);
    }
    expect(index.isFull).toBe(true);
    await expectCode(() => index.append(100, 1000), 'EINDEXFULL', { path });
    expect(index.entries).toBe(10);
    expect(index.lookup(95)).toEqual({ offset: 90, position: 900 });
    await index.close();
  });

  it('keeps existing entries when reopened with a smaller maxIndexBytes', async () => {
    const index = await OffsetIndex.open(path, 0, { writable: true });
    for (let i = 0; i < 10; i++) index.append(i, i);
    await index.close();
    const smaller = await OffsetIndex.open(path, 0, { writable: true, maxIndexBytes: 40 });
    expect(smaller.entries).toBe(10);
    expect(smaller.isFull).toBe(true);
    expect(smaller.lookup(9)).toEqual({ offset: 9, position: 9 });
    await smaller.close();
  });

  it('truncateTo drops the entries at or above an offset', async () => {
    const index = await OffsetIndex.open(path, 1000, { writable: true });
    for (let i = 1; i <= 10; i++) index.append(1000 + i * 10, i * 100);
    index.truncateTo(5000);
    expect(index.entries).toBe(10);
    index.truncateTo(1100);
    expect(index.entries).toBe(9);
    expect(index.lastEntry).toEqual({ offset: 1090, position: 900 });
    index.truncateTo(1075);
    expect(index.entries).toBe(7);
    expect(index.lastEntry).toEqual({ offset: 1070, position: 700 });
    expect(index.lookup(5000)).toEqual({ offset: 1070, position: 700 });
    index.append(1071, 750); // appends continue after the new last entry
    index.truncateTo(1031);
    expect(index.lastEntry).toEqual({ offset: 1030, position: 300 });
    index.truncateTo(1000);
    expect(index.entries).toBe(0);
    expect(index.lookup(1050)).toEqual({ offset: 1000, position: 0 });
    index.append(1001, 1);
    await index.close();
    expect((await stat(path)).size).toBe(8);
  });

  it('truncates in the cold part of a large index too', async () => {
    const index = await OffsetIndex.open(path, 0, { writable: true });
    for (let i = 0; i < 3000; i++) index.append(i * 2, i * 10);
    index.truncateTo(1001);
    expect(index.entries).toBe(501);
    expect(index.lastEntry).toEqual({ offset: 1000, position: 5000 });
    await index.close();
  });

  it('trim shrinks the file and turns the index read-only; a read-only reopen sees the same entries', async () => {
    const index = await OffsetIndex.open(path, 1000, { writable: true });
    for (let i = 0; i < 100; i++) index.append(1000 + i * 3, i * 50);
    await index.flush();
    await index.trim();
    expect((await stat(path)).size).toBe(800);
    expect(index.writable).toBe(false);
    expect(index.isMapped).toBe(false);
    expect(index.maxEntries).toBe(100);
    expect(index.isFull).toBe(true);
    expect(stats().liveMappings).toBe(baseline);
    await expectCode(() => index.append(2000, 10000), 'EREADONLY', { path });
    await index.trim(); // already read-only: no-op
    await index.flush(); // nothing to write
    expect(index.lookup(1100)).toEqual({ offset: 1099, position: 1650 });
    expect(index.isMapped).toBe(true);
    await index.close();

    const reopened = await OffsetIndex.open(path, 1000, { writable: false });
    expect(reopened.entries).toBe(100);
    for (let i = 0; i < 100; i++) expect(reopened.entryAt(i)).toEqual({ offset: 1000 + i * 3, position: i * 50 });
    await expectCode(() => reopened.truncateTo(1000), 'EREADONLY');
    await reopened.close();
    expect(stats().liveMappings).toBe(baseline);
  });

  it('untrim makes a trimmed index writable again; a trimmed index still truncates, and close trims the file', async () => {
    const index = await OffsetIndex.open(path, 1000, { writable: true, maxIndexBytes: 800 });
    for (let i = 0; i < 10; i++) index.append(1000 + i * 3, i * 50);
    await index.trim();
    expect((await stat(path)).size).toBe(80);
    await index.untrim();
    expect(index.writable).toBe(true);
    expect(index.maxEntries).toBe(100);
    expect((await stat(path)).size).toBe(800);
    index.append(1100, 1000);
    expect(index.lastEntry).toEqual({ offset: 1100, position: 1000 });
    await index.untrim(); // writable: no-op
    await index.trim();
    index.truncateTo(1010);
    expect(index.entries).toBe(4);
    expect(index.isFull).toBe(true);
    await index.close();
    expect((await stat(path)).size).toBe(32);
  });

  it('maps a read-only index only on first use and unmaps it on release()', async () => {
    await writeFile(path, entriesFile([[1, 10], [2, 20], [3, 30]]));
    const index = await OffsetIndex.open(path, 1000, { writable: false });
    expect(index.entries).toBe(3);
    expect(index.writable).toBe(false);
    expect(index.isMapped).toBe(false);
    expect(stats().liveMappings).toBe(baseline);

    expect(index.lookup(1002)).toEqual({ offset: 1002, position: 20 });
    expect(index.isMapped).toBe(true);
    expect(stats().liveMappings).toBe(baseline + 1);
    index.release();
    expect(index.isMapped).toBe(false);
    expect(stats().liveMappings).toBe(baseline);
    index.release(); // idempotent

    // A sanity check maps only for its own duration.
    index.sanityCheck(31);
    expect(index.isMapped).toBe(false);
    expect(index.lastEntry).toEqual({ offset: 1003, position: 30 });
    expect(index.isMapped).toBe(true);
    await index.close();
    expect(stats().liveMappings).toBe(baseline);
  });

  it('never maps an empty read-only index', async () => {
    await writeFile(path, Buffer.alloc(0));
    const index = await OffsetIndex.open(path, 1000, { writable: false });
    expect(index.lookup(5000)).toEqual({ offset: 1000, position: 0 });
    expect(index.lastEntry).toEqual({ offset: 1000, position: 0 });
    index.sanityCheck(0);
    expect(index.isMapped).toBe(false);
    expect(stats().liveMappings).toBe(baseline);
    await index.close();
  });

  it('a writable index does not unmap on release()', async () => {
    const index = await OffsetIndex.open(path, 0, { writable: true });
    index.append(5, 5);
    index.release();
    expect(index.isMapped).toBe(true);
    expect(index.lookup(5)).toEqual({ offset: 5, position: 5 });
    await index.close();
  });

  it('a writable reopen after a clean close keeps exactly the entries and appends after them', async () => {
    const index = await OffsetIndex.open(path, 1000, { writable: true, maxIndexBytes: 4096 });
    for (let i = 0; i < 20; i++) index.append(1000 + i, i * 10);
    await index.close();
    expect((await stat(path)).size).toBe(160);
    expect(await readFile(path)).toEqual(entriesFile(Array.from({ length: 20 }, (_, i) => [i, i * 10])));

    const again = await OffsetIndex.open(path, 1000, { writable: true, maxIndexBytes: 4096 });
    expect((await stat(path)).size).toBe(4096);
    expect(again.entries).toBe(20);
    expect(again.lastEntry).toEqual({ offset: 1019, position: 190 });
    expect(() => again.append(1019, 200)).toThrow(RangeError);
    again.append(1020, 200);
    again.sanityCheck(201);
    await again.close();
    expect((await stat(path)).size).toBe(168);
  });

  it('after an unclean shutdown counts the preallocated zeros as entries, which the sanity check rejects', async () => {
    // What a crash leaves behind: a preallocated file with entries then zeros.
    await writeFile(path, entriesFile([[1, 10], [2, 20]], 6 * 8));
    const index = await OffsetIndex.open(path, 1000, { writable: true, maxIndexBytes: 64 });
    expect(index.entries).toBe(8);
    expect(index.isFull).toBe(true);
    await expectCode(() => index.sanityCheck(), 'ECORRUPT', { path, position: 16 });
    await index.close();
  });

  describe('sanity check', () => {
    async function corruptionAt(file: Buffer, position: number, logSize?: number): Promise<void> {
      await writeFile(path, file);
      const index = await OffsetIndex.open(path, 1000, { writable: false });
      try {
        let error: unknown;
        try {
          index.sanityCheck(logSize);
        } catch (err) {
          error = err;
        }
        expect(error).toMatchObject({ name: 'SeglogError', code: 'ECORRUPT', path, position });
      } finally {
        await index.close();
      }
    }

    it('passes a valid index', async () => {
      await writeFile(path, entriesFile([[0, 0], [5, 100], [9, 100], [12, 400]]));
      const index = await OffsetIndex.open(path, 1000, { writable: false });
      index.sanityCheck();
      index.sanityCheck(401);
      await index.close();
    });

    it('rejects a file size that is not a multiple of 8', async () => {
      await corruptionAt(entriesFile([[1, 10], [2, 20], [3, 30]], 3), 24);
    });

    it('rejects a file size that is not a multiple of 8 even once opened writable and truncated', async () => {
      await writeFile(path, entriesFile([[1, 10], [2, 20]], 5));
      const index = await OffsetIndex.open(path, 1000, { writable: true });
      expect(index.entries).toBe(2);
      index.truncateTo(1002);
      expect(index.entries).toBe(1);
      await expectCode(() => index.sanityCheck(), 'ECORRUPT', { path, position: 16 });
      await index.close();
    });

    it('rejects offsets that do not strictly increase', async () => {
      await corruptionAt(entriesFile([[1, 10], [5, 20], [5, 30]]), 16);
      await corruptionAt(entriesFile([[1, 10], [5, 20], [4, 30]]), 16);
    });

    it('rejects negative relative offsets', async () => {
      await corruptionAt(entriesFile([[-3, 10], [5, 20]]), 0);
    });

    it('rejects positions that go backwards or are negative', async () => {
      await corruptionAt(entriesFile([[1, 10], [2, 30], [3, 20]]), 16);
      await corruptionAt(entriesFile([[1, -10]]), 0);
    });

    it('rejects positions beyond the log size', async () => {
      await corruptionAt(entriesFile([[1, 10], [2, 30], [3, 60]]), 16, 60);
      await corruptionAt(entriesFile([[1, 10]]), 0, 0);
    });
  });

  it('throws ECLOSED after close; close is idempotent and releases every mapping', async () => {
    const index = await OffsetIndex.open(path, 1000, { writable: true });
    index.append(1001, 1);
    const flushing = index.flush();
    await Promise.all([index.close(), index.close()]);
    await flushing;
    expect(index.closed).toBe(true);
    expect(index.isMapped).toBe(false);
    expect(index.writable).toBe(false);
    expect(stats().liveMappings).toBe(baseline);
    await expectCode(() => index.lookup(1001), 'ECLOSED', { path });
    await expectCode(() => index.append(1002, 2), 'ECLOSED');
    await expectCode(() => index.entryAt(0), 'ECLOSED');
    await expectCode(() => index.lastEntry, 'ECLOSED');
    await expectCode(() => index.truncateTo(1000), 'ECLOSED');
    await expectCode(() => index.sanityCheck(), 'ECLOSED');
    await expectCode(index.flush(), 'ECLOSED');
    await expectCode(index.trim(), 'ECLOSED');
    await index.close();
    expect((await stat(path)).size).toBe(8);

    const readOnly = await OffsetIndex.open(path, 1000, { writable: false });
    readOnly.lookup(1001);
    expect(stats().liveMappings).toBe(baseline + 1);
    await readOnly.close();
    expect(stats().liveMappings).toBe(baseline);
    await expectCode(() => readOnly.lookup(1001), 'ECLOSED');
    expect((await stat(path)).size).toBe(8);
  });

  it('close waits for a trim under way', async () => {
    const index = await OffsetIndex.open(path, 0, { writable: true });
    index.append(1, 1);
    const trimming = index.trim();
    index.append(2, 2); // lands before the trim switches over
    await Promise.all([trimming, index.close()]);
    expect(await readFile(path)).toEqual(entriesFile([[1, 1], [2, 2]]));
    expect(stats().liveMappings).toBe(baseline);
  });
});

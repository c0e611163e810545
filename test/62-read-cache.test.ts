// Own mode's read cache: point reads (readRecord) that miss the tail cache
// read just their batch's blocks and keep the batch; the next point read of
// it is served without a system call; memory stays within readCacheBytes,
// least recently used out first; sequential catch-up reads neither fill nor
// flush it; truncation and retention drop what it holds of the cut bytes.
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Log, type LogOptions } from '../src/log/log.js';
import { ReadCache, type CachedBatch } from '../src/cache/read-cache.js';
import type { BatchHeader } from '../src/segment/batch.js';
import type { Segment } from '../src/segment/segment.js';
import { LogStore } from '../src/store/store.js';
import { appendTo, fill, own, readAll, value } from './helpers/cache-logs.js';
import { tempDir } from './helpers/tmp.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** 20 records of 1000 B a batch: about 20 KiB, so that the offset index has an entry for every batch but the first. */
const PER_BATCH = 20;
const VALUE_BYTES = 1000;
const READ_AHEAD = 256 * KiB;

/** A log in own mode without a tail cache (every read is a catch-up read), with a read cache of `readCacheBytes`. */
async function ownLog(dir: string, readCacheBytes: number, options: LogOptions = {}): Promise<Log> {
  return Log.open(dir, { cache: own({ tailBytes: 0, readAheadBytes: READ_AHEAD, readCacheBytes }), ...options });
}

/** readRecord(offset), checked against the value written there; returns the change in the log's counters. */
async function pointRead(log: Log, offset: number) {
  const before = log.cacheStats();
  const record = await log.readRecord(offset);
  expect(record?.offset).toBe(offset);
  expect(record!.value!.equals(value(offset, VALUE_BYTES))).toBe(true);
  const after = log.cacheStats();
  return {
    hits: after.readCacheHits - before.readCacheHits,
    syscalls: after.readSyscalls - before.readSyscalls,
    fromDisk: after.catchUpBytesFromDisk - before.catchUpBytesFromDisk,
  };
}

describe('the readCacheBytes option', () => {
  test('is checked, and applies to mode own only', async () => {
    const dir = await tempDir();
    const bad: Array<[unknown, typeof TypeError | typeof RangeError]> = [
      [{ mode: 'own', readCacheBytes: -1 }, RangeError],
      [{ mode: 'own', readCacheBytes: 0.5 }, RangeError],
      [{ mode: 'own', readCacheBytes: '1' }, TypeError],
      [{ mode: 'pagecache', readCacheBytes: MiB }, RangeError],
    ];
    for (const [cache, type] of bad) {
      await expect(Log.open(dir, { cache } as LogOptions)).rejects.toThrow(type);
      await expect(LogStore.open(join(dir, 'store'), { cache } as LogOptions)).rejects.toThrow(type);
    }
  });
});

describe('point reads in own mode', () => {
  test('a miss reads just its batch; the next read of that batch is a hit with no system call', async () => {
    const dir = await tempDir();
    const log = await ownLog(dir, MiB);
    await fill([log], 2 * MiB, PER_BATCH, VALUE_BYTES);
    const batchBytes = log.size / (log.endOffset / PER_BATCH);
    const offset = 40 * PER_BATCH + 7;
    const miss = await pointRead(log, offset);
    expect(miss.hits).toBe(0);
    expect(miss.syscalls).toBeGreaterThan(0);
    // The batch's blocks (give or take one block at either end), not a read-ahead window of 128 KiB or more.
    expect(miss.fromDisk).toBeGreaterThanOrEqual(batchBytes);
    expect(miss.fromDisk).toBeLessThanOrEqual(batchBytes + 2 * 4 * KiB);
    for (const o of [offset, offset - 7, offset + 12]) expect(await pointRead(log, o)).toEqual({ hits: 1, syscalls: 0, fromDisk: 0 });
    // Reads through read() are catch-up reads, as before: they neither use nor fill the read cache.
    const r = await log.read(offset, { maxBytes: 1 });
    expect(r.nextOffset).toBe(41 * PER_BATCH);
    expect(log.cacheStats().readCacheHits).toBe(3);
    // The first batch has no index entry: found from the segment's start, kept all the same.
    expect((await pointRead(log, 3)).hits).toBe(0);
    expect(await pointRead(log, 5)).toEqual({ hits: 1, syscalls: 0, fromDisk: 0 });
    await log.close();
  });

  test('small batches, several per index entry: each found, kept and hit', async () => {
    const dir = await tempDir();
    const log = await ownLog(dir, MiB);
    await fill([log], MiB, 4, 300);
    const offsets = Array.from({ length: 60 }, (_, i) => 1000 + i * 5);
    const read = async (o: number) => (await log.readRecord(o))!.value!.equals(value(o, 300));
    for (const o of offsets) expect(await read(o)).toBe(true);
    const before = log.cacheStats();
    for (const o of offsets) expect(await read(o)).toBe(true);
    expect(log.cacheStats()).toMatchObject({ readCacheHits: before.readCacheHits + offsets.length, readSyscalls: before.readSyscalls });
    await log.close();
  });

  test('readCacheBytes 0: every point read goes to disk', async () => {
    const dir = await tempDir();
    const log = await ownLog(dir, 0);
    await fill([log], 512 * KiB, PER_BATCH, VALUE_BYTES);
    // Two batches in turn: the read-ahead buffer holds only the last one read.
    for (let i = 0; i < 4; i++) expect((await pointRead(log, i % 2 === 0 ? 100 : 300)).syscalls).toBeGreaterThan(0);
    expect(log.cacheStats().readCacheHits).toBe(0);
    await log.close();
  });

  test('memory stays within the budget, the least recently used batch out first', async () => {
    const dir = await tempDir();
    const budget = 90 * KiB; // four batches of about 20 KiB, not five
    const log = await ownLog(dir, budget);
    await fill([log], 2 * MiB, PER_BATCH, VALUE_BYTES);
    const idle = log.cacheStats().cacheBytes;
    const batches = [10, 20, 30, 40].map((b) => b * PER_BATCH + 1);
    for (const o of batches) await pointRead(log, o);
    const held = log.cacheStats().cacheBytes;
    expect(held - idle).toBeGreaterThan(0);
    // Batch 10 used again: batch 20 is now the least recently used, and goes when batch 50 comes in.
    expect((await pointRead(log, batches[0]!)).hits).toBe(1);
    await pointRead(log, 50 * PER_BATCH);
    expect(log.cacheStats().cacheBytes).toBeLessThanOrEqual(held + budget);
    expect((await pointRead(log, batches[0]!)).hits).toBe(1);
    expect((await pointRead(log, batches[1]!)).hits).toBe(0);
    // Many more batches than fit: what is held never exceeds the budget.
    for (let b = 60; b < 90; b++) await pointRead(log, b * PER_BATCH + 3);
    expect(log.cacheStats().cacheBytes - idle).toBeLessThanOrEqual(budget + READ_AHEAD); // the read-ahead buffer besides
    await log.close();
    expect(log.cacheStats().cacheBytes).toBe(0);
  });

  test('a sequential scan of the whole log does not flush it', async () => {
    const dir = await tempDir();
    const log = await ownLog(dir, 200 * KiB);
    await fill([log], 4 * MiB, PER_BATCH, VALUE_BYTES);
    const hot = [5, 77, 150].map((b) => b * PER_BATCH + 2);
    for (const o of hot) await pointRead(log, o);
    expect((await readAll(log, 64 * KiB)).length).toBe(log.size);
    for await (const r of log.records(0)) if (r.offset % 1000 === 999) expect(r.value!.equals(value(r.offset, VALUE_BYTES))).toBe(true);
    for (const o of hot) expect(await pointRead(log, o)).toEqual({ hits: 1, syscalls: 0, fromDisk: 0 });
  });

  test('point reads between a sequential reader\'s reads leave its read-ahead alone', async () => {
    const dir = await tempDir();
    const log = await ownLog(dir, 0);
    await fill([log], 2 * MiB, PER_BATCH, VALUE_BYTES);
    let sequential = 0;
    let b = 0;
    for (let next = 0; next < log.endOffset; ) {
      const before = log.cacheStats().catchUpBytesFromDisk;
      const r = await log.read(next, { maxBytes: 32 * KiB });
      sequential += log.cacheStats().catchUpBytesFromDisk - before;
      next = r.nextOffset;
      await pointRead(log, ((b++ * 37) % 90) * PER_BATCH + 1);
    }
    // The log read about once (its last fill may run past what the reads take), not a window per read.
    expect(sequential).toBeLessThanOrEqual(log.size + READ_AHEAD);
    await log.close();
  });

  test('nor do point reads evict the tail cache', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { cache: own({ tailBytes: 256 * KiB, readCacheBytes: 64 * KiB }), segmentBytes: 512 * KiB });
    await fill([log], 2 * MiB, PER_BATCH, VALUE_BYTES);
    const tail = log.endOffset - 3 * PER_BATCH;
    const tailRead = async () => {
      const before = log.cacheStats();
      await log.read(tail, { maxBytes: 1 });
      const after = log.cacheStats();
      return { tailHits: after.tailHits - before.tailHits, syscalls: after.readSyscalls - before.readSyscalls };
    };
    expect(await tailRead()).toEqual({ tailHits: 1, syscalls: 0 });
    for (let b = 0; b < 40; b++) await pointRead(log, b * PER_BATCH + 1);
    expect(await tailRead()).toEqual({ tailHits: 1, syscalls: 0 });
    // A point read at the tail is a tail hit, not a read cache entry.
    const before = log.cacheStats();
    expect((await log.readRecord(tail))?.value?.equals(value(tail, VALUE_BYTES))).toBe(true);
    expect(log.cacheStats()).toMatchObject({ tailHits: before.tailHits + 1, readCacheHits: before.readCacheHits, readSyscalls: before.readSyscalls });
    await log.close();
  });
});

describe('invalidation of the read cache', () => {
  test('truncateTo: point reads after it never see cut bytes', async () => {
    const dir = await tempDir();
    const mine = await ownLog(join(dir, 'own'), MiB, { segmentBytes: 256 * KiB });
    const pc = await Log.open(join(dir, 'pc'), { segmentBytes: 256 * KiB });
    await fill([mine, pc], MiB, PER_BATCH, VALUE_BYTES);
    const cut = mine.endOffset - 20 * PER_BATCH - 5; // across segments, mid-batch
    const offsets = Array.from({ length: 12 }, (_, i) => cut - 30 + i * 7);
    for (const o of offsets) await mine.readRecord(o);
    expect((await pointRead(mine, offsets[0]!)).hits).toBe(1);
    const held = mine.cacheStats().cacheBytes;
    for (const log of [mine, pc]) await log.truncateTo(cut);
    // What was kept of the cut segments is gone, not just out of reach.
    expect(held).toBeGreaterThan(READ_AHEAD);
    expect(mine.cacheStats().cacheBytes).toBeLessThanOrEqual(READ_AHEAD);
    // Different records at the same offsets and positions.
    for (let i = 0; i < 30; i++) await appendTo([mine, pc], 7, 700);
    for (const o of offsets) {
      const [a, b] = [await mine.readRecord(o), await pc.readRecord(o)];
      expect(a?.offset).toBe(b?.offset);
      expect(a?.value?.equals(b!.value!)).toBe(true);
    }
    await Promise.all([mine.close(), pc.close()]);
  });

  test('retention drops the removed segments\' batches', async () => {
    const dir = await tempDir();
    const log = await ownLog(dir, MiB, { segmentBytes: 128 * KiB, fileDeleteDelayMs: 0 });
    await fill([log], MiB, PER_BATCH, VALUE_BYTES);
    const idle = log.cacheStats().cacheBytes;
    for (let b = 0; b < 30; b++) await pointRead(log, b * PER_BATCH + 1);
    const held = log.cacheStats().cacheBytes;
    expect(await log.applyRetention({ retentionBytes: 300 * KiB })).toBeGreaterThan(2);
    expect(log.cacheStats().cacheBytes).toBeLessThan(held - 256 * KiB);
    expect(await log.readRecord(1)).toBeUndefined();
    expect(log.cacheStats().cacheBytes).toBeGreaterThanOrEqual(idle);
    await log.close();
  });
});

describe('ReadCache', () => {
  const segment = { baseOffset: 0 } as Segment;
  const batch = (position: number, size: number, owner: object = segment): CachedBatch => ({
    segment,
    position,
    header: { size } as BatchHeader,
    bytes: Buffer.alloc(size),
    owner,
  });

  test('holds at most its budget, evicting the least recently used; drop and dropOwner forget', () => {
    const cache = new ReadCache(300);
    const other = {};
    for (const p of [0, 100, 200]) cache.add(batch(p, 100));
    expect(cache.get(segment, 0)).toBeDefined();
    cache.add(batch(300, 100, other));
    expect(cache.bytesHeld()).toBe(300);
    expect(cache.get(segment, 100)).toBeUndefined();
    expect(cache.get(segment, 0)).toBeDefined();
    cache.add(batch(400, 301));
    expect(cache.get(segment, 400)).toBeUndefined();
    expect(cache.bytesHeld(other)).toBe(100);
    cache.dropOwner(segment);
    expect([cache.bytesHeld(), cache.get(segment, 0), cache.get(segment, 300)?.position]).toEqual([100, undefined, 300]);
    cache.drop(segment);
    expect(cache.bytesHeld()).toBe(0);
  });
});

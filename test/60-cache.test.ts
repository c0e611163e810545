// Cache modes: the `cache` option, tail reads served from memory without a
// system call, catch-up reads that leave the page cache as they found it and
// never enter the tail cache, the store-wide budget, appends encoded into
// the tail cache's memory (reused only once settled and unseen), O_DIRECT
// fallback, invalidation on truncation, retention and roll, and results byte
// for byte the same as pagecache mode's for random reads and sendTo.
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { Log, type LogOptions, type ReadOptions } from '../src/log/log.js';
import { File, probeDirectIO, stats } from '../src/native.js';
import { appendTo, evict, fill, own, readAll, value } from './helpers/cache-logs.js';
import { injectFault } from './helpers/faults.js';
import { Pace } from '../src/cache/pace.js';
import { TailArena, TailBudget, TailWindow } from '../src/cache/tail.js';
import { encodeBatch, type BatchHeader } from '../src/segment/batch.js';
import type { Segment } from '../src/segment/segment.js';
import { Semaphore } from '../src/cache/semaphore.js';
import { LogStore } from '../src/store/store.js';
import { Random } from './fixtures/random.js';
import { readSlowly, socketPair, until } from './helpers/sockets.js';
import { openFilesUnder, tempDir } from './helpers/tmp.js';

const KiB = 1024;
const MiB = 1024 * KiB;

afterEach(() => injectFault('pwrite', null));

describe('the cache option', () => {
  test('is checked: TypeError for a wrong type, RangeError for a wrong value', async () => {
    const dir = await tempDir();
    const bad: Array<[unknown, typeof TypeError | typeof RangeError]> = [
      ['own', TypeError],
      [{}, TypeError],
      [{ mode: 'kernel' }, RangeError],
      [{ mode: 'own', tailBytes: -1 }, RangeError],
      [{ mode: 'own', tailBytes: '1' }, TypeError],
      [{ mode: 'own', tailBytes: 1.5 }, RangeError],
      [{ mode: 'own', readAheadBytes: 100 }, RangeError],
      [{ mode: 'own', directIO: 'maybe' }, RangeError],
      [{ mode: 'own', directIO: true }, TypeError],
      [{ mode: 'pagecache', tailBytes: MiB }, RangeError],
      [{ mode: 'own', catchUpBytesPerSecond: -5 }, RangeError],
      [{ mode: 'own', catchUpBytesPerSecond: '1e8' }, TypeError],
      [{ mode: 'pagecache', catchUpBytesPerSecond: 1e8 }, RangeError],
    ];
    for (const [cache, type] of bad) {
      await expect(Log.open(dir, { cache } as LogOptions)).rejects.toThrow(type);
      await expect(LogStore.open(join(dir, 'store'), { cache } as LogOptions)).rejects.toThrow(type);
    }
    const store = await LogStore.open(join(dir, 'store'), { cache: own() });
    await expect(store.log('a', { cache: own() } as LogOptions)).rejects.toThrow(/store/);
    await store.close();
  });

  test('pagecache is the default; both modes report the same counters', async () => {
    const dir = await tempDir();
    const pc = await Log.open(join(dir, 'pc'));
    const mine = await Log.open(join(dir, 'own'), { cache: own() });
    expect(pc.cacheStats()).toMatchObject({ mode: 'pagecache', directIO: false, cacheBytes: 0, tailHits: 0 });
    expect(mine.cacheStats().mode).toBe('own');
    expect(Object.keys(mine.cacheStats()).sort()).toEqual(Object.keys(pc.cacheStats()).sort());
    await Promise.all([pc.close(), mine.close()]);
  });
});

describe('tail reads in own mode', () => {
  test.each(['none', 'always'] as const)("flush '%s': reads of the tail, across a roll too, make no read system call", async (flush) => {
    const dir = await tempDir();
    const log = await Log.open(dir, { cache: own({ tailBytes: 4 * MiB }), flush, segmentBytes: 256 * KiB, indexIntervalBytes: 1024 });
    await fill([log], MiB);
    expect(log.segmentCount).toBeGreaterThan(3);
    const before = stats();
    const hits = log.cacheStats().tailHits;
    // From the middle of the previous segment on, in small and large steps, and by records().
    const from = log.endOffset - 200;
    for (const maxBytes of [1, 5000, 64 * KiB, MiB]) await readAll(log, maxBytes, from);
    const seen: number[] = [];
    for await (const r of log.records(from, { maxBytes: 10 * KiB })) seen.push(r.offset);
    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => from + i));
    const after = stats();
    expect(after.preadCalls).toBe(before.preadCalls);
    expect(log.cacheStats().tailHits).toBeGreaterThan(hits);
    expect(log.cacheStats().readSyscalls).toBe(0);
    await log.close();
  });

  test('sendTo writes tail hits from memory: no pread, no sendfile', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { cache: own(), segmentBytes: 256 * KiB });
    await fill([log], 600 * KiB);
    const from = log.endOffset - 300;
    const expected = await log.read(from, { maxBytes: 64 * KiB });
    const pair = await socketPair();
    readSlowly(pair);
    const before = stats();
    expect(await log.sendTo(pair.sender, from, { maxBytes: 64 * KiB })).toEqual({ bytes: expected.bytes.length, nextOffset: expected.nextOffset });
    await until(() => pair.received().length >= expected.bytes.length, 'the batches');
    expect(pair.received().equals(expected.bytes)).toBe(true);
    expect([stats().preadCalls, stats().sendfileCalls]).toEqual([before.preadCalls, before.sendfileCalls]);
    await log.close();
  });

  test('what read() returns is a copy: changing it does not change the cache', async () => {
    const log = await Log.open(await tempDir(), { cache: own() });
    await fill([log], 10 * KiB);
    const first = await log.read(0, { maxBytes: 1 });
    const copy = Buffer.from(first.bytes);
    first.bytes.fill(0);
    expect((await log.read(0, { maxBytes: 1 })).bytes.equals(copy)).toBe(true);
    await log.close();
  });
});

describe('catch-up reads in own mode', () => {
  test.each(['auto', 'off'] as const)("directIO '%s': leave no pages in the page cache and never enter the tail cache", async (directIO) => {
    const dir = await tempDir();
    const readAheadBytes = 512 * KiB;
    const log = await Log.open(dir, { cache: own({ tailBytes: 256 * KiB, readAheadBytes, directIO }), segmentBytes: 2 * MiB });
    await fill([log], 8 * MiB);
    expect(log.cacheStats().directIO).toBe(directIO === 'auto' && (await probeDirectIO(dir)));
    await log.flush();
    await evict(dir);
    const resident = (await log.residency()).residentBytes;
    const before = log.cacheStats();
    const all = await readAll(log, 32 * KiB);
    expect(all.length).toBe(log.size);
    expect((await log.residency()).residentBytes).toBeLessThanOrEqual(resident);
    const after = log.cacheStats();
    expect(after.tailMisses).toBeGreaterThan(before.tailMisses);
    // Everything but the cached tail, read once (give or take the last buffer).
    expect(after.catchUpBytesFromDisk - before.catchUpBytesFromDisk).toBeGreaterThanOrEqual(log.size - 256 * KiB);
    expect(after.catchUpBytesFromDisk - before.catchUpBytesFromDisk).toBeLessThanOrEqual(log.size + readAheadBytes);
    // Sequential: a read per half read-ahead buffer or so, far fewer than one per call (256) or per batch.
    const buffers = Math.ceil(log.size / readAheadBytes);
    expect(after.readSyscalls - before.readSyscalls).toBeLessThanOrEqual(4 * buffers);
    // Read again: still a miss, the first read did not bring it into the tail cache.
    await log.read(0, { maxBytes: 64 * KiB });
    expect(log.cacheStats()).toMatchObject({ tailHits: after.tailHits, tailMisses: after.tailMisses + 1 });
    await log.close();
  });

  test('in pagecache mode the same reads do fill the page cache (the control)', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { segmentBytes: 2 * MiB });
    await fill([log], 8 * MiB);
    await log.flush();
    await evict(dir);
    const resident = (await log.residency()).residentBytes;
    await readAll(log, 128 * KiB);
    expect((await log.residency()).residentBytes).toBeGreaterThan(resident + log.size / 2);
    await log.close();
  });

  test('at most two catch-up reads wait on the disk at once', async () => {
    const slots = new Semaphore(2);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        slots.run(async () => {
          most = Math.max(most, ++running);
          await new Promise((resolve) => setImmediate(resolve));
          order.push(i);
          running--;
        }),
      ),
    );
    expect(most).toBe(2);
    expect(order).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });
});

describe('the catch-up bandwidth bound', () => {
  test('books reads on a timeline at the allowed rate, banking at most 50 ms of idle credit', () => {
    let clock = 1000;
    const pace = new Pace(100 * MiB, () => clock);
    // 100 MiB/s: 1 MiB takes 10 ms. Five reads spend the 50 ms of credit, the sixth is due now.
    expect(Array.from({ length: 8 }, () => pace.book(MiB))).toEqual([0, 0, 0, 0, 0, 0, 10, 20]);
    clock += 40;
    expect(pace.book(MiB)).toBe(0);
    expect(pace.book(MiB)).toBe(0);
    expect(pace.book(MiB)).toBe(10);
    // A long pause banks no more than the burst.
    clock += 10_000;
    expect(Array.from({ length: 8 }, () => pace.book(MiB))).toEqual([0, 0, 0, 0, 0, 0, 10, 20]);
  });

  test('bounded catch-up reads return the same bytes and count the same as unbounded ones', async () => {
    const dir = await tempDir();
    const bounded = await Log.open(join(dir, 'bounded'), { cache: own({ tailBytes: 0, readAheadBytes: 256 * KiB, catchUpBytesPerSecond: 64 * MiB }) });
    const free = await Log.open(join(dir, 'free'), { cache: own({ tailBytes: 0, readAheadBytes: 256 * KiB }) });
    await fill([bounded, free], 2 * MiB);
    expect(await readAll(bounded, 64 * KiB)).toEqual(await readAll(free, 64 * KiB));
    expect(bounded.cacheStats().catchUpBytesFromDisk).toBe(free.cacheStats().catchUpBytesFromDisk);
    await Promise.all([bounded.close(), free.close()]);
  });
});

describe('O_DIRECT fallback', () => {
  test("with directIO 'off', or 'auto' when the probe fails, catch-up reads use pread + DONTNEED", async () => {
    const dir = await tempDir();
    const seed = await Log.open(dir, { segmentBytes: MiB });
    await fill([seed], 3 * MiB);
    const expected = await readAll(seed, MiB);
    await seed.close();
    for (const directIO of ['auto', 'off'] as const) {
      // The probe's O_DIRECT write is the only write a clean reopen makes: it fails as on a filesystem without O_DIRECT.
      if (directIO === 'auto') injectFault('pwrite', 'EINVAL', { count: 1 });
      const log = await Log.open(dir, { cache: own({ tailBytes: 0, directIO }), segmentBytes: MiB });
      expect(log.cacheStats().directIO).toBe(false);
      await evict(dir);
      const resident = (await log.residency()).residentBytes;
      expect((await readAll(log, 256 * KiB)).equals(expected)).toBe(true);
      expect((await log.residency()).residentBytes).toBeLessThanOrEqual(resident);
      expect(log.cacheStats().catchUpBytesFromDisk).toBeGreaterThanOrEqual(expected.length);
      await log.close();
    }
    injectFault('pwrite', 'EINVAL', { count: 1 });
    await expect(Log.open(dir, { cache: own({ directIO: 'on' }) })).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/refuses O_DIRECT/) });
  });

  test('on tmpfs (/dev/shm) own mode reads what pagecache mode reads, whatever O_DIRECT does there', async () => {
    const dir = await tempDir('/dev/shm');
    const mine = await Log.open(join(dir, 'own'), { cache: own({ tailBytes: 64 * KiB, readAheadBytes: 64 * KiB }), segmentBytes: 256 * KiB });
    const pc = await Log.open(join(dir, 'pc'), { segmentBytes: 256 * KiB });
    await fill([mine, pc], MiB);
    expect(mine.cacheStats().directIO).toBe(await probeDirectIO(dir));
    expect((await readAll(mine, 100 * KiB)).equals(await readAll(pc, 100 * KiB))).toBe(true);
    await Promise.all([mine.close(), pc.close()]);
  });
});

describe('the tail budget', () => {
  test("is shared by a store's logs and respected; the tails appended to longest ago go first", async () => {
    const tailBytes = 512 * KiB;
    const store = await LogStore.open(await tempDir(), { cache: own({ tailBytes }), segmentBytes: 256 * KiB });
    const logs = await Promise.all(Array.from({ length: 16 }, (_, i) => store.log(`log-${i}`)));
    for (let round = 0; round < 8; round++) {
      for (const log of logs) {
        await appendTo([log], 4, 2000);
        expect(store.cacheStats().cacheBytes).toBeLessThanOrEqual(tailBytes);
      }
    }
    expect(logs.reduce((n, l) => n + l.cacheStats().cacheBytes, 0)).toBe(store.cacheStats().cacheBytes);
    // One log grows by more than the budget: every other tail is evicted.
    while (logs[15]!.cacheStats().cacheBytes < tailBytes - 16 * KiB) await appendTo([logs[15]!], 16, 2000);
    expect(store.cacheStats().cacheBytes).toBeLessThanOrEqual(tailBytes);
    const tail = (log: Log) => log.read(log.endOffset - 1);
    await tail(logs[15]!);
    expect(logs[15]!.cacheStats().tailHits).toBe(1);
    await tail(logs[0]!);
    expect(logs[0]!.cacheStats()).toMatchObject({ tailHits: 0, tailMisses: 1 });
    expect(store.cacheStats()).toMatchObject({ tailHits: 1, tailMisses: 1 });
    await store.close();
  });

  test('read-ahead buffers kept between reads are bounded per store, not per log', async () => {
    const readAheadBytes = 64 * KiB;
    const store = await LogStore.open(await tempDir(), { cache: own({ tailBytes: 0, readAheadBytes }) });
    const logs = await Promise.all(Array.from({ length: 20 }, (_, i) => store.log(`log-${i}`)));
    for (const log of logs) await fill([log], 100 * KiB);
    for (const log of logs) expect((await readAll(log, 32 * KiB)).length).toBe(log.size);
    expect(store.cacheStats().cacheBytes).toBeLessThanOrEqual(8 * readAheadBytes);
    // A log whose buffer went is read as well as ever.
    expect((await readAll(logs[0]!, 32 * KiB)).length).toBe(logs[0]!.size);
    await store.close();
  });

  test('evicted blocks no reader saw are reused; blocks a reader got views of never change', () => {
    const budget = new TailBudget(64 * KiB);
    const window = new TailWindow({} as Segment, new TailArena(budget, MiB), 0);
    const file = { path: 'tail' } as File;
    let end = 0;
    const add = (fill: number) => {
      const chunk = Buffer.alloc(3000, fill);
      window.add([chunk], [{ baseOffset: end, lastOffset: end, size: chunk.length } as BatchHeader]);
      budget.trim();
      end++;
    };
    for (let i = 0; i < 100; i++) add(i);
    const snapshot = window.bytesFrom(file, window.positionOf(end - 20)!);
    const seen = Buffer.from(snapshot.parts(0, snapshot.end).map((p) => Buffer.from(p)).reduce((a, b) => Buffer.concat([a, b])));
    const fresh = vi.spyOn(Buffer, 'allocUnsafeSlow');
    try {
      for (let i = 0; i < 500; i++) add(100 + i);
      // 500 appends of 3000 bytes fill ~366 blocks of 4 KiB: fresh ones only replace the ~16 the snapshot holds.
      expect(fresh.mock.calls.length).toBeLessThan(20);
    } finally {
      fresh.mockRestore();
    }
    expect(Buffer.concat(snapshot.parts(0, snapshot.end))).toEqual(seen);
    expect(budget.used).toBeLessThanOrEqual(64 * KiB);
  });

  test('an append bigger than the whole budget is read from disk, correctly', async () => {
    const log = await Log.open(await tempDir(), { cache: own({ tailBytes: 64 * KiB }) });
    await appendTo([log], 200, 1000);
    expect(log.cacheStats().cacheBytes).toBeLessThanOrEqual(64 * KiB);
    const r = await log.read(0);
    expect(r.nextOffset).toBe(200);
    expect(log.cacheStats().tailMisses).toBe(1);
    await log.close();
  });
});

describe('appends in own mode encode into the tail cache', () => {
  const file = { path: 'tail' } as File;
  const header = (offset: number, size: number) => ({ baseOffset: offset, lastOffset: offset, size }) as BatchHeader;
  /** The bytes of each batch `window` holds, read from a snapshot; `sizes` maps a batch's position to its size. */
  const batchesOf = (window: TailWindow, sizes: ReadonlyMap<number, number>) => {
    const snapshot = window.bytesFrom(file, window.start);
    const out: Buffer[] = [];
    for (let at = window.start; at < window.end; at += sizes.get(at)!) out.push(Buffer.concat(snapshot.parts(at, at + sizes.get(at)!)));
    return out;
  };

  test('a block evicted while an append that took memory from it is pending is reused only once that append is released', () => {
    // 4 blocks of 4 KiB.
    const budget = new TailBudget(16 * KiB);
    const arena = new TailArena(budget, MiB);
    const window = new TailWindow({} as Segment, arena, 0);
    // No other append fits in what is left of its block.
    const pending = arena.allocate(1500).fill(7);
    let offset = 0;
    // Appends written and settled after it: one block each, evicting the oldest, the pending one's first.
    const append = (fill: number) => {
      const data = arena.allocate(3000).fill(fill);
      window.add([data], [header(offset++, data.length)]);
      budget.trim();
      arena.release(data);
      return data;
    };
    const meanwhile = Array.from({ length: 40 }, (_, i) => append(i));
    expect(arena.blockOf(pending)).toBeUndefined();
    expect(meanwhile.filter((d) => d.buffer === pending.buffer)).toEqual([]);
    expect(pending).toEqual(Buffer.alloc(1500, 7));
    // Settled: its memory goes to the spares, and on to later appends.
    arena.release(pending);
    const after = Array.from({ length: 10 }, (_, i) => append(100 + i));
    expect(after.some((d) => d.buffer === pending.buffer)).toBe(true);
    expect(budget.used).toBeLessThanOrEqual(16 * KiB);
  });

  test('appends beyond maxPendingBytes take fresh memory, not the budget; once written they are copied into the cache', () => {
    const budget = new TailBudget(64 * KiB);
    const arena = new TailArena(budget, 8 * KiB);
    const first = arena.allocate(3000);
    arena.allocate(3000);
    const used = budget.used;
    const beyond = arena.allocate(3000).fill(3);
    expect(arena.blockOf(beyond)).toBeUndefined();
    expect(budget.used).toBe(used);
    arena.release(first);
    expect(arena.blockOf(arena.allocate(3000))).toBeDefined();
    // The arena is at its bound again: the copy is the cache's, not an append's, and is made all the same.
    const window = new TailWindow({} as Segment, arena, 0);
    window.add([beyond], [header(0, beyond.length)]);
    arena.release(beyond);
    beyond.fill(9);
    expect(window.batches).toBe(1);
    expect(batchesOf(window, new Map([[0, 3000]]))).toEqual([Buffer.alloc(3000, 3)]);
  });

  test('a window drops whole batches up to the last one in an evicted block, also when its batches are out of block order', () => {
    // 4 blocks of 4 KiB.
    const budget = new TailBudget(16 * KiB);
    const arena = new TailArena(budget, MiB);
    const window = new TailWindow({} as Segment, arena, 0);
    const added: Array<{ at: number; data: Buffer }> = [];
    const add = (data: Buffer) => {
      added.push({ at: window.end, data: Buffer.from(data) });
      window.add([data], [header(added.length - 1, data.length)]);
      budget.trim();
    };
    // Encoded first (block A, then full) but written after a caller's buffer, which is copied into block B.
    const early = arena.allocate(3000).fill(1);
    arena.release(arena.allocate(1000));
    add(Buffer.alloc(2000, 0));
    add(early);
    arena.release(early);
    // Later appends, a block each, until block A is evicted.
    for (let i = 0; i < 10 && window.holds(1); i++) {
      const data = arena.allocate(2500).fill(added.length);
      add(data);
      arena.release(data);
    }
    // Both batches went, though the first lies in block B, which is still there: what is left starts after them.
    expect(window.holds(1)).toBe(false);
    expect(window.holds(0)).toBe(false);
    expect(window.start).toBe(5000);
    expect(window.positionOf(0)).toBe(5000);
    const kept = added.filter((b) => b.at >= window.start);
    expect(kept.length).toBe(window.batches);
    expect(batchesOf(window, new Map(added.map((b) => [b.at, b.data.length])))).toEqual(kept.map((b) => b.data));
  });

  test('close frees every block of the arena, also those only refused appends took', () => {
    const budget = new TailBudget(MiB);
    const arena = new TailArena(budget, MiB);
    const other = new TailArena(budget, MiB);
    other.allocate(100);
    const held = budget.used;
    const window = new TailWindow({} as Segment, arena, 0);
    const a = arena.allocate(3000);
    window.add([a], [header(0, a.length)]);
    arena.release(a);
    // Refused: its block has no batch in any window.
    arena.release(arena.allocate(20 * KiB));
    const b = arena.allocate(3000);
    window.add([b], [header(1, b.length)]);
    arena.release(b);
    expect(budget.used).toBeGreaterThan(held + 20 * KiB);
    window.drop();
    arena.close();
    expect(budget.used).toBe(held);
    expect(arena.bytesHeld).toBe(0);
  });

  test("memory kept for reuse is bounded: 8 blocks' worth; a block larger than that is never kept", () => {
    const budget = new TailBudget(64 * KiB);
    const size = 3 * budget.blockBytes;
    const fresh = vi.spyOn(Buffer, 'allocUnsafeSlow');
    try {
      for (const b of Array.from({ length: 10 }, () => budget.allocate(size))) budget.free(b);
      fresh.mockClear();
      Array.from({ length: 10 }, () => budget.allocate(size));
      // 8 blocks' worth hold two of them.
      expect(fresh.mock.calls.length).toBe(8);
      budget.free(budget.allocate(9 * budget.blockBytes));
      fresh.mockClear();
      budget.allocate(9 * budget.blockBytes);
      expect(fresh.mock.calls.length).toBe(1);
    } finally {
      fresh.mockRestore();
    }
  });

  test("appendBatches: the caller's buffer is copied into the cache at once, and the copy released once written", async () => {
    const log = await Log.open(await tempDir(), { cache: own({ tailBytes: 64 * KiB }) });
    const records = (from: number) => Array.from({ length: 3 }, (_, i) => ({ value: value(from + i, 1000) }));
    const fresh = vi.spyOn(Buffer, 'allocUnsafeSlow');
    try {
      for (let i = 0; i < 300; i++) {
        const buffer = encodeBatch(records(3 * i));
        const done = log.appendBatches(buffer);
        // The caller reuses its buffer as soon as the call returns.
        buffer.fill(0);
        await done;
      }
      // 300 appends of 3 KB, 16 blocks of 4 KiB in the budget: settled copies' blocks are reused once evicted.
      expect(fresh.mock.calls.length).toBeLessThan(40);
    } finally {
      fresh.mockRestore();
    }
    const read: number[] = [];
    for await (const r of log.records(0)) if (r.value!.equals(value(r.offset, 1000))) read.push(r.offset);
    expect(read).toEqual(Array.from({ length: 900 }, (_, i) => i));
    await log.records(890).next();
    expect(log.cacheStats().tailHits).toBeGreaterThan(0);
    await log.close();
  });

  test.each([
    ['a tail budget smaller than maxPendingBytes', 16 * KiB],
    ['no tail cache (the encode ring)', 0],
  ])('every record reads back after many evictions, with appends in flight beyond maxPendingBytes: %s', async (_, tailBytes) => {
    // Appends not yet written take up to twice the budget: blocks of unsettled appends are evicted under them.
    const log = await Log.open(await tempDir(), { cache: own({ tailBytes }), segmentBytes: 256 * KiB, maxPendingBytes: 32 * KiB });
    const random = new Random(60);
    /** Value sizes by offset: each record's value names its offset (value()). */
    const sizes: number[] = [];
    const batch = () =>
      Array.from({ length: random.int(1, 4) }, () => {
        const offset = sizes.length;
        sizes.push(random.int(10, 3000));
        return { value: value(offset, sizes[offset]!) };
      });
    /** The offsets from `from` on whose records read back as appended. */
    const intact = async (from: number) => {
      const out: number[] = [];
      for await (const r of log.records(from)) if (r.value!.equals(value(r.offset, sizes[r.offset]!))) out.push(r.offset);
      return out;
    };
    const offsets = (from: number) => Array.from({ length: sizes.length - from }, (_, i) => from + i);
    const inFlight = new Set<Promise<unknown>>();
    for (let round = 0; round < 15; round++) {
      const start = sizes.length;
      // Up to 16 appends (~60 KB) in flight: each new one is encoded while earlier ones wait to be written.
      for (let i = 0; i < 40; i++) {
        if (inFlight.size >= 16) await Promise.race(inFlight);
        const values = batch();
        let append: Promise<unknown>;
        if (random.chance(0.3)) {
          const buffer = encodeBatch(values);
          append = log.appendBatches(buffer);
          buffer.fill(0);
        } else {
          append = log.append(values);
        }
        const tracked = append.finally(() => inFlight.delete(tracked));
        inFlight.add(tracked);
      }
      await Promise.all(inFlight);
      // One more, alone: its block is the newest, so the tail cache (if any) keeps it; a read takes views of it.
      await log.append(batch());
      expect(await intact(start)).toEqual(offsets(start));
      const hits = log.cacheStats().tailHits;
      expect(await intact(sizes.length - 1)).toEqual([sizes.length - 1]);
      expect(log.cacheStats().tailHits - hits).toBe(tailBytes > 0 ? 1 : 0);
    }
    expect(await intact(0)).toEqual(offsets(0));
    await log.close();
  });

  test('close frees the memory of a log whose refused appends took blocks no window holds', async () => {
    const log = await Log.open(await tempDir(), { cache: own({ tailBytes: MiB }), maxMessageBytes: 10 * KiB });
    await appendTo([log], 2, 1000);
    // Encoded into a block of 24 KiB that it nearly fills, then refused: no later append fits in that block.
    await expect(log.append([{ value: Buffer.alloc(24 * KiB - 100) }])).rejects.toMatchObject({ code: 'ERECORDTOOLARGE' });
    await appendTo([log], 2, 1000);
    expect(log.cacheStats().cacheBytes).toBeGreaterThan(24 * KiB);
    await log.close();
    expect(log.cacheStats().cacheBytes).toBe(0);
  });
});

describe('invalidation', () => {
  test.each([
    ['read-ahead', 0, 20],
    ['read-ahead, across segments', 0, 150],
    ['the tail cache', 128 * KiB, 20],
    ['the tail cache, across segments', 128 * KiB, 150],
  ])('truncateTo: reads after it never see cut bytes, from %s', async (_, tailBytes, back) => {
    const dir = await tempDir();
    const mine = await Log.open(join(dir, 'own'), { cache: own({ tailBytes, readAheadBytes: 64 * KiB }), segmentBytes: 128 * KiB });
    const pc = await Log.open(join(dir, 'pc'), { segmentBytes: 128 * KiB });
    await fill([mine, pc], 400 * KiB);
    for (const log of [mine, pc]) await log.roll();
    // About 100 KiB in the active segment: cutting 20 records stays in it, 150 do not.
    for (let i = 0; i < 25; i++) await appendTo([mine, pc], 4, 1000);
    const cut = mine.endOffset - back;
    // Read over what will be cut, so that it sits in memory.
    await readAll(mine, 16 * KiB, cut - 100);
    for (const log of [mine, pc]) await log.truncateTo(cut);
    // Different records at the same offsets and positions.
    for (let i = 0; i < 60; i++) await appendTo([mine, pc], 3, 700);
    for (const from of [cut - 1, cut, cut + 7, cut - 100]) {
      for (const maxBytes of [1, 10 * KiB, MiB]) expect((await mine.read(from, { maxBytes })).bytes.equals((await pc.read(from, { maxBytes })).bytes)).toBe(true);
    }
    expect((await readAll(mine, 8 * KiB, cut - 300)).equals(await readAll(pc, 8 * KiB, cut - 300))).toBe(true);
    await Promise.all([mine.close(), pc.close()]);
  });

  test('retention and close release cache memory and O_DIRECT descriptors', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { cache: own({ tailBytes: MiB, readAheadBytes: 64 * KiB }), segmentBytes: 128 * KiB, fileDeleteDelayMs: 0 });
    await fill([log], MiB);
    await readAll(log, 32 * KiB);
    const held = log.cacheStats().cacheBytes;
    expect(held).toBeGreaterThan(0);
    const removed = await log.applyRetention({ retentionBytes: 200 * KiB });
    expect(removed).toBeGreaterThan(3);
    expect(log.cacheStats().cacheBytes).toBeLessThan(held);
    expect((await readAll(log, 32 * KiB)).length).toBe(log.size);
    await expect(log.read(0)).rejects.toMatchObject({ code: 'EOFFSETRANGE' });
    expect(await openFilesUnder(dir)).not.toEqual([]);
    await log.close();
    expect(log.cacheStats().cacheBytes).toBe(0);
    expect(await openFilesUnder(dir)).toEqual([]);
  });
});

describe('the same bytes as pagecache mode', () => {
  test.each(['auto', 'off'] as const)("random reads interleaved with appends (directIO '%s')", async (directIO) => {
    const dir = await tempDir();
    const options = { segmentBytes: 256 * KiB, indexIntervalBytes: 2048 };
    const mine = await Log.open(join(dir, 'own'), { ...options, cache: own({ tailBytes: 192 * KiB, readAheadBytes: 64 * KiB, directIO }) });
    const pc = await Log.open(join(dir, 'pc'), options);
    const rng = new Random(7);
    const random = (n: number) => rng.int(0, n - 1);
    await fill([mine, pc], 2 * MiB, 3, 900);
    for (let i = 0; i < 400; i++) {
      if (i % 20 === 0) await appendTo([mine, pc], 1 + random(8), 1 + random(3000));
      // Near the end (tail hits) as often as anywhere (catch-up reads).
      const offset = random(2) === 0 ? mine.endOffset - random(200) : random(mine.endOffset + 1);
      const options: ReadOptions = { maxBytes: 1 + random(300 * KiB) };
      if (random(4) === 0) options.maxOffset = offset + random(500);
      const [a, b] = await Promise.all([mine.read(offset, options), pc.read(offset, options)]);
      expect(a.nextOffset).toBe(b.nextOffset);
      expect(a.bytes.equals(b.bytes)).toBe(true);
    }
    expect(mine.cacheStats().tailHits).toBeGreaterThan(50);
    expect(mine.cacheStats().tailMisses).toBeGreaterThan(50);
    await Promise.all([mine.close(), pc.close()]);
  });

  test('sendTo: the same bytes on the wire, tail hits and catch-up ranges alike, none of them by sendfile', async () => {
    const dir = await tempDir();
    const options = { segmentBytes: 256 * KiB };
    const mine = await Log.open(join(dir, 'own'), { ...options, cache: own({ tailBytes: 256 * KiB, readAheadBytes: 128 * KiB }) });
    const pc = await Log.open(join(dir, 'pc'), options);
    await fill([mine, pc], 2 * MiB);
    const end = mine.endOffset;
    const fetches: Array<[number, ReadOptions]> = [
      [0, { maxBytes: 100 * KiB }],
      [5, { maxBytes: 700 * KiB }],
      [end - 600, { maxBytes: MiB }],
      [end - 10, {}],
      [Math.floor(end / 2), { maxBytes: 1, maxOffset: Math.floor(end / 2) + 3 }],
      [end, {}],
    ];
    const wire = async (log: Log) => {
      const pair = await socketPair();
      readSlowly(pair);
      const results = await Promise.all(fetches.map(([offset, o], i) => log.sendTo(pair.sender, offset, { ...o, prefix: (r) => Buffer.from(`[${i}:${r.bytes}]`) })));
      const total = results.reduce((n, r, i) => n + r.bytes + `[${i}:${r.bytes}]`.length, 0);
      await until(() => pair.received().length >= total, 'every response');
      return { results, bytes: pair.received() };
    };
    const before = stats().sendfileCalls;
    const a = await wire(mine);
    expect(stats().sendfileCalls).toBe(before);
    const b = await wire(pc);
    expect(a.results).toEqual(b.results);
    expect(a.bytes.equals(b.bytes)).toBe(true);
    expect(mine.cacheStats().tailHits).toBeGreaterThan(0);
    expect(mine.cacheStats().tailMisses).toBeGreaterThan(0);
    await Promise.all([mine.close(), pc.close()]);
  });
});

describe('writes in own mode', () => {
  test.each([
    ['none', 'none'],
    ['interval', { intervalMs: 20 }],
    ['always', 'always'],
  ] as const)("flush '%s': written pages leave the page cache once on disk", async (_, flush) => {
    const dir = await tempDir();
    const mine = await Log.open(join(dir, 'own'), { cache: own({ tailBytes: MiB }), flush, segmentBytes: 32 * MiB });
    const pc = await Log.open(join(dir, 'pc'), { flush, segmentBytes: 32 * MiB });
    await fill([mine, pc], 24 * MiB, 16, 1000);
    // Write-behind runs in the background; wait for it to get past the bulk.
    const residentOwn = async () => (await mine.residency()).residentBytes;
    let r = await residentOwn();
    await until(async () => (r = await residentOwn()) <= 9 * MiB);
    expect(r).toBeLessThanOrEqual(9 * MiB);
    expect((await pc.residency()).residentBytes).toBeGreaterThan(20 * MiB);
    await Promise.all([mine.close(), pc.close()]);
  });
});

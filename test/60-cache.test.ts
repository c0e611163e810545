// Cache modes: the `cache` option, tail reads served from memory without a
// system call, catch-up reads that leave the page cache as they found it and
// never enter the tail cache, the store-wide budget, O_DIRECT fallback,
// invalidation on truncation, retention and roll, and results byte for byte
// the same as pagecache mode's for random reads and sendTo.
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { Log, type LogOptions, type ReadOptions } from '../src/log/log.js';
import { File, probeDirectIO, stats } from '../src/native.js';
import { appendTo, evict, fill, own, readAll } from './helpers/cache-logs.js';
import { injectFault } from './helpers/faults.js';
import { Pace } from '../src/cache/pace.js';
import { TailBudget, TailWindow } from '../src/cache/tail.js';
import type { BatchHeader } from '../src/segment/batch.js';
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
    const window = new TailWindow({} as Segment, budget, 0);
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

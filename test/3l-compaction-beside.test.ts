// A compaction pass beside the log's other work (issue #17 items 2 and 4):
// appends go on while a pass (slowed by cleanerBytesPerSecond) reads and
// writes; a truncation, retention or close() during a pass cuts it short at
// a consistent point (no swap of segments that changed), and the log reads
// and reopens as it should. A LogStore cleans its compacted logs, one pass
// at a time, the filthiest due log first.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Log, type LogOptions } from '../src/log/log.js';
import { LogStore } from '../src/store/store.js';
import { cleanedPoint, latestByKey, readAll, T0, workload } from './helpers/compaction.js';
import { readSlowly, socketPair } from './helpers/sockets.js';
import { tempDir } from './helpers/tmp.js';
import { until } from './helpers/until.js';

const OPTIONS: LogOptions = { cleanupPolicy: 'compact', segmentBytes: 4096 };
/** Slow enough that the ~100 KB of reads and writes of these logs' passes take a second or more. */
const SLOW = { cleanerBytesPerSecond: 64 * 1024, now: T0 };

async function filled(dir: string): Promise<Log> {
  const log = await Log.open(dir, OPTIONS);
  await workload(log, 11, 400, 30);
  await log.roll();
  return log;
}

test('appends are written while a pass runs, not after it', async () => {
  const log = await filled(await tempDir());
  const events: string[] = [];
  const pass = log.compact(SLOW).then((r) => {
    events.push('pass');
    return r;
  });
  for (let i = 0; i < 5; i++) {
    await log.append([{ key: `new${i}`, value: 'x' }]);
    events.push(`append${i}`);
  }
  const result = await pass;
  expect(events).toEqual(['append0', 'append1', 'append2', 'append3', 'append4', 'pass']);
  expect(result.segmentsCleaned).toBeGreaterThan(0);
  expect((await readAll(log)).slice(-5).map((r) => r.key)).toEqual(['new0', 'new1', 'new2', 'new3', 'new4']);
  await log.close();
});

test.each([
  ['truncateTo', (log: Log) => log.truncateTo(Math.floor(log.endOffset / 3))],
  ['deleteRecordsBefore', (log: Log) => log.deleteRecordsBefore(Math.floor(log.endOffset / 2))],
  ['close', (log: Log) => log.close()],
] as const)('%s during a pass cuts it short: nothing it read and that changed is swapped in, and the log reopens to the same view', async (_what, act) => {
  const dir = await tempDir();
  const log = await filled(dir);
  const pass = log.compact(SLOW);
  // Let the pass get under way (its map is built, its first group being written).
  await new Promise((resolve) => setTimeout(resolve, 300));
  await act(log);
  const result = await pass;
  const full = await Log.open(dir, OPTIONS).then(async (l) => {
    const v = await readAll(l);
    await l.close();
    return v;
  });
  if (!log.closed) {
    expect(await readAll(log)).toEqual(full);
    await log.close();
  }
  expect(result.segmentsCleaned).toBeLessThan(30);
  // Offsets only go up, and each key's records are ones the workload wrote (replayed by the same seed).
  expect(full.map((r) => r.offset)).toEqual([...full.map((r) => r.offset)].sort((a, b) => a - b));
  await rm(join(dir, '.clean-shutdown'), { force: true });
  const again = await Log.open(dir, OPTIONS);
  expect(await readAll(again)).toEqual(full);
  // And a later pass cleans it all, the latest records of keys unchanged: below the cleaned point each key once (the cut
  // pass left the point where its last swap ended, so what it did not swap in was mapped again).
  const latest = latestByKey(await readAll(again, 'committed'));
  await again.compact({ now: T0 });
  expect(latestByKey(await readAll(again, 'committed'))).toEqual(latest);
  const point = await cleanedPoint(dir);
  const below = (await readAll(again)).filter((r) => r.offset < point && !r.control).map((r) => r.key);
  expect(below.length).toBe(new Set(below).size);
  await again.close();
});

test.each([
  ['truncateTo', (log: Log) => log.truncateTo(Math.floor(log.endOffset / 3))],
  ['deleteRecordsBefore', (log: Log) => log.deleteRecordsBefore(Math.floor(log.endOffset / 2))],
] as const)('%s while a pass writes its output (a .cleaned file on disk): the pass swaps in nothing cleaned from segments that changed', async (_what, act) => {
  const dir = await tempDir();
  const log = await filled(dir);
  const before = await readAll(log);
  const pass = log.compact(SLOW);
  // Past mapping and reading: the first group's output is being written, its swap not yet begun.
  await until(async () => (await readdir(dir)).some((n) => n.endsWith('.cleaned')), 'a .cleaned file');
  await act(log);
  const afterAct = await readAll(log);
  await pass;
  // The log is what the removal left, record for record: no swapped-in group brings back removed records or
  // drops kept ones (the pass may still swap groups of segments the removal did not touch, cleaned as they were).
  const now = await readAll(log);
  expect(latestByKey(now.filter((r) => !r.control))).toEqual(latestByKey(afterAct.filter((r) => !r.control)));
  expect(now[0]?.offset ?? log.startOffset).toBeGreaterThanOrEqual(log.startOffset);
  expect(Math.max(...now.map((r) => r.offset))).toBeLessThanOrEqual(Math.max(...afterAct.map((r) => r.offset)));
  expect(now.length).toBeLessThan(before.length);
  await log.close();
  const again = await Log.open(dir, OPTIONS);
  expect(await readAll(again)).toEqual(now);
  await again.close();
});

describe('LogStore cleaning', () => {
  test('runCleaner cleans the due compacted log with the highest dirty ratio, one at a time; none due is undefined', async () => {
    const store = await LogStore.open(await tempDir(), { cleanerBackoffMs: 3_600_000, segmentBytes: 4096 });
    const a = await store.log('a', { cleanupPolicy: 'compact', minCleanableDirtyRatio: 0.01 });
    const b = await store.log('b', { cleanupPolicy: 'compact,delete' });
    const plain = await store.log('plain');
    const lazy = await store.log('lazy', { cleanupPolicy: 'compact', minCleanableDirtyRatio: 1 });
    for (const log of [a, b, plain, lazy]) {
      await workload(log, 3, 120, 10);
      await log.roll();
    }
    // a's first part cleaned, then more written: its ratio drops below b's, which is all dirty.
    await a.compact({ now: T0 });
    await workload(a, 4, 20, 10);
    await a.roll();
    expect((await a.compactionState(T0)).dirtyRatio).toBeLessThan(1);
    expect(await b.compactionState(T0)).toMatchObject({ dirtyRatio: 1, due: true });
    expect(await lazy.compactionState(T0)).toMatchObject({ dirtyRatio: 1, due: false });
    const [first, second] = await Promise.all([store.runCleaner(T0), store.runCleaner(T0)]);
    expect(first!.name).toBe('b');
    expect(second!.name).toBe('a');
    expect(await store.runCleaner(T0)).toBeUndefined();
    await expect(plain.compactionState()).rejects.toMatchObject({ code: 'EINVAL' });
    await store.close();
  });

  test('a log past maxCompactionLagMs is cleaned whatever its dirty ratio', async () => {
    const store = await LogStore.open(await tempDir(), { cleanerBackoffMs: 3_600_000 });
    const log = await store.log('late', { cleanupPolicy: 'compact', minCleanableDirtyRatio: 1, maxCompactionLagMs: 1000 });
    for (let i = 0; i < 10; i++) await log.append([{ key: `k${i % 3}`, value: `${i}`, timestamp: T0 }]);
    await log.roll();
    expect(await log.compactionState(T0 + 1000)).toMatchObject({ overdue: false, due: false });
    expect(await store.runCleaner(T0 + 1000)).toBeUndefined();
    expect(await log.compactionState(T0 + 1001)).toMatchObject({ overdue: true, due: true });
    expect((await store.runCleaner(T0 + 1001))!.result.recordsRemoved).toBe(7);
    await store.close();
  });

  test('the store cleans its compacted logs in the background, every cleanerBackoffMs', async () => {
    const dataDir = await tempDir();
    const options: LogOptions = { cleanupPolicy: 'compact', segmentBytes: 4096 };
    // Written before the store opens, so that its cleaner finds it all dirty.
    const written = await Log.open(join(dataDir, 'bg'), options);
    await workload(written, 8, 200, 5);
    await written.roll();
    const latest = latestByKey(await readAll(written, 'committed'));
    const size = written.size;
    await written.close();
    const store = await LogStore.open(dataDir, { ...options, cleanerBackoffMs: 20 });
    const log = await store.log('bg');
    await until(async () => log.size < size / 2 && !(await log.compactionState()).due);
    expect(latestByKey(await readAll(log, 'committed'))).toEqual(latest);
    expect(store.backgroundErrors).toEqual([]);
    await store.close();
  });

  test('cleaner options are checked', async () => {
    for (const bad of [{ cleanerMemoryBytes: 10 }, { cleanerBytesPerSecond: 0 }, { cleanerBackoffMs: 0 }]) {
      await expect(LogStore.open(await tempDir(), bad)).rejects.toThrow(RangeError);
    }
    const log = await Log.open(await tempDir(), { cleanupPolicy: 'compact' });
    await expect(log.compact({ cleanerBytesPerSecond: -1 })).rejects.toThrow(RangeError);
    await log.close();
  });
});

test("in own cache mode reads see the pass's output, not the tail cache's or a catch-up read's copy of what it replaced", async () => {
  const dir = await tempDir();
  const options: LogOptions = { ...OPTIONS, cache: { mode: 'own', tailBytes: 64 * 1024, readAheadBytes: 8192 } };
  const log = await Log.open(dir, options);
  const written = await workload(log, 21, 300, 15);
  await log.roll();
  // Read once before the pass: the catch-up path holds windows of the segments the pass replaces.
  const before = await readAll(log);
  await log.compact({ now: T0 });
  const after = await readAll(log);
  expect(after.length).toBeLessThan(before.length);
  expect(latestByKey(await readAll(log, 'committed'))).toEqual(latestByKey(written));
  await log.close();
  const again = await Log.open(dir, options);
  expect(await readAll(again)).toEqual(after);
  await again.close();
});

test('a sendTo under way when a pass swaps its segments out delivers the bytes it started with, whole', async () => {
  const log = await Log.open(await tempDir(), { cleanupPolicy: 'compact', segmentBytes: 1 << 20 });
  // 12 MB of 40 keys: more than loopback socket buffers hold, so the transfer is still under way during the pass.
  const value = Buffer.alloc(600, 0x61);
  for (let b = 0; b < 2000; b++) await log.append(Array.from({ length: 10 }, (_, i) => ({ key: `k${(b * 10 + i) % 40}`, value })));
  await log.roll();
  const { bytes: expected } = await log.read(0, { maxBytes: 16 << 20 });
  const pair = await socketPair();
  // The receiver reads nothing yet: the transfer waits on a full socket while the pass replaces the files.
  let done = false;
  const sent = log.sendTo(pair.sender, 0, { maxBytes: 16 << 20 }).finally(() => (done = true));
  const result = await log.compact({ now: T0 });
  expect(result.segmentsCleaned).toBeGreaterThan(5);
  expect(done).toBe(false);
  readSlowly(pair);
  await sent;
  await until(() => pair.received().length >= expected.length);
  expect(pair.received().equals(expected)).toBe(true);
  await pair.close();
  await log.close();
});

test('in own cache mode a pass leaves the pages it read and wrote out of the page cache; in page cache mode it does not', async () => {
  const resident: Record<string, number> = {};
  for (const mode of ['pagecache', 'own'] as const) {
    const dir = await tempDir();
    const cache = mode === 'own' ? { mode, tailBytes: 64 * 1024, readAheadBytes: 8192 } : { mode };
    const log = await Log.open(dir, { ...OPTIONS, segmentBytes: 256 * 1024, cache });
    const value = Buffer.alloc(500, 0x61);
    for (let b = 0; b < 400; b++) await log.append(Array.from({ length: 10 }, (_, i) => ({ key: `k${(b * 10 + i) % 500}`, value })));
    await log.roll();
    await log.flush();
    await log.compact({ now: T0 });
    const r = await log.residency();
    resident[mode] = r.residentBytes / r.fileBytes;
    await log.close();
  }
  expect(resident.pagecache).toBeGreaterThan(0.5);
  expect(resident.own).toBeLessThan(0.1);
});

// Point reads and time lookups served from the segment's mapping of its
// .log when the page cache holds the batch: no read call then, a read (on
// the threadpool where not cached) otherwise, the mapping following the
// segment through truncation, and damage still found.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { File } from '../src/native.js';
import { Log, type LogOptions } from '../src/seglog.js';
import type { LogRecord } from '../src/segment/batch.js';
import { tempDir } from './helpers/tmp.js';

const value = (offset: number) => Buffer.from(`value-${offset}-`.padEnd(200, '.'));

async function filled(batches: number, perBatch: number, options?: LogOptions): Promise<Log> {
  const log = await Log.open(await tempDir(), options);
  for (let b = 0; b < batches; b++) {
    const base = log.endOffset;
    await log.append(Array.from({ length: perBatch }, (_, i) => ({ value: value(base + i), timestamp: 5000 + base + i })));
  }
  return log;
}

async function allRecords(log: Log): Promise<LogRecord[]> {
  const held: LogRecord[] = [];
  for await (const b of log.batches(0, { maxBytes: 4096 })) held.push(...b.records);
  return held;
}

function expectValues(records: LogRecord[], from = 0): void {
  records.forEach((r, i) => {
    expect(r.offset).toBe(from + i);
    expect(r.value!.equals(value(from + i))).toBe(true);
  });
}

async function evict(dir: string): Promise<void> {
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.log'))) {
    const f = await File.open(join(dir, name));
    await f.datasync(); // DONTNEED cannot drop dirty pages
    await f.advise(0, 0, 'dontneed');
    await f.close();
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('point reads from the segment mapping', () => {
  test('cached: readRecord and offsetForTimestamp read nothing; evicted: they read, and return the same', async () => {
    const log = await filled(20, 10, { segmentBytes: 8000 });
    const dir = log.dir;
    await log.close();
    await evict(dir);
    const reopened = await Log.open(dir);
    const reads = vi.spyOn(File.prototype, 'readHot');
    // Not in the page cache: mincore says so, and the batch is read (the threadpool takes what RWF_NOWAIT cannot).
    expect((await reopened.readRecord(137))!.value!.equals(value(137))).toBe(true);
    expect(await reopened.offsetForTimestamp(5000 + 151)).toBe(151);
    expect(reads).toHaveBeenCalled();
    // Cached now (those reads brought the pages in): served in place, no read at all.
    reads.mockClear();
    expect((await reopened.readRecord(137))!.value!.equals(value(137))).toBe(true);
    expect(await reopened.offsetForTimestamp(5000 + 151)).toBe(151);
    expect(reads).not.toHaveBeenCalled();
    // The record is the caller's copy, not a view of the mapping.
    const r = (await reopened.readRecord(138))!;
    await reopened.close();
    expect(r.value!.equals(value(138))).toBe(true);
  });

  test('truncateTo: reads after it see what is appended in place of the cut, views held across it are unchanged', async () => {
    const log = await filled(10, 10);
    const held = await allRecords(log);
    expect((await log.readRecord(45))!.value!.equals(value(45))).toBe(true); // the segment is mapped
    await log.truncateTo(45); // cuts the batch holding 45: 40.. go
    expect(log.endOffset).toBe(40);
    await log.append(Array.from({ length: 10 }, () => ({ value: Buffer.alloc(200, 0x7a) })));
    expect((await log.readRecord(45))!.value!.equals(Buffer.alloc(200, 0x7a))).toBe(true);
    expect(await log.offsetForTimestamp(5040)).toBe(40);
    expectValues(held);
    await log.close();
  });
});

test('a damaged batch in the page cache is refused by every read (ECORRUPT), mapped or not', async () => {
  const log = await filled(5, 10);
  const dir = log.dir;
  await log.close();
  const [name] = (await readdir(dir)).filter((n) => n.endsWith('.log'));
  const f = await File.open(join(dir, name!), { write: true });
  const size = await f.size();
  // A value byte of the third batch (offsets 20..29), inside its CRC.
  const at = (2 * size) / 5 + 200;
  const flip = Buffer.alloc(1);
  await f.read(flip, at);
  flip[0] ^= 0x01;
  await f.write(flip, at);
  await f.close();
  const reopened = await Log.open(dir); // closed cleanly: trusted without a scan, so reads must find the damage
  const reads = vi.spyOn(File.prototype, 'readHot');
  expect((await reopened.readRecord(5))!.value!.equals(value(5))).toBe(true);
  await expect(reopened.readRecord(25)).rejects.toMatchObject({ code: 'ECORRUPT' });
  await expect(reopened.offsetForTimestamp(5025)).rejects.toMatchObject({ code: 'ECORRUPT' });
  expect(reads).not.toHaveBeenCalled(); // those were served from the mapping
  await expect(allRecords(reopened)).rejects.toMatchObject({ code: 'ECORRUPT' });
  await expect(reopened.read(20)).rejects.toMatchObject({ code: 'ECORRUPT' });
  await reopened.close();
});

test('reads served from the page cache and awaited back to back still let the event loop turn', async () => {
  const log = await filled(40, 10);
  await new Promise(setImmediate); // the appends' loop clock restarts
  // Each look at the clock is 1 ms of a clock of the test's own: the loop is due a turn after 5 ms of reads.
  let clock = 0;
  const now = vi.spyOn(performance, 'now').mockImplementation(() => clock++);
  try {
    const runs: Record<string, () => AsyncGenerator<unknown> | Promise<unknown>> = {
      'records()': () => log.records(0, { maxBytes: 4096 }),
      'batches()': () => log.batches(0, { maxBytes: 4096 }),
    };
    for (const [name, run] of Object.entries(runs)) {
      let seen = 0;
      let turnedAt = -1;
      setImmediate(() => (turnedAt = seen));
      for await (const _ of run() as AsyncGenerator<unknown>) seen++;
      expect({ name, turned: turnedAt > 0 && turnedAt < seen }).toEqual({ name, turned: true });
    }
    const points: Record<string, (i: number) => Promise<unknown>> = {
      readRecord: async (i) => expect((await log.readRecord(i))!.value!.equals(value(i))).toBe(true),
      offsetForTimestamp: async (i) => expect(await log.offsetForTimestamp(5000 + i)).toBe(i),
      read: async (i) => expect((await log.read(i, { maxBytes: 1 })).bytes.length).toBeGreaterThan(0),
    };
    for (const [name, read] of Object.entries(points)) {
      let done = 0;
      let turnedAt = -1;
      setImmediate(() => (turnedAt = done));
      for (; done < 100; done++) await read((done * 37) % 400);
      expect({ name, turned: turnedAt > 0 && turnedAt < 100 }).toEqual({ name, turned: true });
    }
  } finally {
    now.mockRestore();
    await log.close();
  }
});

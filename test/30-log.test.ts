import { readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Log, type LogOptions } from '../src/log/log.js';
import { decodeBatch, encodeBatch, type LogRecord } from '../src/segment/batch.js';
import { SeglogError } from '../src/errors.js';
import { tempDir } from './helpers/tmp.js';
import { until } from './helpers/until.js';

const value = (offset: number, size = 100) => Buffer.alloc(size, offset % 251).fill(`v${offset}:`, 0, Math.min(size, `v${offset}:`.length));

/** Appends `batches` batches of `perBatch` records; record i's value encodes its offset. */
async function fill(log: Log, batches: number, perBatch = 10, size = 100): Promise<void> {
  for (let b = 0; b < batches; b++) {
    const base = log.endOffset;
    await log.append(Array.from({ length: perBatch }, (_, i) => ({ value: value(base + i, size), timestamp: 1_000_000 + base + i })));
  }
}

async function allRecords(log: Log, from = log.startOffset): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const r of log.records(from)) out.push(r);
  return out;
}

function expectIntact(records: LogRecord[], from: number, to: number, size = 100): void {
  expect(records.map((r) => r.offset)).toEqual(Array.from({ length: to - from }, (_, i) => from + i));
  for (const r of records) expect(r.value!.equals(value(r.offset, size))).toBe(true);
}

async function open(dir: string, options?: LogOptions): Promise<Log> {
  return Log.open(dir, options);
}

describe('append and read', () => {
  test('offsets are assigned in order and records read back intact', async () => {
    const log = await open(await tempDir());
    expect([log.startOffset, log.endOffset]).toEqual([0, 0]);
    const r = await log.append([{ value: 'a' }, { key: 'k', value: 'b', headers: [{ key: 'h', value: 'x' }] }]);
    expect(r).toMatchObject({ baseOffset: 0, lastOffset: 1 });
    expect(log.endOffset).toBe(2);
    const got = await allRecords(log);
    expect(got.map((x) => x.value!.toString())).toEqual(['a', 'b']);
    expect(got[1]!.key!.toString()).toBe('k');
    expect(got[1]!.headers[0]!.value!.toString()).toBe('x');
    await log.close();
  });

  test('concurrent appends are serialized, each gets its own offsets', async () => {
    const log = await open(await tempDir());
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append([{ value: `${i}a` }, { value: `${i}b` }])));
    const bases = results.map((r) => r.baseOffset).sort((a, b) => a - b);
    expect(bases).toEqual(Array.from({ length: 50 }, (_, i) => i * 2));
    for (const r of results) {
      const recs = await allRecords(log, r.baseOffset);
      expect(recs[0]!.value!.toString()).toMatch(/a$/);
      expect(recs[0]!.offset).toBe(r.baseOffset);
    }
    await log.close();
  });

  test('read returns whole batches within maxBytes, at least one, empty at the end', async () => {
    const log = await open(await tempDir());
    await fill(log, 10); // each batch ~ 10 x ~110 bytes
    const one = await log.read(0, { maxBytes: 1 });
    expect(decodeBatch(one.bytes).map((r) => r.offset)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(one.nextOffset).toBe(10);
    // Inside a batch: the whole batch that holds the offset.
    const mid = await log.read(15, { maxBytes: 1 });
    expect(mid.nextOffset).toBe(20);
    expect(decodeBatch(mid.bytes)[0]!.offset).toBe(10);
    const all = await log.read(0, { maxBytes: 1 << 20 });
    expect(all.nextOffset).toBe(100);
    const twoAndABit = await log.read(0, { maxBytes: one.bytes.length * 2 + 10 });
    expect(twoAndABit.nextOffset).toBe(20);
    expect(twoAndABit.bytes.length).toBe(one.bytes.length * 2);
    const end = await log.read(100);
    expect(end).toEqual({ bytes: Buffer.alloc(0), nextOffset: 100 });
    const bounded = await log.read(0, { maxOffset: 35 });
    expect(bounded.nextOffset).toBe(30);
    await expect(log.read(101)).rejects.toMatchObject({ code: 'EOFFSETRANGE' });
    await log.close();
  });

  test('bad arguments are TypeError/RangeError', async () => {
    const log = await open(await tempDir());
    await expect(log.append('x' as never)).rejects.toThrow(TypeError);
    await expect(log.append([])).rejects.toThrow(RangeError);
    await expect(log.append([{ value: 5 } as never])).rejects.toThrow(TypeError);
    await expect(log.read(-1)).rejects.toThrow(RangeError);
    await expect(log.read(0, { maxBytes: 0 })).rejects.toThrow(RangeError);
    await expect(log.read('0' as never)).rejects.toThrow(TypeError);
    await expect(log.truncateTo(1.5)).rejects.toThrow(RangeError);
    await expect(log.appendBatches(Buffer.alloc(0))).rejects.toThrow(RangeError);
    await expect(log.offsetForTimestamp(NaN)).rejects.toThrow(RangeError);
    await expect(Log.open(join(await tempDir(), 'x'), { segmentBytes: 10 })).rejects.toThrow(RangeError);
    await expect(Log.open(join(await tempDir(), 'x'), { nope: 1 } as never)).resolves.toBeInstanceOf(Log);
    await expect(Log.open(7 as never)).rejects.toThrow(TypeError);
    await expect(log.records(-5).next()).rejects.toThrow(RangeError);
    await log.close();
  });

  test('use after close rejects with ECLOSED; close is idempotent', async () => {
    const log = await open(await tempDir());
    await log.append([{ value: 'x' }]);
    const a = log.close();
    expect(log.close()).toBe(a);
    await a;
    await expect(log.append([{ value: 'y' }])).rejects.toMatchObject({ code: 'ECLOSED' });
    await expect(log.read(0)).rejects.toMatchObject({ code: 'ECLOSED' });
  });
});

describe('segments', () => {
  test('rolls by size, reads span boundaries, files are Kafka-named', async () => {
    const dir = await tempDir();
    const log = await open(dir, { segmentBytes: 4096, indexIntervalBytes: 512 });
    await fill(log, 60);
    expect(log.segmentCount).toBeGreaterThan(10);
    const files = await readdir(dir);
    expect(files.filter((f) => f.endsWith('.log')).every((f) => /^\d{20}\.log$/.test(f))).toBe(true);
    expect(files).toContain('00000000000000000000.log');
    expect(files).toContain('00000000000000000000.index');
    expect(files).toContain('00000000000000000000.timeindex');
    for (const f of files.filter((n) => n.endsWith('.log'))) expect((await stat(join(dir, f))).size).toBeLessThanOrEqual(4096);
    expectIntact(await allRecords(log), 0, 600);
    // Every offset readable on its own, whichever segment holds it.
    for (let o = 0; o < 600; o += 7) {
      const { bytes } = await log.read(o, { maxBytes: 1 });
      const recs = decodeBatch(bytes);
      expect(recs.some((r) => r.offset === o)).toBe(true);
    }
    // A big read crosses segment boundaries.
    const big = await log.read(0, { maxBytes: 20_000 });
    expect(big.nextOffset).toBeGreaterThan(100);
    await log.close();
  });

  test('roll by index full and explicit roll()', async () => {
    const log = await open(await tempDir(), { segmentIndexBytes: 64, indexIntervalBytes: 0 });
    await fill(log, 30, 1);
    expect(log.segmentCount).toBeGreaterThan(2);
    expectIntact(await allRecords(log), 0, 30);
    const before = log.segmentCount;
    await log.roll();
    await log.roll(); // no-op on an empty active segment
    expect(log.segmentCount).toBe(before + 1);
    await log.close();
  });

  test('roll by age (segmentMs)', async () => {
    const log = await open(await tempDir(), { segmentMs: 1 });
    await log.append([{ value: 'a' }]);
    await new Promise((r) => setTimeout(r, 5));
    await log.append([{ value: 'b' }]);
    expect(log.segmentCount).toBe(2);
    await log.close();
  });

  test('an append larger than segmentBytes is refused', async () => {
    const log = await open(await tempDir(), { segmentBytes: 2048 });
    await expect(log.append([{ value: Buffer.alloc(4096) }])).rejects.toThrow(/exceeds segmentBytes/);
    expect(log.endOffset).toBe(0);
    await log.close();
  });
});

describe('reopen and recovery', () => {
  test('clean reopen preserves everything and keeps appending', async () => {
    const dir = await tempDir();
    let log = await open(dir, { segmentBytes: 8192 });
    await fill(log, 40);
    await log.close();
    expect(await readdir(dir)).toContain('.clean-shutdown');
    log = await open(dir, { segmentBytes: 8192 });
    // It stays while the log only reads, and goes before the first write (test/3c-clean-reopen).
    expect(await readdir(dir)).toContain('.clean-shutdown');
    expect(log.endOffset).toBe(400);
    await fill(log, 5);
    expect(await readdir(dir)).not.toContain('.clean-shutdown');
    expectIntact(await allRecords(log), 0, 450);
    await log.close();
  });

  test('unclean reopen recovers without losing whole batches', async () => {
    const dir = await tempDir();
    const log = await open(dir, { segmentBytes: 8192 });
    await fill(log, 40);
    await log.flush();
    // Simulate a crash: no close, so no marker (the fds leak for the test's life only).
    const reopened = await open(dir, { segmentBytes: 8192 });
    expect(reopened.endOffset).toBe(400);
    expectIntact(await allRecords(reopened), 0, 400);
    await reopened.close();
  });

  test('a torn tail at every byte position of the last batch is cut back to the previous batch', async () => {
    const dir = await tempDir();
    let log = await open(dir);
    await fill(log, 3, 5);
    const lastSize = (await log.read(10)).bytes.length;
    await log.close();
    const file = join(dir, '00000000000000000000.log');
    const full = await readFile(file);
    for (let cut = 1; cut < lastSize; cut++) {
      await writeFile(file, full.subarray(0, full.length - cut));
      await rm(join(dir, '.clean-shutdown'), { force: true });
      log = await open(dir);
      expect(log.endOffset).toBe(10);
      expect((await stat(file)).size).toBe(full.length - lastSize);
      expectIntact(await allRecords(log), 0, 10);
      await log.close();
    }
  });

  test('a zero-filled tail (preallocation, lost writes) is cut', async () => {
    const dir = await tempDir();
    let log = await open(dir);
    await fill(log, 3);
    await log.close();
    const file = join(dir, '00000000000000000000.log');
    const size = (await stat(file)).size;
    await truncate(file, size + 10_000);
    await rm(join(dir, '.clean-shutdown'));
    log = await open(dir);
    expect(log.endOffset).toBe(30);
    expect((await stat(file)).size).toBe(size);
    await log.close();
  });

  test('an invalid tail on a sealed segment refuses to open with ECORRUPT and leaves the file as it was; repair cuts it', async () => {
    const dir = await tempDir();
    let log = await open(dir, { segmentBytes: 4096 });
    while (log.segmentCount < 3) await fill(log, 1);
    const sealedEnd = log.endOffset;
    await log.roll();
    await fill(log, 1);
    await log.close();
    const names = (await readdir(dir)).filter((n) => n.endsWith('.log')).sort();
    const file = join(dir, names.at(-2)!);
    const whole = await readFile(file);
    // What a lost write of its last batch leaves: the file is longer than its batches, zeros past them.
    const damaged = Buffer.concat([whole, Buffer.alloc(700)]);
    await writeFile(file, damaged);
    await rm(join(dir, '.clean-shutdown'));
    const err = await Log.open(dir).catch((e) => e);
    expect(err).toBeInstanceOf(SeglogError);
    expect(err).toMatchObject({ code: 'ECORRUPT', path: file, position: whole.length });
    expect((await readFile(file)).equals(damaged)).toBe(true);
    log = await open(dir, { repair: true });
    expect((await readFile(file)).equals(whole)).toBe(true);
    expectIntact(await allRecords(log), 0, sealedEnd + 10);
    await log.close();
  });

  test('corruption followed by valid data refuses to open with ECORRUPT naming file and position; repair cuts it', async () => {
    const dir = await tempDir();
    let log = await open(dir);
    await fill(log, 5);
    const secondBatch = (await log.read(0, { maxBytes: 1 })).bytes.length;
    await log.close();
    const file = join(dir, '00000000000000000000.log');
    const data = await readFile(file);
    data[secondBatch + 70] ^= 0xff; // inside the second batch's records: CRC fails
    await writeFile(file, data);
    await rm(join(dir, '.clean-shutdown'));
    const err = await Log.open(dir).catch((e) => e);
    expect(err).toBeInstanceOf(SeglogError);
    expect(err).toMatchObject({ code: 'ECORRUPT', path: file, position: secondBatch });
    // Refusing must not have changed the file.
    expect((await readFile(file)).equals(data)).toBe(true);
    log = await open(dir, { repair: true });
    expect(log.endOffset).toBe(10);
    expectIntact(await allRecords(log), 0, 10);
    await log.close();
  });

  test.each([
    ['far past the log end', 0x40],
    ['back to an offset already served', 0],
  ])('a clean-opened log whose batch base offset (outside the CRC) flipped %s: reads refuse it with ECORRUPT', async (_, high) => {
    const dir = await tempDir();
    let log = await open(dir, { indexIntervalBytes: 1 });
    await fill(log, 5);
    const batch = (await log.read(0, { maxBytes: 1 })).bytes.length;
    await log.close();
    const file = join(dir, '00000000000000000000.log');
    const data = await readFile(file);
    // The third batch's base offset (20): its top byte set, or its 16s bit cleared (to 4, inside the first batch).
    if (high) data[2 * batch] = high;
    else data[2 * batch + 7] ^= 16;
    await writeFile(file, data);
    log = await open(dir);
    // Whether a read starts before the batch, at it, or jumps past it by the index, it is never served.
    for (const from of [0, 10, 20]) {
      await expect(log.read(from, { maxBytes: 1 << 20 })).rejects.toMatchObject({ code: 'ECORRUPT', path: file, position: 2 * batch });
    }
    // Past it, by the index: served as ever.
    expect((await log.read(40)).nextOffset).toBe(50);
    await log.close();
  });

  test('missing or corrupt index files are rebuilt from the log', async () => {
    const dir = await tempDir();
    let log = await open(dir, { indexIntervalBytes: 256 });
    await fill(log, 50);
    await log.close();
    await rm(join(dir, '00000000000000000000.index'));
    await writeFile(join(dir, '00000000000000000000.timeindex'), Buffer.alloc(13, 0xff)); // not a multiple of 12
    log = await open(dir, { indexIntervalBytes: 256 });
    for (let o = 0; o < 500; o += 13) {
      const recs = decodeBatch((await log.read(o, { maxBytes: 1 })).bytes);
      expect(recs.some((r) => r.offset === o)).toBe(true);
    }
    expect(await log.offsetForTimestamp(1_000_000 + 250)).toBe(250);
    await log.close();
    // After a clean close the rebuilt index has entries again.
    expect((await stat(join(dir, '00000000000000000000.index'))).size).toBeGreaterThan(0);
  });

  test('segments whose offsets overlap are refused', async () => {
    const dir = await tempDir();
    const log = await open(dir);
    await fill(log, 3);
    await log.close();
    // A second segment claiming to start inside the first.
    const first = await readFile(join(dir, '00000000000000000000.log'));
    await writeFile(join(dir, '00000000000000000005.log'), first);
    await expect(Log.open(dir)).rejects.toMatchObject({ code: 'ECORRUPT', path: join(dir, '00000000000000000005.log') });
  });
});

describe('time lookups', () => {
  test('first offset with timestamp >= T, with equal and decreasing timestamps', async () => {
    const log = await open(await tempDir(), { segmentBytes: 2048, indexIntervalBytes: 100 });
    const ts = [100, 100, 200, 150, 150, 300, 250, 300, 400, 50];
    for (const t of ts) await log.append([{ value: Buffer.alloc(200), timestamp: t }]);
    const expected = (T: number) => {
      const i = ts.findIndex((t) => t >= T);
      return i < 0 ? undefined : i;
    };
    for (const T of [0, 50, 99, 100, 101, 150, 199, 200, 201, 250, 300, 301, 400, 401]) {
      expect(await log.offsetForTimestamp(T), `T=${T}`).toBe(expected(T));
    }
    await log.close();
  });
});

describe('truncateTo', () => {
  test('drops later records and segments, then appends continue from the new end', async () => {
    const dir = await tempDir();
    const log = await open(dir, { segmentBytes: 4096 });
    await fill(log, 40);
    const segments = log.segmentCount;
    expect(await log.truncateTo(125)).toBe(120); // 125 is inside the batch 120..129
    expect(log.endOffset).toBe(120);
    expect(log.segmentCount).toBeLessThan(segments);
    await fill(log, 3);
    expectIntact(await allRecords(log), 0, 150);
    expect(await log.truncateTo(1000)).toBe(150); // past the end: no-op
    await log.close();
    const again = await open(dir, { segmentBytes: 4096 });
    expectIntact(await allRecords(again), 0, 150);
    await expect(again.truncateTo(-1)).rejects.toThrow(RangeError);
    await again.close();
  });

  test('truncate to the start empties the log', async () => {
    const log = await open(await tempDir(), { segmentBytes: 4096 });
    await fill(log, 10);
    expect(await log.truncateTo(0)).toBe(0);
    expect(await allRecords(log)).toEqual([]);
    await fill(log, 1);
    expectIntact(await allRecords(log), 0, 10);
    await log.close();
  });
});

describe('appendBatches (the broker path)', () => {
  test('rewrites base offsets, keeps bytes otherwise, optional LogAppendTime', async () => {
    const log = await open(await tempDir());
    await log.append([{ value: 'first' }]);
    const a = encodeBatch([{ value: 'x' }, { value: 'y' }], { baseOffset: 777, now: 5 });
    const b = encodeBatch([{ value: 'z' }], { baseOffset: 0, now: 6 });
    const r = await log.appendBatches(Buffer.concat([a, b]));
    expect(r).toMatchObject({ baseOffset: 1, lastOffset: 3 });
    const recs = await allRecords(log, 1);
    expect(recs.map((x) => [x.offset, x.value!.toString(), x.timestamp])).toEqual([
      [1, 'x', 5],
      [2, 'y', 5],
      [3, 'z', 6],
    ]);
    const stored = (await log.read(1)).bytes;
    // Bytes after the baseOffset field are the producer's own.
    expect(stored.subarray(8, a.length).equals(a.subarray(8))).toBe(true);
    const t = await log.appendBatches(encodeBatch([{ value: 'w', timestamp: 1 }]), { logAppendTime: 424242 });
    expect(t.logAppendTime).toBe(424242);
    expect((await allRecords(log, 4))[0]!.timestamp).toBe(424242);
    await log.close();
  });

  test('refuses a bad CRC, a truncated batch, or trailing garbage, appending nothing', async () => {
    const log = await open(await tempDir());
    const good = encodeBatch([{ value: 'x' }]);
    const badCrc = Buffer.from(good);
    badCrc[badCrc.length - 1] ^= 1;
    await expect(log.appendBatches(badCrc)).rejects.toMatchObject({ code: 'ECORRUPT' });
    await expect(log.appendBatches(good.subarray(0, good.length - 1))).rejects.toMatchObject({ code: 'ECORRUPT' });
    await expect(log.appendBatches(Buffer.concat([good, Buffer.alloc(3)]))).rejects.toMatchObject({ code: 'ECORRUPT', position: good.length });
    expect(log.endOffset).toBe(0);
    await log.close();
  });
});

describe('records()', () => {
  test('follow waits for appends without polling, and ends on close', async () => {
    const log = await open(await tempDir());
    const seen: number[] = [];
    const reader = (async () => {
      for await (const r of log.records(0, { follow: true })) seen.push(r.offset);
    })();
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual([]);
    await log.append([{ value: 'a' }, { value: 'b' }]);
    await log.append([{ value: 'c' }]);
    await until(() => seen.length >= 3);
    expect(seen).toEqual([0, 1, 2]);
    await log.close();
    await reader;
  });

  test('follow stops when its signal aborts', async () => {
    const log = await open(await tempDir());
    const ac = new AbortController();
    const it = log.records(0, { follow: true, signal: ac.signal });
    const next = it.next();
    ac.abort(new Error('stop'));
    await expect(next).rejects.toThrow('stop');
    await log.close();
  });

  test('starting inside a batch skips the records before the offset', async () => {
    const log = await open(await tempDir());
    await fill(log, 2);
    expectIntact(await allRecords(log, 13), 13, 20);
    await log.close();
  });
});

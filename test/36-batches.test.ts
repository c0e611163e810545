import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { crc32c, File } from '../src/native.js';
import { Log, type LogBatch, type LogOptions } from '../src/seglog.js';
import { BATCH_HEADER_SIZE, BATCH_OVERHEAD, encodeBatch, type LogRecord } from '../src/segment/batch.js';
import { tempDir } from './helpers/tmp.js';

const value = (offset: number) => Buffer.from(`value-${offset}-`.padEnd(40, '.'));

/** `count` batches of `perBatch` records; record n's value and key encode n. */
async function filled(count: number, perBatch: number, options?: LogOptions): Promise<Log> {
  const log = await Log.open(await tempDir(), options);
  for (let b = 0; b < count; b++) {
    const base = log.endOffset;
    await log.append(Array.from({ length: perBatch }, (_, i) => ({ key: `k${base + i}`, value: value(base + i), timestamp: 5000 + base + i })));
  }
  return log;
}

function expectRecord(r: LogRecord | undefined, offset: number): void {
  expect(r).toBeDefined();
  expect(r!.offset).toBe(offset);
  expect(r!.timestamp).toBe(5000 + offset);
  expect(r!.key!.toString()).toBe(`k${offset}`);
  expect(r!.value!.equals(value(offset))).toBe(true);
}

describe('Log.batches', () => {
  test('yields each batch with its header and its records from the offset asked for on', async () => {
    const log = await filled(5, 10);
    const got: LogBatch[] = [];
    for await (const b of log.batches(23)) got.push(b);
    expect(got.map((b) => b.header.baseOffset)).toEqual([20, 30, 40]);
    expect(got.map((b) => b.header.recordsCount)).toEqual([10, 10, 10]);
    expect(got[0]!.records.map((r) => r.offset)).toEqual([23, 24, 25, 26, 27, 28, 29]);
    got.flatMap((b) => b.records).forEach((r, i) => expectRecord(r, 23 + i));
    await log.close();
  });

  test('keys and values are views of one read buffer that later reads leave unchanged', async () => {
    const log = await filled(4, 10);
    const held: LogRecord[] = [];
    for await (const b of log.batches(0, { maxBytes: 1 })) held.push(...b.records);
    // Views, not copies: the records of a read share its buffer.
    expect(held[0]!.value!.buffer).toBe(held[9]!.value!.buffer);
    for await (const b of log.batches(0)) b.records.forEach((r) => r.value!.fill(0)); // other reads' buffers
    await log.append([{ value: 'more' }]);
    for await (const r of log.records(0)) void r;
    held.forEach((r, i) => expectRecord(r, i));
    await log.close();
  });

  test('gzip batches decode the same way', async () => {
    const log = await filled(3, 10, { compression: 'gzip' });
    const records = [];
    for await (const b of log.batches(5)) records.push(...b.records);
    records.forEach((r, i) => expectRecord(r, 5 + i));
    expect(records.length).toBe(25);
    await log.close();
  });

  test('bad arguments reject with TypeError/RangeError', async () => {
    const log = await filled(1, 1);
    await expect(log.batches(-1).next()).rejects.toThrow(RangeError);
    await expect(log.batches('0' as never).next()).rejects.toThrow(TypeError);
    await expect(log.batches(0, { follow: 1 as never }).next()).rejects.toThrow(TypeError);
    await expect(log.batches(0, { maxBytes: 0 }).next()).rejects.toThrow(RangeError);
    await expect(log.batches(0, { signal: {} as never }).next()).rejects.toThrow(TypeError);
    await expect(log.records(0, null as never).next()).rejects.toThrow(TypeError);
    await log.close();
  });

  test('follow waits for appends and ends when the signal aborts', async () => {
    const log = await filled(1, 2);
    const abort = new AbortController();
    const seen: number[] = [];
    const done = (async () => {
      for await (const b of log.batches(0, { follow: true, signal: abort.signal })) {
        seen.push(...b.records.map((r) => r.offset));
        if (seen.length === 5) abort.abort(new Error('enough'));
      }
    })();
    await log.append([{ value: 'a' }, { value: 'b' }, { value: 'c' }]);
    await expect(done).rejects.toThrow('enough');
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    await log.close();
  });
});

describe('Log.records over batches', () => {
  test('every record in order; calls to next() without awaiting keep their order', async () => {
    const log = await filled(3, 7);
    const it = log.records(2, { maxBytes: 1 });
    const results = await Promise.all(Array.from({ length: 21 }, () => it.next()));
    expect(results.slice(0, 19).map((r) => r.value!.offset)).toEqual(Array.from({ length: 19 }, (_, i) => 2 + i));
    expect(results.slice(19).every((r) => r.done === true)).toBe(true);
    await log.close();
  });

  test('breaking out of the loop ends the iteration; return() and throw() finish it', async () => {
    const log = await filled(3, 5);
    for await (const r of log.records(0)) if (r.offset === 7) break;
    const it = log.records(0);
    expect((await it.next()).value!.offset).toBe(0);
    expect(await it.return(undefined)).toEqual({ done: true, value: undefined });
    expect((await it.next()).done).toBe(true);
    const it2 = log.records(0);
    await it2.next();
    await expect(it2.throw(new Error('stop'))).rejects.toThrow('stop');
    expect((await it2.next()).done).toBe(true);
    await log.close();
  });

  test('return() called while a read is under way ends the iteration: later next() calls are done', async () => {
    const log = await filled(3, 5);
    const it = log.records(0);
    const first = it.next(); // its read is under way
    const ended = it.return(undefined);
    await first;
    expect(await ended).toEqual({ done: true, value: undefined });
    expect(await it.next()).toEqual({ done: true, value: undefined });
    await log.close();
  });
});

describe('records of a batch that does not decode', () => {
  /** Two records at offsets 0 and 1 under a valid CRC; the second's value length runs past it. */
  function damagedBatch(): Buffer {
    const records = [0x0e, 0x00, 0x00, 0x00, 0x01, 0x02, 0x61, 0x00, 0x0e, 0x00, 0x00, 0x02, 0x01, 0x06, 0x61, 0x00];
    const b = Buffer.concat([encodeBatch([{ value: 'x' }]).subarray(0, BATCH_HEADER_SIZE), Buffer.from(records)]);
    b.writeInt32BE(b.length - BATCH_OVERHEAD, 8);
    b.writeInt32BE(1, 23); // lastOffsetDelta
    b.writeInt32BE(2, 57); // recordsCount
    b.writeUInt32BE(crc32c(b.subarray(21)), 17);
    return b;
  }

  test('records() hands out the records before the damage, then rejects with ECORRUPT and ends', async () => {
    const log = await filled(2, 3);
    await log.appendBatches(damagedBatch());
    await log.append([{ value: 'after' }]);
    const it = log.records(0);
    const offsets: number[] = [];
    const failed = await (async () => {
      for (;;) {
        const r = await it.next();
        if (r.done === true) return undefined;
        offsets.push(r.value.offset);
      }
    })().catch((err: unknown) => err);
    expect(failed).toMatchObject({ code: 'ECORRUPT' });
    expect(offsets).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect((await it.next()).done).toBe(true);
    // batches() hands out whole batches: the damaged one is refused whole.
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const b of log.batches(0)) seen.push(...b.records.map((r) => r.offset));
      })(),
    ).rejects.toMatchObject({ code: 'ECORRUPT' });
    expect(seen).toEqual([0, 1, 2, 3, 4, 5]);
    await log.close();
  });
});

describe('Log.readRecord', () => {
  test('returns the record at each offset, across batches and segments', async () => {
    const log = await filled(6, 10, { segmentBytes: 2000 });
    expect(log.segmentCount).toBeGreaterThan(1);
    for (const offset of [0, 1, 9, 10, 35, 59, 42, 17]) expectRecord(await log.readRecord(offset), offset);
    await log.close();
  });

  test('undefined below the start, at and past the end', async () => {
    const log = await filled(4, 10, { segmentBytes: 2000 });
    await log.deleteRecordsBefore(15);
    expect(await log.readRecord(14)).toBeUndefined();
    expect(await log.readRecord(0)).toBeUndefined();
    expectRecord(await log.readRecord(15), 15);
    expect(await log.readRecord(40)).toBeUndefined();
    expect(await log.readRecord(1000)).toBeUndefined();
    await log.close();
  });

  test('gzip batches and own cache mode', async () => {
    const gz = await filled(3, 10, { compression: 'gzip' });
    for (const offset of [0, 13, 29]) expectRecord(await gz.readRecord(offset), offset);
    await gz.close();
    const own = await filled(3, 10, { cache: { mode: 'own', tailBytes: 64 * 1024, readAheadBytes: 8192 } });
    for (const offset of [0, 13, 29]) expectRecord(await own.readRecord(offset), offset);
    await own.close();
  });

  test('bad arguments reject with TypeError/RangeError; a closed log with ECLOSED', async () => {
    const log = await filled(1, 3);
    await expect(log.readRecord(-1)).rejects.toThrow(RangeError);
    await expect(log.readRecord(1.5)).rejects.toThrow(RangeError);
    await expect(log.readRecord('1' as never)).rejects.toThrow(TypeError);
    await log.close();
    await expect(log.readRecord(0)).rejects.toMatchObject({ code: 'ECLOSED' });
  });
});

describe('Log.offsetForTimestamp without decoding batches', () => {
  test('the first offset at or after a timestamp, inside batches and across segments', async () => {
    const log = await filled(6, 10, { segmentBytes: 2000 });
    for (const offset of [0, 1, 9, 10, 37, 59]) expect(await log.offsetForTimestamp(5000 + offset)).toBe(offset);
    expect(await log.offsetForTimestamp(0)).toBe(0);
    expect(await log.offsetForTimestamp(5060)).toBeUndefined();
    const gz = await filled(2, 10, { compression: 'gzip' });
    expect(await gz.offsetForTimestamp(5013)).toBe(13);
    await Promise.all([log.close(), gz.close()]);
  });

  test('a point read keeps its record when later reads reuse the batch buffer', async () => {
    const log = await filled(3, 10);
    const first = await log.readRecord(3);
    await Promise.all([log.readRecord(25), log.readRecord(14), log.offsetForTimestamp(5020)]);
    expectRecord(first, 3);
    await log.close();
  });
});

test('reads of a log whose pages were evicted from the page cache return the right records', async () => {
  const log = await filled(20, 50, { segmentBytes: 20_000 });
  const dir = log.dir;
  await log.close();
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.log'))) {
    const f = await File.open(join(dir, name));
    await f.datasync();
    await f.advise(0, 0, 'dontneed');
    await f.close();
  }
  const reopened = await Log.open(dir);
  expectRecord(await reopened.readRecord(777), 777);
  let n = 0;
  for await (const r of reopened.records(0)) expectRecord(r, n++);
  expect(n).toBe(1000);
  await reopened.close();
});

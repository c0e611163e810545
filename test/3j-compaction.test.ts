// Log compaction (issue #17): the options of a compacted log, its refusal of
// records without a key, and one cleaning pass (log.compact()) held to an
// in-memory model record by record: the latest record of each key at its
// offset, nothing else below the cleaned point, batches valid to an
// independent Kafka v2 decoder, point and time lookups, reopening.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Log, type LogBatch, type LogOptions } from '../src/log/log.js';
import { encodeBatch } from '../src/segment/batch.js';
import { encodeControlBatch } from '../src/segment/control-record.js';
import { cleanedPoint, latestByKey, readAll, T0, workload, type ReadRecord } from './helpers/compaction.js';
import { decodeFromSpec } from './helpers/kafka-decode.js';
import { tempDir } from './helpers/tmp.js';

const COMPACT: LogOptions = { cleanupPolicy: 'compact' };

describe('compaction options', () => {
  test.each<[string, LogOptions, ErrorConstructor]>([
    ['an unknown cleanupPolicy', { cleanupPolicy: 'compact, delete' as never }, RangeError],
    ['a cleanupPolicy that is not a string', { cleanupPolicy: 1 as never }, TypeError],
    ['a dirty ratio above 1', { minCleanableDirtyRatio: 1.5 }, RangeError],
    ['a dirty ratio below 0', { minCleanableDirtyRatio: -0.1 }, RangeError],
    ['a dirty ratio that is not a number', { minCleanableDirtyRatio: '0.5' as never }, TypeError],
    ['a negative minCompactionLagMs', { minCompactionLagMs: -1 }, RangeError],
    ['a fractional maxCompactionLagMs', { maxCompactionLagMs: 1.5 }, RangeError],
    ['a zero maxCompactionLagMs', { maxCompactionLagMs: 0 }, RangeError],
    ['a negative deleteRetentionMs', { deleteRetentionMs: -5 }, RangeError],
  ])('%s is refused before anything is made', async (_what, options, type) => {
    await expect(Log.open(await tempDir(), options)).rejects.toThrow(type);
  });

  test('every policy, ratio bounds and an infinite maxCompactionLagMs open', async () => {
    for (const options of [
      { cleanupPolicy: 'delete' },
      { cleanupPolicy: 'compact', minCleanableDirtyRatio: 0, maxCompactionLagMs: Infinity },
      { cleanupPolicy: 'compact,delete', minCleanableDirtyRatio: 1, minCompactionLagMs: 0, deleteRetentionMs: 0 },
    ] as LogOptions[]) {
      const log = await Log.open(await tempDir(), options);
      await log.close();
    }
  });
});

describe('a compacted log refuses records without a key (EINVALIDRECORD), writing nothing', () => {
  test.each(['compact', 'compact,delete'] as const)("append() under '%s'", async (cleanupPolicy) => {
    const log = await Log.open(await tempDir(), { cleanupPolicy });
    await log.append([{ key: 'a', value: '1' }]);
    for (const key of [undefined, null]) {
      await expect(log.append([{ key: 'b', value: '2' }, { key, value: '3' }])).rejects.toMatchObject({ code: 'EINVALIDRECORD' });
    }
    expect(log.endOffset).toBe(1);
    await log.append([{ key: 'c', value: null }]);
    expect(log.endOffset).toBe(2);
    await log.close();
  });

  test('appendBatches(): a keyless record anywhere in the buffer, compressed or not, refuses all of it', async () => {
    const log = await Log.open(await tempDir(), COMPACT);
    const good = encodeBatch([{ key: 'a', value: '1' }]);
    for (const compression of ['none', 'gzip']) {
      const bad = encodeBatch([{ key: 'k', value: '1' }, { value: '2' }], { compression });
      await expect(log.appendBatches(Buffer.concat([good, bad]))).rejects.toMatchObject({ code: 'EINVALIDRECORD' });
    }
    expect(log.endOffset).toBe(0);
    await log.appendBatches(Buffer.concat([good, encodeBatch([{ key: 'b', value: null }], { compression: 'gzip' })]));
    expect(log.endOffset).toBe(2);
    await log.close();
  });

  test("a replica's batches and transaction markers are not held to it; a 'delete' log takes keyless records", async () => {
    const log = await Log.open(await tempDir(), COMPACT);
    await log.appendBatches(encodeBatch([{ value: 'from the leader' }]), { origin: 'replication' });
    const marker = encodeControlBatch({ producerId: 7, producerEpoch: 0, type: 'commit', coordinatorEpoch: 0, timestamp: 1 }, (n) => Buffer.alloc(n));
    await log.appendBatches(marker);
    expect(log.endOffset).toBe(2);
    await log.close();
    const plain = await Log.open(await tempDir());
    await plain.append([{ value: 'x' }]);
    await plain.appendBatches(encodeBatch([{ value: 'y' }]));
    expect(plain.endOffset).toBe(2);
    await plain.close();
  });
});

/** The batches of the whole log as stored, each decoded by the independent decoder. */
async function specBatches(log: Log): Promise<ReturnType<typeof decodeFromSpec>[]> {
  const { bytes } = await log.read(log.startOffset, { maxBytes: 1 << 30 });
  const out: ReturnType<typeof decodeFromSpec>[] = [];
  for (let p = 0; p < bytes.length; ) {
    const size = bytes.readInt32BE(p + 8) + 12;
    out.push(decodeFromSpec(bytes.subarray(p, p + size)));
    p += size;
  }
  return out;
}

/** Reopens the log in `dir` (after a clean close, and again with the clean-shutdown marker gone: a full recovery scan) and checks it reads `expected`. */
async function reopenReads(dir: string, options: LogOptions, expected: ReadRecord[]): Promise<void> {
  for (const unclean of [false, true]) {
    if (unclean) await rm(join(dir, '.clean-shutdown'), { force: true });
    const log = await Log.open(dir, options);
    expect(await readAll(log)).toEqual(expected);
    await log.close();
  }
}

describe('log.compact(): one pass', () => {
  test.each([1, 2, 3])('seed %i: below the cleaned point only the latest record of each key stays, at its offset, in valid batches; reads, lookups and reopening agree', async (seed) => {
    const dir = await tempDir();
    const options: LogOptions = { cleanupPolicy: 'compact', segmentBytes: 2048 };
    const log = await Log.open(dir, options);
    const written = await workload(log, seed, 300, 20);
    const byOffset = new Map(written.map((w) => [w.offset, w]));
    const sizeBefore = log.size;
    expect(latestByKey(await readAll(log, 'committed'))).toEqual(latestByKey(written));

    const result = await log.compact({ now: T0 });
    const point = await cleanedPoint(dir);
    expect(log.segmentCount).toBeGreaterThan(1);
    expect(point).toBeGreaterThan(0);
    const all = await readAll(log);
    // The committed view of every key is what it was.
    expect(latestByKey(await readAll(log, 'committed'))).toEqual(latestByKey(written));
    // Nothing made up: each data record read is the one written at that offset.
    for (const r of all.filter((r) => !r.control)) expect([r.key, r.value]).toEqual([byOffset.get(r.offset)!.key, byOffset.get(r.offset)!.value]);
    // Below the point: exactly the latest record of each key there (none aborted).
    const below = written.filter((w) => w.offset < point);
    const latestBelow = latestByKey(below);
    const keptBelow = all.filter((r) => r.offset < point && !r.control);
    expect(new Map(keptBelow.map((r) => [r.key!, [r.offset, r.value]]))).toEqual(latestBelow);
    expect(keptBelow.length).toBe(latestBelow.size);
    // Offsets only go up; the pass counted what went (markers stay on a first pass: their horizon starts now).
    expect(all.map((r) => r.offset)).toEqual([...all.map((r) => r.offset)].sort((a, b) => a - b));
    expect(result.recordsRemoved).toBe(below.length - keptBelow.length);
    expect(result.tombstonesRemoved).toBe(below.filter((w) => w.value === null && !w.aborted).length - keptBelow.filter((r) => r.value === null).length);
    expect(result.bytesBefore - result.bytesAfter).toBe(sizeBefore - log.size);
    expect(result.segmentsCleaned).toBeGreaterThan(0);

    // Valid v2 batches to a decoder that shares nothing with src/, holding the same records.
    const decoded = (await specBatches(log)).flatMap((b) => b.records.map((r) => [Number(r.offset), r.key, r.value, Number(r.timestamp)]));
    expect(decoded).toEqual(all.map((r) => [r.offset, r.key, r.value, r.timestamp]));

    // Point reads: survivors as they are, removed offsets hold nothing.
    const kept = new Set(all.map((r) => r.offset));
    for (const r of all) expect((await log.readRecord(r.offset))?.value?.toString() ?? null).toBe(r.value);
    for (const w of below.filter((w) => !kept.has(w.offset)).slice(0, 40)) expect(await log.readRecord(w.offset)).toBeUndefined();
    // Time lookups: the first surviving record at or after a time (timestamps grow with offsets here).
    for (let t = T0; t < T0 + log.endOffset; t += 7) expect(await log.offsetForTimestamp(t)).toBe(all.find((r) => r.timestamp >= t)?.offset);

    await log.close();
    await reopenReads(dir, options, all);
  });

  test('tombstones stay until deleteRetentionMs after the pass that first cleaned them (a KIP-534 horizon in their batch), then go', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { cleanupPolicy: 'compact', deleteRetentionMs: 1000 });
    const t = T0 + 50_000;
    for (const [key, value] of [['a', '1'], ['b', '1'], ['a', null], ['c', '1']] as const) await log.append([{ key, value, timestamp: T0 }]);
    await log.roll();
    expect(await log.compact({ now: t })).toMatchObject({ recordsRemoved: 1, tombstonesRemoved: 0 });
    const batches = await specBatches(log);
    const tomb = batches.find((b) => b.records.some((r) => r.value === null))!;
    expect(tomb.attributes & 0x40).toBe(0x40);
    expect(Number(tomb.baseTimestamp)).toBe(t + 1000);
    // Its record keeps its own time.
    expect(tomb.records.map((r) => Number(r.timestamp))).toEqual([T0]);
    expect(Number(tomb.baseOffset)).toBe(2);

    // A later pass before the horizon keeps it; one at the horizon removes it.
    for (const [now, gone] of [[t + 999, false], [t + 1000, true]] as const) {
      await log.append([{ key: `x${now}`, value: '1' }]);
      await log.roll();
      const r = await log.compact({ now });
      expect(r.tombstonesRemoved).toBe(gone ? 1 : 0);
      expect((await readAll(log)).some((rec) => rec.key === 'a')).toBe(!gone);
    }
    expect((await readAll(log)).map((r) => r.key)).toEqual(['b', 'c', `x${t + 999}`, `x${t + 1000}`]);
    await log.close();
  });

  test('aborted records go at once; markers stay until their transaction has no record left and deleteRetentionMs passed; .txnindex follows', async () => {
    const dir = await tempDir();
    const options: LogOptions = { cleanupPolicy: 'compact', deleteRetentionMs: 1000 };
    const log = await Log.open(dir, options);
    // Timestamped now: a producer idle past producerIdExpirationMs is forgotten, and with it the need to keep its last batch.
    const txn = (pid: number, key: string) => encodeBatch([{ key, value: 'in-txn' }], { producerId: pid, producerEpoch: 0, baseSequence: 0, transactional: true });
    await log.appendBatches(txn(5, 'x'));
    await log.appendControl({ producerId: 5, producerEpoch: 0, type: 'abort', coordinatorEpoch: 0 });
    await log.appendBatches(txn(6, 'y'));
    await log.appendControl({ producerId: 6, producerEpoch: 0, type: 'commit', coordinatorEpoch: 0 });
    await log.appendBatches(txn(8, 'z'));
    await log.appendControl({ producerId: 8, producerEpoch: 0, type: 'commit', coordinatorEpoch: 0 });
    await log.append([{ key: 'y', value: 'later', timestamp: T0 }]);
    await log.roll();
    expect(log.abortedTransactions(0, log.endOffset)).toEqual([{ producerId: 5, firstOffset: 0, lastOffset: 1 }]);

    const first = await log.compact({ now: T0 });
    expect(first.recordsRemoved).toBe(2); // x (aborted) and y's first value
    const view = await readAll(log);
    expect(view.filter((r) => !r.control).map((r) => [r.offset, r.key, r.value])).toEqual([
      [4, 'z', 'in-txn'],
      [6, 'y', 'later'],
    ]);
    // All three markers stay for now; the abort is still listed for read_committed fetches.
    expect(view.filter((r) => r.control).map((r) => r.offset)).toEqual([1, 3, 5]);
    expect(log.abortedTransactions(0, log.endOffset)).toEqual([{ producerId: 5, firstOffset: 0, lastOffset: 1 }]);
    // The producers' last batches keep their headers (producer state is rebuilt from them), empty.
    const headers = await specBatches(log);
    expect(headers.filter((b) => b.records.length === 0).map((b) => [Number(b.producerId), Number(b.baseOffset), b.baseSequence])).toEqual([
      [5, 0, 0],
      [6, 2, 0],
    ]);

    await log.append([{ key: 'w', value: '1' }]);
    await log.roll();
    const second = await log.compact({ now: T0 + 1000 });
    // The markers of the emptied transactions go (5's abort, 6's commit); 8's transaction still has z.
    expect(second.recordsRemoved).toBe(2);
    expect((await readAll(log)).filter((r) => r.control).map((r) => r.offset)).toEqual([5]);
    expect(log.abortedTransactions(0, log.endOffset)).toEqual([]);
    const expected = await readAll(log);
    await log.close();
    await reopenReads(dir, options, expected);
    const again = await Log.open(dir, options);
    expect(again.abortedTransactions(0, again.endOffset)).toEqual([]);
    await again.close();
  });

  test('compressed batches are recompressed with their codec; producer fields are kept', async () => {
    const log = await Log.open(await tempDir(), { cleanupPolicy: 'compact' });
    const records = [
      { key: 'a', value: '1' },
      { key: 'b', value: '1' },
      { key: 'a', value: '2' },
    ];
    await log.appendBatches(encodeBatch(records, { compression: 'gzip', producerId: 9, producerEpoch: 3, baseSequence: 0, now: T0 }));
    await log.appendBatches(encodeBatch([{ key: 'b', value: '2' }], { producerId: 9, producerEpoch: 3, baseSequence: 3, now: T0 }));
    await log.append([{ key: 'c', value: '1' }]);
    await log.roll();
    await log.compact({ now: T0 });
    const [gz, plain] = await specBatches(log);
    expect(gz!.attributes & 7).toBe(1);
    expect([Number(gz!.producerId), gz!.producerEpoch, gz!.baseSequence, gz!.lastOffsetDelta]).toEqual([9, 3, 0, 2]);
    expect(gz!.records.map((r) => [Number(r.offset), r.key, r.value])).toEqual([[2, 'a', '2']]);
    expect([Number(plain!.baseOffset), plain!.baseSequence]).toEqual([3, 3]);
    await log.close();
  });

  test('small cleaned segments are grouped into one, within segmentBytes', async () => {
    const dir = await tempDir();
    const options: LogOptions = { cleanupPolicy: 'compact', segmentBytes: 1024 };
    const log = await Log.open(dir, options);
    for (let i = 0; i < 120; i++) await log.append([{ key: `k${i % 4}`, value: `v${i}` }]);
    const segments = log.segmentCount;
    await log.compact();
    // Kafka groups by the sources' sizes: full segments are cleaned one by one, then grouped once small.
    expect(log.segmentCount).toBe(segments);
    await log.append([{ key: 'k0', value: 'last' }]);
    await log.roll();
    const view = latestByKey(await readAll(log));
    const r = await log.compact();
    expect(log.segmentCount).toBeLessThan(segments / 2);
    expect(r.segmentsCleaned).toBe(segments);
    expect(latestByKey(await readAll(log))).toEqual(view);
    const expected = await readAll(log);
    await log.close();
    await reopenReads(dir, options, expected);
  });

  test('a pass cleans as far as its key map holds (cleanerMemoryBytes); cleaner-offset-checkpoint records how far; a map too small for one segment is EINVAL', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { cleanupPolicy: 'compact' });
    // Three segments of 30 distinct keys each; a 1 KiB map holds 37 keys.
    const bases: number[] = [];
    for (let s = 0; s < 3; s++) {
      bases.push(log.endOffset);
      for (let k = 0; k < 30; k++) await log.append([{ key: `s${s}k${k}`, value: 'old' }]);
      await log.roll();
    }
    const end = log.endOffset;
    const view = await readAll(log);
    expect(await log.compact({ cleanerMemoryBytes: 1024 })).toMatchObject({ segmentsCleaned: 1, recordsRemoved: 0 });
    expect(await cleanedPoint(dir)).toBe(bases[1]);
    // Each pass rewrites the log from its start (the first two segments are one after this one).
    expect(await log.compact({ cleanerMemoryBytes: 1024 })).toMatchObject({ segmentsCleaned: 2 });
    expect(await cleanedPoint(dir)).toBe(bases[2]);
    expect(log.segmentCount).toBe(3);
    expect(await log.compact({ cleanerMemoryBytes: 1024 })).toMatchObject({ segmentsCleaned: 2 });
    expect(await cleanedPoint(dir)).toBe(end);
    expect(await readAll(log)).toEqual(view);
    for (let k = 0; k < 40; k++) await log.append([{ key: `big${k}`, value: '1' }]);
    await log.roll();
    await expect(log.compact({ cleanerMemoryBytes: 1024 })).rejects.toMatchObject({ code: 'EINVAL' });
    await log.compact({ cleanerMemoryBytes: 2048 });
    expect(await cleanedPoint(dir)).toBe(log.endOffset);
    await log.close();
  });

  test('nothing at or past the active segment, the last stable offset, or younger than minCompactionLagMs is cleaned', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { cleanupPolicy: 'compact', minCompactionLagMs: 60_000 });
    for (let i = 0; i < 4; i++) await log.append([{ key: 'k', value: `${i}`, timestamp: T0 }]);
    await log.roll();
    for (let i = 4; i < 8; i++) await log.append([{ key: 'k', value: `${i}`, timestamp: T0 + 60_000 }]);
    await log.roll();
    // At T0 + 60000 the second segment is too young: the first is cleaned against the map of itself alone.
    expect(await log.compact({ now: T0 + 60_000 })).toMatchObject({ segmentsCleaned: 1, recordsRemoved: 3 });
    expect((await readAll(log)).map((r) => r.value)).toEqual(['3', '4', '5', '6', '7']);
    // An open transaction holds the last stable offset back: its segment and the ones after stay.
    await log.appendBatches(encodeBatch([{ key: 'k', value: 'txn' }], { producerId: 1, producerEpoch: 0, baseSequence: 0, transactional: true, now: T0 }));
    await log.roll();
    await log.append([{ key: 'k', value: '9', timestamp: T0 }]);
    await log.roll();
    expect(await log.compact({ now: T0 + 10 ** 9 })).toMatchObject({ recordsRemoved: 4 });
    expect((await readAll(log)).map((r) => r.value)).toEqual(['7', 'txn', '9']);
    await log.close();
    const plain = await Log.open(await tempDir());
    await expect(plain.compact()).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(plain.compact({ cleanerMemoryBytes: 1 } as never)).rejects.toThrow(RangeError);
    await plain.close();
  });

  test('a read under way during a pass sees whole valid batches, before or after cleaning', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { cleanupPolicy: 'compact', segmentBytes: 1024 });
    const written = await workload(log, 9, 150, 10);
    const it = log.batches(0, { maxBytes: 200 });
    const byOffset = new Map(written.map((w) => [w.offset, w]));
    const seen: number[] = [];
    const take = (b: LogBatch) => {
      for (const r of b.records) {
        seen.push(r.offset);
        if (!b.header.control) expect(r.value?.toString() ?? null).toBe(byOffset.get(r.offset)!.value);
      }
    };
    take((await it.next()).value as LogBatch);
    await log.compact({ now: T0 });
    for await (const b of it) take(b);
    expect(seen).toEqual([...new Set(seen)].sort((a, b) => a - b));
    expect(seen.at(-1)).toBe(log.endOffset - 1);
    await log.close();
  });
});

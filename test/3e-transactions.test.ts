// Transactions (issue #15 item 3): transactional batches open a producer's
// transaction, COMMIT/ABORT markers (appendControl, or control batches in
// appendBatches) close it; aborted transactions go to the segment's
// .txnindex in Kafka's layout (checked against bytes built here), rebuilt on
// recovery, trimmed by truncateTo, gone with their segment; the first
// unstable offset follows the earliest open transaction.
import { readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CLEAN_SHUTDOWN_FILE, segmentFileName, snapshotOffsets, snapshotFileName } from '../src/layout.js';
import { Log, type LogOptions } from '../src/log/log.js';
import { ProducerStates, type TxnEvent } from '../src/log/producer-state.js';
import { encodeBatch } from '../src/segment/batch.js';
import { txnIndexBytes } from './helpers/kafka-bytes.js';
import { tempDir } from './helpers/tmp.js';

/** A transactional batch of `count` records of producer `pid` from sequence `seq`. */
function txnBatch(pid: number, seq: number, count = 2, epoch = 0): Buffer {
  return encodeBatch(
    Array.from({ length: count }, (_, i) => ({ value: `p${pid}-${seq + i}` })),
    { producerId: pid, producerEpoch: epoch, baseSequence: seq, transactional: true },
  );
}

/** A control batch built field by field as Kafka writes a marker (key: version, type; value: version, coordinatorEpoch). */
function markerBatch(pid: number, o: { epoch?: number; key?: Buffer; value?: Buffer; transactional?: boolean; records?: number } = {}): Buffer {
  const key = o.key ?? Buffer.from([0, 0, 0, 0]);
  const value = o.value ?? Buffer.from([0, 0, 0, 0, 0, 7]);
  const records = Array.from({ length: o.records ?? 1 }, () => ({ key, value }));
  return encodeBatch(records, { producerId: pid, producerEpoch: o.epoch ?? 0, baseSequence: -1, transactional: o.transactional ?? true, control: true });
}

async function open(options?: LogOptions): Promise<{ log: Log; dir: string }> {
  const dir = await tempDir();
  return { log: await Log.open(dir, options), dir };
}

const txnIndexOf = (dir: string, base: number) => join(dir, segmentFileName(base, 'txnindex'));

describe('markers', () => {
  test("appendControl writes Kafka's control batch: attributes bits 4 and 5, one record, key version+type, value version+coordinatorEpoch", async () => {
    const { log } = await open();
    await log.appendBatches(txnBatch(9, 0));
    const r = await log.appendControl({ producerId: 9, producerEpoch: 0, type: 'commit', coordinatorEpoch: 513, timestamp: 1234 });
    expect(r).toMatchObject({ baseOffset: 2, lastOffset: 2, duplicate: false });
    const { bytes: data } = await log.read(2);
    expect(data.readInt16BE(21) & 0x30).toBe(0x30);
    expect([Number(data.readBigInt64BE(43)), data.readInt16BE(51), data.readInt32BE(53), data.readInt32BE(57)]).toEqual([9, 0, -1, 1]);
    expect(Number(data.readBigInt64BE(27))).toBe(1234);
    // The one record: length 16 (zigzag 32), attributes, timestampDelta, offsetDelta, keyLength 4 (zigzag 8), key, valueLength 6 (12), value, 0 headers.
    expect([...data.subarray(61)]).toEqual([0x20, 0, 0, 0, 8, 0, 0, 0, 1, 12, 0, 0, 0, 0, 0x02, 0x01, 0]);
    expect(log.firstUnstableOffset()).toBeUndefined();
    await log.close();
  });

  test('malformed control batches are refused ECORRUPT, nothing written', async () => {
    const { log } = await open();
    await log.appendBatches(txnBatch(1, 0));
    const bad = [
      markerBatch(1, { key: Buffer.from([0, 0, 0, 5]) }), // unknown type
      markerBatch(1, { key: Buffer.from([0, 1, 0, 0]) }), // key version 1
      markerBatch(1, { key: Buffer.from([0, 0, 0]) }), // short key
      markerBatch(1, { value: Buffer.from([0, 0, 0, 0]) }), // short value
      markerBatch(1, { transactional: false }),
      markerBatch(1, { records: 2 }),
    ];
    for (const b of bad) await expect(log.appendBatches(b)).rejects.toMatchObject({ code: 'ECORRUPT' });
    expect([log.endOffset, log.firstUnstableOffset()]).toEqual([2, 0]);
    // A good one in appendBatches closes the transaction as appendControl would.
    await log.appendBatches(markerBatch(1));
    expect([log.endOffset, log.firstUnstableOffset()]).toEqual([3, undefined]);
    expect(log.abortedTransactions(0, 10)).toEqual([{ producerId: 1, firstOffset: 0, lastOffset: 2 }]);
    await log.close();
  });

  test('a marker of a producer with no open transaction is written and changes nothing; an older epoch is fenced', async () => {
    const { log, dir } = await open();
    await log.appendControl({ producerId: 5, producerEpoch: 2, type: 'abort', coordinatorEpoch: 1 });
    expect(log.endOffset).toBe(1);
    expect([log.firstUnstableOffset(), log.abortedTransactions(0, 10)]).toEqual([undefined, []]);
    await expect(log.appendControl({ producerId: 5, producerEpoch: 1, type: 'commit', coordinatorEpoch: 1 })).rejects.toMatchObject({ code: 'EPRODUCERFENCED' });
    expect((await readdir(dir)).some((n) => n.endsWith('.txnindex'))).toBe(false);
    await log.close();
  });

  test('appendControl checks its arguments before anything is queued', async () => {
    const { log } = await open();
    const ok = { producerId: 1, producerEpoch: 0, type: 'commit', coordinatorEpoch: 0 } as const;
    await expect(log.appendControl({ ...ok, type: 'maybe' as 'commit' })).rejects.toThrow(RangeError);
    await expect(log.appendControl({ ...ok, producerId: -1 })).rejects.toThrow(RangeError);
    await expect(log.appendControl({ ...ok, producerEpoch: 40000 })).rejects.toThrow(RangeError);
    await expect(log.appendControl(undefined as never)).rejects.toThrow(TypeError);
    expect(log.endOffset).toBe(0);
    await log.close();
  });
});

describe('a follower', () => {
  test("copies its leader's markers with origin 'replication': recorded (aborts indexed), epochs not checked", async () => {
    const { log, dir } = await open();
    await log.appendBatches(txnBatch(4, 0, 2, 3), { origin: 'replication' });
    expect(log.firstUnstableOffset()).toBe(0);
    // The leader's marker carries an older epoch than the data here: a follower takes it as written.
    await log.appendBatches(markerBatch(4, { epoch: 2 }), { origin: 'replication' });
    expect([log.endOffset, log.firstUnstableOffset()]).toEqual([3, undefined]);
    expect(await readFile(txnIndexOf(dir, 0))).toEqual(txnIndexBytes([[4, 0, 2, 3]]));
    await log.close();
  });

  test('maxProducerIds never forgets a producer whose transaction is open', async () => {
    const { log } = await open({ maxProducerIds: 2 });
    await log.appendBatches(txnBatch(1, 0));
    for (const pid of [2, 3, 4]) await log.appendBatches(encodeBatch([{ value: 'x' }], { producerId: pid, producerEpoch: 0, baseSequence: 0 }));
    expect(log.producerState().map((p) => p.producerId)).toEqual([1, 4]);
    expect(log.firstUnstableOffset()).toBe(0);
    await log.close();
  });
});

describe('interleaved transactions', () => {
  /** Three producers: 1 commits, 2 aborts, 3 aborts while 1's second transaction is open. Returns the log's txnindex expectation. */
  async function interleave(log: Log): Promise<Array<[number, number, number, number]>> {
    await log.appendBatches(txnBatch(1, 0)); // 0-1, txn of 1 opens at 0
    await log.appendBatches(txnBatch(2, 0)); // 2-3, txn of 2 at 2
    expect(log.firstUnstableOffset()).toBe(0);
    await log.appendBatches(txnBatch(1, 2)); // 4-5
    await log.appendControl({ producerId: 1, producerEpoch: 0, type: 'commit', coordinatorEpoch: 1 }); // 6
    expect(log.firstUnstableOffset()).toBe(2);
    await log.appendBatches(txnBatch(3, 0)); // 7-8, txn of 3 at 7
    await log.appendControl({ producerId: 2, producerEpoch: 0, type: 'abort', coordinatorEpoch: 1 }); // 9: LSO then 7 (3's txn)
    expect(log.firstUnstableOffset()).toBe(7);
    await log.appendBatches(txnBatch(1, 4)); // 10-11, 1's second txn at 10
    await log.appendControl({ producerId: 3, producerEpoch: 0, type: 'abort', coordinatorEpoch: 1 }); // 12: LSO then 10
    expect(log.firstUnstableOffset()).toBe(10);
    await log.appendControl({ producerId: 1, producerEpoch: 0, type: 'abort', coordinatorEpoch: 1 }); // 13: none open, LSO 14
    expect(log.firstUnstableOffset()).toBeUndefined();
    return [
      [2, 2, 9, 7],
      [3, 7, 12, 10],
      [1, 10, 13, 14],
    ];
  }

  test('the first unstable offset follows the earliest open transaction; aborts go to .txnindex in Kafka\'s layout', async () => {
    const { log, dir } = await open();
    const expected = await interleave(log);
    expect(await readFile(txnIndexOf(dir, 0))).toEqual(txnIndexBytes(expected));
    expect(log.abortedTransactions(0, 14)).toEqual(expected.map(([producerId, firstOffset, lastOffset]) => ({ producerId, firstOffset, lastOffset })));
    // Ranges: a fetch of [3, 8) overlaps 2's and 3's aborted data; one of [11, 12) only 1's second transaction... and 3's (its marker is at 12, its data from 7).
    expect(log.abortedTransactions(3, 8).map((t) => t.producerId)).toEqual([2, 3]);
    expect(log.abortedTransactions(11, 12).map((t) => t.producerId)).toEqual([3, 1]);
    expect(log.abortedTransactions(0, 2).map((t) => t.producerId)).toEqual([]);
    await log.close();
  });

  test('a marker in a later segment than its data: the entry is in the marker\'s segment and found from the data\'s', async () => {
    const { log, dir } = await open({ segmentBytes: 1024 });
    await log.appendBatches(txnBatch(1, 0, 2)); // 0-1
    await log.roll();
    await log.appendBatches(encodeBatch([{ value: 'plain' }])); // 2
    await log.roll();
    await log.appendControl({ producerId: 1, producerEpoch: 0, type: 'abort', coordinatorEpoch: 0 }); // 3
    expect(await readFile(txnIndexOf(dir, 3))).toEqual(txnIndexBytes([[1, 0, 3, 4]]));
    expect((await readdir(dir)).filter((n) => n.endsWith('.txnindex'))).toEqual([segmentFileName(3, 'txnindex')]);
    expect(log.abortedTransactions(0, 1)).toEqual([{ producerId: 1, firstOffset: 0, lastOffset: 3 }]);
    await log.close();
  });

  test('rebuilt on recovery: a lost or damaged .txnindex comes back byte for byte from the batch headers', async () => {
    const { log, dir } = await open();
    const expected = await interleave(log);
    await log.close();
    const want = txnIndexBytes(expected);
    // Lost with the snapshot and the marker: an unclean open replays the whole log.
    await rm(txnIndexOf(dir, 0));
    await rm(join(dir, CLEAN_SHUTDOWN_FILE));
    for (const o of snapshotOffsets(await readdir(dir))) await rm(join(dir, snapshotFileName(o)));
    let reopened = await Log.open(dir);
    expect(reopened.abortedTransactions(0, 14)).toHaveLength(3);
    await reopened.close();
    expect(await readFile(txnIndexOf(dir, 0))).toEqual(want);
    // Damaged (torn mid-entry): rebuilt too, even after a clean close.
    await truncate(txnIndexOf(dir, 0), 50);
    reopened = await Log.open(dir);
    expect(reopened.abortedTransactions(0, 14)).toHaveLength(3);
    await reopened.close();
    expect(await readFile(txnIndexOf(dir, 0))).toEqual(want);
    // Garbage of whole-entry size (a bad version): rebuilt.
    await writeFile(txnIndexOf(dir, 0), Buffer.alloc(34, 0xff));
    reopened = await Log.open(dir);
    await reopened.close();
    expect(await readFile(txnIndexOf(dir, 0))).toEqual(want);
  });

  test('truncateTo trims the index and reopens a transaction whose marker it cut', async () => {
    const { log, dir } = await open();
    const expected = await interleave(log);
    expect(await log.truncateTo(12)).toBe(12);
    // 3's abort (12) and 1's abort (13) are gone: both transactions are open again.
    expect(await readFile(txnIndexOf(dir, 0))).toEqual(txnIndexBytes(expected.slice(0, 1)));
    expect(log.firstUnstableOffset()).toBe(7);
    expect(log.producerState().find((p) => p.producerId === 1)?.currentTxnFirstOffset).toBe(10);
    await log.appendControl({ producerId: 3, producerEpoch: 0, type: 'commit', coordinatorEpoch: 2 });
    expect(log.firstUnstableOffset()).toBe(10);
    await log.close();
    // And across a reopen.
    const reopened = await Log.open(dir);
    expect([reopened.firstUnstableOffset(), reopened.abortedTransactions(0, 20).length]).toEqual([10, 1]);
    await reopened.close();
  });

  test('gone with its segment: retention takes the .txnindex with the .log', async () => {
    const { log, dir } = await open({ segmentBytes: 1024, fileDeleteDelayMs: 0 });
    await log.appendBatches(txnBatch(1, 0));
    await log.appendControl({ producerId: 1, producerEpoch: 0, type: 'abort', coordinatorEpoch: 0 });
    await log.roll();
    await log.append([{ value: 'x' }]);
    expect(await log.deleteRecordsBefore(3)).toBe(3);
    const names = await readdir(dir);
    expect(names.filter((n) => n.startsWith(segmentFileName(0, 'log').slice(0, 20)) && !n.endsWith('.deleted'))).toEqual([]);
    expect(log.abortedTransactions(0, 10)).toEqual([]);
    await log.close();
  });
});

describe('the first unstable offset and the high watermark', () => {
  test('a transaction stays unstable until the high watermark passes its marker (Kafka\'s unreplicated transactions)', () => {
    const states = new ProducerStates({ expirationMs: 60_000, maxProducerIds: 10 });
    const entry = (producerId: number) => {
      const r = states.table.allocate(producerId, 0);
      states.table.setCoordinatorEpoch(r, 0);
      states.table.setLastTimestamp(r, Date.now());
      return r;
    };
    const apply = (changed: number[], events: TxnEvent[]) => states.apply({ changed, events, now: Date.now(), pushPending: () => undefined });
    apply([entry(1), entry(2)], [{ producerId: 1, firstOffset: 5 }, { producerId: 2, firstOffset: 8 }]);
    expect(states.firstUnstableOffset(0)).toBe(5);
    // 1 commits at 20: until the high watermark passes 20 its data is not stable.
    apply([], [{ producerId: 1, firstOffset: 5, lastOffset: 20, aborted: false }]);
    expect(states.firstUnstableOffset(20)).toBe(5);
    expect(states.firstUnstableOffset(21)).toBe(8);
    // Once passed, forgotten: a lower high watermark (never asked but after a truncation, which rebuilds) does not bring it back.
    expect(states.firstUnstableOffset(15)).toBe(8);
    apply([], [{ producerId: 2, firstOffset: 8, lastOffset: 30, aborted: true }]);
    expect(states.firstUnstableOffset(30)).toBe(8);
    expect(states.firstUnstableOffset(31)).toBeUndefined();
  });

  test('log.firstUnstableOffset() counts a marker once it is published', async () => {
    const { log } = await open({ flush: 'always' });
    await log.appendBatches(txnBatch(1, 0));
    const marker = log.appendControl({ producerId: 1, producerEpoch: 0, type: 'commit', coordinatorEpoch: 0 });
    expect(log.firstUnstableOffset()).toBe(0);
    await marker;
    expect(log.firstUnstableOffset()).toBeUndefined();
    await log.close();
  });
});

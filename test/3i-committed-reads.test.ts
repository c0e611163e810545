// Read isolation over real transaction state (issue #15 items 3-5
// together): the last stable offset follows the earliest open transaction
// and waits for the high watermark to pass a marker; read_committed reads
// (read, records, batches, sendTo) stop there and leave out aborted
// transactions and markers; a committed follower wakes when a marker and the
// high watermark let it go on.
import { describe, expect, test } from 'vitest';
import { Log, type LogOptions } from '../src/log/log.js';
import { encodeBatch, type LogRecord } from '../src/segment/batch.js';
import { socketPair, until } from './helpers/sockets.js';
import { tempDir } from './helpers/tmp.js';

/** `values` as one transactional batch of producer `pid` from sequence `seq`. */
function txn(pid: number, seq: number, values: string[]): Buffer {
  return encodeBatch(
    values.map((value) => ({ value })),
    { producerId: pid, producerEpoch: 0, baseSequence: seq, transactional: true },
  );
}

async function values(records: AsyncIterable<LogRecord>): Promise<string[]> {
  const out: string[] = [];
  for await (const r of records) out.push(r.value!.toString());
  return out;
}

async function open(options?: LogOptions): Promise<Log> {
  return Log.open(await tempDir(), options);
}

/**
 * 0-1 producer 7 (aborted), 2 producer 8 (committed), 3 plain, 4 producer
 * 7's ABORT, 5 producer 8's COMMIT, 6 plain.
 */
async function interleaved(log: Log): Promise<void> {
  await log.appendBatches(txn(7, 0, ['a0', 'a1']));
  await log.appendBatches(txn(8, 0, ['c0']));
  await log.append([{ value: 'plain3' }]);
  await log.appendControl({ producerId: 7, producerEpoch: 0, type: 'abort', coordinatorEpoch: 1 });
  await log.appendControl({ producerId: 8, producerEpoch: 0, type: 'commit', coordinatorEpoch: 1 });
  await log.append([{ value: 'plain6' }]);
}

describe('read_committed over real transactions', () => {
  test('records and batches leave out the aborted transaction and the markers; the committed one stays', async () => {
    const log = await open();
    await interleaved(log);
    expect(log.abortedTransactions(0, 7)).toEqual([{ producerId: 7, firstOffset: 0, lastOffset: 4 }]);
    expect(log.lastStableOffset).toBe(7);
    expect(await values(log.records(0, { isolation: 'committed' }))).toEqual(['c0', 'plain3', 'plain6']);
    // One batch per read: each read asks about its own range, the result is the same.
    expect(await values(log.records(0, { isolation: 'committed', maxBytes: 1 }))).toEqual(['c0', 'plain3', 'plain6']);
    const kept: number[] = [];
    for await (const b of log.batches(0, { isolation: 'committed' })) kept.push(b.header.baseOffset);
    expect(kept).toEqual([2, 3, 6]);
    // Uncommitted reads keep everything, the aborted data and the markers (a read_uncommitted client drops markers itself).
    const all: number[] = [];
    for await (const r of log.records(0, { isolation: 'uncommitted' })) all.push(r.offset);
    expect(all).toEqual([0, 1, 2, 3, 4, 5, 6]);
    await log.close();
  });

  test('an open transaction holds the last stable offset at its first offset: committed reads stop there, uncommitted ones do not', async () => {
    const log = await open();
    await log.append([{ value: 'before' }]);
    await log.appendBatches(txn(9, 0, ['t1', 't2']));
    await log.append([{ value: 'after' }]);
    expect(log.firstUnstableOffset()).toBe(1);
    expect([log.lastStableOffset, log.highWatermark, log.endOffset]).toEqual([1, 4, 4]);
    expect(await values(log.records(0, { isolation: 'committed' }))).toEqual(['before']);
    expect((await log.read(1, { isolation: 'committed' })).bytes.length).toBe(0);
    expect(await values(log.records(0, { isolation: 'uncommitted' }))).toEqual(['before', 't1', 't2', 'after']);
    // sendTo under read_committed sends only what lies below the last stable offset.
    const pair = await socketPair();
    pair.receiver.resume();
    const whole = (await log.read(0, { maxOffset: 1 })).bytes;
    expect(await log.sendTo(pair.sender, 0, { isolation: 'committed' })).toEqual({ bytes: whole.length, nextOffset: 1 });
    await until(() => pair.received().length >= whole.length, 'the committed part');
    expect(pair.received().equals(whole)).toBe(true);
    await log.appendControl({ producerId: 9, producerEpoch: 0, type: 'commit', coordinatorEpoch: 0 });
    expect(log.firstUnstableOffset()).toBeUndefined();
    expect(log.lastStableOffset).toBe(5);
    expect(await values(log.records(0, { isolation: 'committed' }))).toEqual(['before', 't1', 't2', 'after']);
    await log.close();
  });

  test("under a manual high watermark a decided transaction stays unstable until the high watermark passes its marker; a committed follower wakes then", async () => {
    const log = await open({ highWatermark: 'manual' });
    await log.appendBatches(txn(3, 0, ['x0', 'x1']));
    await log.setHighWatermark(log.endOffset);
    expect(log.lastStableOffset).toBe(0);
    const seen: string[] = [];
    const ac = new AbortController();
    const following = (async () => {
      for await (const r of log.records(0, { isolation: 'committed', follow: true, signal: ac.signal })) seen.push(r.value!.toString());
    })().catch((err: unknown) => err);
    await log.appendControl({ producerId: 3, producerEpoch: 0, type: 'commit', coordinatorEpoch: 0 });
    // The marker is written, but a new leader might not have it: still unstable, the follower still waits.
    expect(log.firstUnstableOffset()).toBe(0);
    expect(log.lastStableOffset).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen).toEqual([]);
    log.setHighWatermark(log.endOffset);
    expect(log.firstUnstableOffset()).toBeUndefined();
    expect(log.lastStableOffset).toBe(3);
    await until(() => seen.length === 2);
    expect(seen).toEqual(['x0', 'x1']);
    ac.abort();
    await following;
    await log.close();
  });

  test('the state survives a reopen: the aborted transaction is still left out, an open one still bounds the last stable offset', async () => {
    const dir = await tempDir();
    let log = await Log.open(dir);
    await interleaved(log);
    await log.appendBatches(txn(11, 0, ['open']));
    await log.close();
    log = await Log.open(dir);
    expect(log.firstUnstableOffset()).toBe(7);
    expect(log.lastStableOffset).toBe(7);
    expect(await values(log.records(0, { isolation: 'committed' }))).toEqual(['c0', 'plain3', 'plain6']);
    await log.close();
  });
});

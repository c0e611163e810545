// Read isolation (issue #15 item 5): read, sendTo, records and batches stop
// at the log end ('all', default), the high watermark ('uncommitted') or the
// last stable offset ('committed'), whole batches only, empty (not an error)
// from the bound to the end; 'committed' leaves out control batches and
// aborted transactions (through the TransactionView seam); followers wake
// when their bound moves.
import { describe, expect, test } from 'vitest';
import type { HighWatermark } from '../src/log/high-watermark.js';
import { batches, Followers, records } from '../src/log/follow.js';
import { ReadIsolation, type TransactionView } from '../src/log/isolation.js';
import { Log, type IsolationLevel, type LogBatch } from '../src/log/log.js';
import type { LogSegments } from '../src/log/segments.js';
import { encodeBatch, readBatchHeader, type BatchHeader, type LogRecord } from '../src/segment/batch.js';
import { socketPair, turns, until } from './helpers/sockets.js';
import { tempDir } from './helpers/tmp.js';

/** A manual-HW log of four batches of three records: 0-2, 3-5, 6-8, 9-11. */
async function fourBatches(): Promise<Log> {
  const log = await Log.open(await tempDir(), { highWatermark: 'manual' });
  for (let b = 0; b < 4; b++) await log.append([0, 1, 2].map((i) => ({ value: `v${b * 3 + i}` })));
  return log;
}

async function offsetsOf(records: AsyncIterable<LogRecord>): Promise<number[]> {
  const out: number[] = [];
  for await (const r of records) out.push(r.offset);
  return out;
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** Kafka's COMMIT marker: key version 0 and type 1, value version 0 and coordinator epoch 0. */
function commitMarker(producerId: number): Buffer {
  const key = Buffer.from([0, 0, 0, 1]);
  const value = Buffer.from([0, 0, 0, 0, 0, 0]);
  return encodeBatch([{ key, value }], { producerId, producerEpoch: 0, baseSequence: -1, transactional: true, control: true });
}

describe('read', () => {
  test("'uncommitted' and 'committed' stop before the batch holding the high watermark; 'all' (the default) reads to the end", async () => {
    const log = await fourBatches();
    log.setHighWatermark(6);
    const all = await log.read(0);
    expect(all.nextOffset).toBe(12);
    expect(await log.read(0, { isolation: 'all' })).toEqual(all);
    for (const isolation of ['uncommitted', 'committed'] as const) {
      const r = await log.read(0, { isolation });
      expect(r.nextOffset).toBe(6);
      expect(r.bytes.equals(all.bytes.subarray(0, r.bytes.length))).toBe(true);
      // Inside the batch the bound lies in: still whole batches only.
      log.setHighWatermark(8);
      expect((await log.read(0, { isolation })).nextOffset).toBe(6);
      expect((await log.read(7, { isolation })).bytes.length).toBe(0);
      // Its own maxOffset still caps below the bound.
      expect((await log.read(0, { isolation, maxOffset: 3 })).nextOffset).toBe(3);
    }
    await log.close();
  });

  test('from the bound to the log end a read is empty, as a Kafka fetch there is; past the end EOFFSETRANGE as before', async () => {
    const log = await fourBatches();
    log.setHighWatermark(6);
    for (const offset of [6, 7, 9, 12]) {
      expect(await log.read(offset, { isolation: 'uncommitted' })).toEqual({ bytes: Buffer.alloc(0), nextOffset: offset });
    }
    expect((await log.read(9)).nextOffset).toBe(12);
    await expect(log.read(13, { isolation: 'uncommitted' })).rejects.toMatchObject({ code: 'EOFFSETRANGE' });
    await log.close();
  });

  test('bad isolation values are argument errors, before anything is read', async () => {
    const log = await fourBatches();
    await expect(log.read(0, { isolation: 'read_committed' as never })).rejects.toThrow(RangeError);
    await expect(log.read(0, { isolation: 1 as never })).rejects.toThrow(TypeError);
    await expect(log.batches(0, { isolation: 'none' as never }).next()).rejects.toThrow(/options\.isolation must be one of 'uncommitted', 'committed', 'all'/);
    await expect(log.records(0, { isolation: null as never }).next()).rejects.toThrow(TypeError);
    await log.close();
  });
});

describe('sendTo', () => {
  test('sends over a socket what read() returns under the same isolation; at the bound only the prefix', async () => {
    const log = await fourBatches();
    log.setHighWatermark(9);
    const cases: Array<[number, IsolationLevel | undefined]> = [
      [0, 'uncommitted'],
      [4, 'committed'],
      [9, 'uncommitted'],
      [0, undefined],
    ];
    const expected = await Promise.all(cases.map(([offset, isolation]) => log.read(offset, { isolation })));
    expect(expected.map((e) => e.nextOffset)).toEqual([9, 9, 9, 12]);
    const pair = await socketPair();
    pair.receiver.resume();
    const frame = (i: number, bytes: number) => Buffer.from(`[${i}:${bytes}]`);
    const sent = await Promise.all(cases.map(([offset, isolation], i) => log.sendTo(pair.sender, offset, { isolation, prefix: ({ bytes }) => frame(i, bytes) })));
    expect(sent).toEqual(expected.map((e) => ({ bytes: e.bytes.length, nextOffset: e.nextOffset })));
    const wire = Buffer.concat(expected.flatMap((e, i) => [frame(i, e.bytes.length), e.bytes]));
    await until(() => pair.received().length >= wire.length, 'every response');
    expect(pair.received().equals(wire)).toBe(true);
    // A bad isolation rejects without touching the socket.
    await expect(log.sendTo(pair.sender, 0, { isolation: 'x' as never })).rejects.toThrow(RangeError);
    await turns();
    expect(pair.received().length).toBe(wire.length);
    expect(pair.sender.destroyed).toBe(false);
    await log.close();
  });
});

describe('records and batches', () => {
  test("'uncommitted' and 'committed' end at the high watermark, 'all' at the log end", async () => {
    const log = await fourBatches();
    log.setHighWatermark(7);
    expect(await offsetsOf(log.records(0, { isolation: 'uncommitted' }))).toEqual(range(0, 6));
    expect(await offsetsOf(log.records(1, { isolation: 'committed' }))).toEqual(range(1, 6));
    expect(await offsetsOf(log.records(6, { isolation: 'uncommitted' }))).toEqual([]);
    expect(await offsetsOf(log.records(10, { isolation: 'uncommitted' }))).toEqual([]);
    expect(await offsetsOf(log.records(0))).toEqual(range(0, 12));
    expect(await offsetsOf(log.records(0, { isolation: 'all' }))).toEqual(range(0, 12));
    await log.close();
  });

  test("'committed' leaves out control batches; the transaction's own batches stay (nothing aborted); other levels keep both", async () => {
    const log = await Log.open(await tempDir());
    await log.append([{ value: 'plain' }]);
    const txn = encodeBatch([{ value: 't0' }, { value: 't1' }], { producerId: 7, producerEpoch: 0, baseSequence: 0, transactional: true });
    await log.appendBatches(Buffer.concat([txn, commitMarker(7)]), { origin: 'replication' });
    await log.append([{ value: 'after' }]);
    const kinds = async (isolation: IsolationLevel) => {
      const seen: Array<[number, boolean]> = [];
      for await (const b of log.batches(0, { isolation })) seen.push([b.header.baseOffset, b.header.control]);
      return seen;
    };
    expect(await kinds('committed')).toEqual([
      [0, false],
      [1, false],
      [4, false],
    ]);
    expect(await kinds('uncommitted')).toEqual([
      [0, false],
      [1, false],
      [3, true],
      [4, false],
    ]);
    expect(await offsetsOf(log.records(0, { isolation: 'committed' }))).toEqual([0, 1, 2, 4]);
    expect(await offsetsOf(log.records(0, { isolation: 'all' }))).toEqual([0, 1, 2, 3, 4]);
    await log.close();
  });
});

describe('following', () => {
  test("records({ follow, isolation: 'uncommitted' }) wakes when setHighWatermark moves its bound, not on appends", async () => {
    const log = await Log.open(await tempDir(), { highWatermark: 'manual' });
    const seen: number[] = [];
    const abort = new AbortController();
    const following = (async () => {
      for await (const r of log.records(0, { follow: true, isolation: 'uncommitted', signal: abort.signal })) seen.push(r.offset);
    })().catch((err: unknown) => err);
    await log.append([{ value: 'a' }, { value: 'b' }, { value: 'c' }]);
    await log.append([{ value: 'd' }, { value: 'e' }, { value: 'f' }]);
    await turns(5);
    expect(seen).toEqual([]);
    log.setHighWatermark(3);
    await until(() => seen.length === 3, 'the first batch');
    // Set inside the second batch (3-5): that batch waits until the bound passes its end.
    log.setHighWatermark(5);
    await turns(5);
    expect(seen).toEqual([0, 1, 2]);
    log.setHighWatermark(6);
    await until(() => seen.length === 6, 'the second batch');
    expect(seen).toEqual(range(0, 6));
    abort.abort();
    expect(await following).toBeInstanceOf(Error);
    await log.close();
  });

  test("under 'auto' with flush 'always', 'uncommitted' followers wake on each durable append; 'all' followers of a manual log ignore the HW", async () => {
    const auto = await Log.open(await tempDir(), { flush: 'always' });
    const manual = await Log.open(await tempDir(), { highWatermark: 'manual' });
    const seenAuto: number[] = [];
    const seenAll: number[] = [];
    const follow = (log: Log, isolation: IsolationLevel, seen: number[]) =>
      (async () => {
        for await (const r of log.records(0, { follow: true, isolation })) seen.push(r.offset);
      })();
    const a = follow(auto, 'uncommitted', seenAuto);
    const m = follow(manual, 'all', seenAll);
    for (let i = 0; i < 3; i++) {
      await auto.append([{ value: `${i}` }]);
      await manual.append([{ value: `${i}` }]);
      await until(() => seenAuto.length === i + 1 && seenAll.length === i + 1, 'each append');
    }
    expect(manual.highWatermark).toBe(0);
    await Promise.all([auto.close(), manual.close()]);
    await Promise.all([a, m]);
    expect([seenAuto, seenAll]).toEqual([
      [0, 1, 2],
      [0, 1, 2],
    ]);
  });

  test('a follower waiting at a bound inside a batch goes on after a truncation removes that batch, from the batch appended in its place', async () => {
    const log = await fourBatches();
    log.setHighWatermark(4);
    const batches: LogBatch[] = [];
    const abort = new AbortController();
    const following = (async () => {
      for await (const b of log.batches(0, { follow: true, isolation: 'uncommitted', signal: abort.signal })) batches.push(b);
    })().catch(() => undefined);
    await until(() => batches.length === 1, 'the first batch');
    await log.truncateTo(3);
    expect(log.highWatermark).toBe(3);
    await log.append([{ value: 'n3' }]);
    log.setHighWatermark(4);
    await until(() => batches.length === 2, 'the batch appended after the truncation');
    expect(batches[1]!.records.map((r) => [r.offset, String(r.value)])).toEqual([[3, 'n3']]);
    abort.abort();
    await following;
    await log.close();
  });
});

describe('ReadIsolation over a TransactionView (the seam the transaction state plugs into)', () => {
  const header = (h: Partial<BatchHeader>): BatchHeader => ({ ...readBatchHeader(encodeBatch([{ value: 'x' }])), ...h });
  const view = (unstable: number | undefined, aborted: Array<{ producerId: number; firstOffset: number; lastOffset: number }>): TransactionView & { asked: Array<[number, number]> } => {
    const asked: Array<[number, number]> = [];
    return {
      asked,
      firstUnstableOffset: () => unstable,
      abortedTransactions: (from, to) => (asked.push([from, to]), aborted),
    };
  };
  const isolation = (hw: number, v: TransactionView) => new ReadIsolation({ endOffset: 50 } as LogSegments, { offset: hw } as HighWatermark, v);

  test('the LSO is the first unstable offset below the high watermark, else the high watermark', () => {
    expect(isolation(20, view(12, [])).lastStableOffset).toBe(12);
    expect(isolation(20, view(25, [])).lastStableOffset).toBe(20);
    expect(isolation(20, view(undefined, [])).lastStableOffset).toBe(20);
    const i = isolation(20, view(12, []));
    expect([i.bound('all'), i.bound('uncommitted'), i.bound('committed')]).toEqual([50, 20, 12]);
  });

  test("'committed' skips the aborted transaction's own batches: its producer's transactional batches from its first offset to its marker", () => {
    const v = view(undefined, [{ producerId: 7, firstOffset: 10, lastOffset: 20 }]);
    const skipped = isolation(30, v).skipped(5, 25);
    expect(v.asked).toEqual([[5, 25]]);
    const txn = (producerId: number, baseOffset: number, lastOffset: number) => header({ producerId, baseOffset, lastOffset, transactional: true });
    expect(skipped(txn(7, 10, 12))).toBe(true);
    expect(skipped(txn(7, 18, 19))).toBe(true);
    expect(skipped(txn(8, 11, 12))).toBe(false); // another producer
    expect(skipped(txn(7, 21, 22))).toBe(false); // its next transaction
    expect(skipped(txn(7, 8, 9))).toBe(false); // before it
    expect(skipped(header({ producerId: 7, baseOffset: 12, lastOffset: 12 }))).toBe(false); // not transactional
    expect(skipped(header({ producerId: 7, baseOffset: 20, lastOffset: 20, transactional: true, control: true }))).toBe(true); // its marker
    expect(isolation(30, view(undefined, [])).skipped(0, 5)(header({ control: true }))).toBe(true);
  });

  test("a committed batches() asks the view about each read's range and drops what it names", async () => {
    const log = await Log.open(await tempDir());
    const txn = (producerId: number, values: string[]) =>
      encodeBatch(values.map((value) => ({ value })), { producerId, producerEpoch: 0, baseSequence: 0, transactional: true });
    // 0 plain, 1-2 producer 7 (aborted), 3 producer 8 (committed), 4 producer 7's ABORT marker (shaped as a commit: only the header counts here), 5 producer 8's marker, 6 plain.
    await log.append([{ value: 'plain' }]);
    await log.appendBatches(Buffer.concat([txn(7, ['a', 'b']), txn(8, ['c']), commitMarker(7), commitMarker(8)]), { origin: 'replication' });
    await log.append([{ value: 'after' }]);
    const v = view(undefined, [{ producerId: 7, firstOffset: 1, lastOffset: 4 }]);
    const reads = new ReadIsolation({ endOffset: 7 } as LogSegments, { offset: 7 } as HighWatermark, v);
    const source = {
      bound: () => 7,
      closed: () => false,
      read: (offset: number, maxBytes: number) => log.read(offset, { maxBytes }),
      skipped: (_level: IsolationLevel, from: number, to: number) => reads.skipped(from, to),
    };
    const kept = async (maxBytes: number) => {
      v.asked.length = 0;
      const out: number[] = [];
      for await (const b of batches(source, new Followers(), 0, { maxBytes, isolation: 'committed' })) out.push(...b.records.map((r) => r.offset));
      // records() leaves out the same.
      const one: number[] = [];
      for await (const r of records(source, new Followers(), 0, { maxBytes, isolation: 'committed' })) one.push(r.offset);
      expect(one).toEqual(out);
      return out;
    };
    expect(await kept(1 << 20)).toEqual([0, 3, 6]);
    expect(v.asked).toEqual([[0, 7], [0, 7]]);
    // One batch per read: one question per read, about its own range.
    expect(await kept(1)).toEqual([0, 3, 6]);
    const perRead = [
      [0, 1],
      [1, 3],
      [3, 4],
      [4, 5],
      [5, 6],
      [6, 7],
    ];
    expect(v.asked).toEqual([...perRead, ...perRead]);
    await log.close();
  });
});

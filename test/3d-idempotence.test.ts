// Idempotent producers (issue #15 item 1): appendBatches checks every batch
// with a producerId against the producer's state, Kafka's rules: duplicates
// of the last 5 batches answered with the original offsets and not written,
// stale epochs fenced, sequence gaps refused, int32 wrap-around; producer
// state expiry and its bound; appends pipelined in the queue checked against
// the ones ahead of them; a failed write leaves the state as it was.
import { afterEach, describe, expect, test } from 'vitest';
import { Log, type LogOptions } from '../src/log/log.js';
import { ProducerDraft } from '../src/log/producer-append.js';
import { ProducerStates } from '../src/log/producer-state.js';
import { ProducerRows } from '../src/log/producer-rows.js';
import { ProducerTable } from '../src/log/producer-table.js';
import { checkBatch, encodeBatch } from '../src/segment/batch.js';
import { injectFault } from './helpers/faults.js';
import { tempDir } from './helpers/tmp.js';

afterEach(() => injectFault('pwrite', null));

const PID = 4242;

/** A producer's batch of `count` records from sequence `seq`. */
function batch(seq: number, count = 5, o: { pid?: number; epoch?: number; timestamp?: number; transactional?: boolean } = {}): Buffer {
  const records = Array.from({ length: count }, (_, i) => ({ value: `s${seq + i}`, timestamp: o.timestamp }));
  return encodeBatch(records, { producerId: o.pid ?? PID, producerEpoch: o.epoch ?? 0, baseSequence: seq, transactional: o.transactional });
}

async function open(options?: LogOptions): Promise<Log> {
  return Log.open(await tempDir(), options);
}

async function values(log: Log): Promise<string[]> {
  const out: string[] = [];
  for await (const r of log.records(log.startOffset)) out.push(r.value!.toString());
  return out;
}

describe('duplicates', () => {
  test('a retry of any of the last 5 batches gets the original offsets and writes nothing; the 6th back is out of order', async () => {
    const log = await open();
    const originals = [];
    for (let i = 0; i < 6; i++) originals.push(await log.appendBatches(batch(i * 5)));
    const size = log.size;
    // Window: batches 1..5 (batch 0 fell out).
    for (let i = 1; i < 6; i++) {
      const r = await log.appendBatches(batch(i * 5));
      expect(r).toEqual({ baseOffset: originals[i]!.baseOffset, lastOffset: originals[i]!.lastOffset, bytes: 0, logAppendTime: -1, duplicate: true });
    }
    await expect(log.appendBatches(batch(0))).rejects.toMatchObject({ code: 'EOUTOFORDERSEQUENCE' });
    expect([log.size, log.endOffset]).toEqual([size, 30]);
    expect(originals.every((r) => !r.duplicate)).toBe(true);
    await log.close();
  });

  test('the same sequences under another epoch are not duplicates', async () => {
    const log = await open();
    await log.appendBatches(batch(0));
    // A new epoch starting at 0 is a new batch, not a retry.
    expect((await log.appendBatches(batch(0, 5, { epoch: 1 }))).duplicate).toBe(false);
    expect(log.endOffset).toBe(10);
    await log.close();
  });

  test('back-to-back appends not awaited are checked against the ones queued ahead, and so is a retry still in flight', async () => {
    const log = await open({ flush: 'always' });
    const [a, b, retry, c] = await Promise.all([log.appendBatches(batch(0)), log.appendBatches(batch(5)), log.appendBatches(batch(0)), log.appendBatches(batch(10))]);
    expect([a.baseOffset, b.baseOffset, c.baseOffset]).toEqual([0, 5, 10]);
    expect(retry).toMatchObject({ baseOffset: 0, lastOffset: 4, duplicate: true });
    expect(await values(log)).toHaveLength(15);
    await log.close();
  });

  test('an append mixing a duplicate with a new batch is refused whole', async () => {
    const log = await open();
    await log.appendBatches(batch(0));
    await expect(log.appendBatches(Buffer.concat([batch(0), batch(5)]))).rejects.toMatchObject({ code: 'EOUTOFORDERSEQUENCE' });
    expect(log.endOffset).toBe(5);
    await log.close();
  });
  test("a retry is found in a window whose batches do not run back to back (a follower's), though it also follows the newest", async () => {
    const log = await open();
    for (const seq of [5, 10, 0]) await log.appendBatches(batch(seq), { origin: 'replication' });
    // 5..9 follows the newest (0..4), and repeats the oldest: Kafka takes it for a duplicate of that one.
    expect(await log.appendBatches(batch(5))).toMatchObject({ baseOffset: 0, lastOffset: 4, duplicate: true });
    expect(log.endOffset).toBe(15);
    await log.close();
  });
});

describe("a producer's batches in its table row", () => {
  const table = new ProducerTable();
  const push = (r: number, first: number, last: number) => table.push(r, first, last, last * 10, last - first, 0);

  test('a batch that follows back-to-back batches spanning the whole sequence space may repeat the oldest', () => {
    const r = table.allocate(1, 0);
    const quarter = 2 ** 29;
    for (let q = 0; q < 4; q++) push(r, q * quarter, (q + 1) * quarter - 1);
    // The next batch in order, 0 .. 2^29 - 1 after the wrap, is the oldest again.
    expect(table.find(r, 0, quarter - 1)).toBe(0);
    table.free(r);
  });

  test('a copy holds the same batches in the same order, round the ring; a new epoch holds none', () => {
    const r = table.allocate(1, 0);
    push(r, 20, 29);
    push(r, 0, 9); // not back to back
    for (let s = 10; s <= 50; s += 10) push(r, s, s + 9);
    // The first two dropped out: the oldest held is 10..19, in the ring's third slot.
    expect(table.size(r)).toBe(5);
    expect([table.find(r, 10, 19), table.find(r, 50, 59), table.find(r, 60, 69), table.find(r, 0, 9)]).toEqual([0, 4, -1, -1]);
    table.setCoordinatorEpoch(r, 7);
    table.setTxnFirstOffset(r, 100);
    table.markPending(r, 9, 3);
    const copy = table.allocate(2, 3);
    table.copy(r, copy);
    expect([table.producerId(copy), table.epoch(copy), table.size(copy), table.find(copy, 50, 59), table.find(copy, 10, 19)]).toEqual([1, 0, 5, 4, 0]);
    expect([table.coordinatorEpoch(copy), table.txnFirstOffset(copy), table.lastTimestamp(copy)]).toEqual([7, 100, table.lastTimestamp(r)]);
    // The marks stay where they were: they say where a row is in a group, not what the producer did.
    expect([table.stamp(copy), table.pendingAt(copy), table.draft(copy)]).toEqual([0, -1, -1]);
    expect([table.lastSeq(copy, 4), table.lastOffset(copy, 4), table.offsetDelta(copy, 4), table.lastOffset(copy, 0)]).toEqual([59, 590, 9, 190]);
    table.setEpoch(copy, 1);
    expect([table.size(copy), table.find(copy, 10, 19), table.lastSequence(copy)]).toEqual([0, -1, -1]);
    // The original is its own.
    expect(table.find(r, 10, 19)).toBe(0);
    table.free(r);
    table.free(copy);
  });

  test('takesNext: only a batch in order, of the epoch, repeating none, on a live row not stamped by the group', () => {
    const r = table.allocate(1, 2);
    const live = 1_000_000;
    // No batch yet: the whole rules decide (a new epoch's first batch, a producer of markers only).
    expect(table.takesNext(r, 7, live - 1, 2, 0, 4)).toBe(false);
    table.push(r, 0x7fffffff - 9, 0x7fffffff, 10, 9, live);
    expect(table.takesNext(r, 7, live - 1, 2, 0, 4)).toBe(true); // INT32_MAX wraps to 0
    expect(table.takesNext(r, 7, live - 1, 2, 1, 5)).toBe(false); // a gap
    expect(table.takesNext(r, 7, live - 1, 3, 0, 4)).toBe(false); // another epoch
    expect(table.takesNext(r, 7, live, 2, 0, 4)).toBe(false); // expired at that time
    table.setTxnFirstOffset(r, 3);
    expect(table.takesNext(r, 7, live, 2, 0, 4)).toBe(true); // an open transaction keeps it live
    table.setStamp(r, 7);
    expect(table.takesNext(r, 7, live - 1, 2, 0, 4)).toBe(false); // the group already holds it
    // Back-to-back batches spanning the whole sequence space: the next in order repeats the oldest, a duplicate.
    const w = table.allocate(2, 0);
    const quarter = 2 ** 29;
    for (let q = 0; q < 4; q++) push(w, q * quarter, (q + 1) * quarter - 1);
    expect(table.takesNext(w, 0, -1, 0, 0, quarter - 1)).toBe(false);
    table.free(r);
    table.free(w);
  });

  test('rows keep their numbers and contents as the table grows, and freed rows are reused', () => {
    const t = new ProducerTable(2);
    const rows = Array.from({ length: 200 }, (_, i) => {
      const r = t.allocate(10_000_000_000 + i, i % 7);
      t.push(r, i, i + 4, i * 5 + 4, 4, 1_700_000_000_000 + i);
      t.setLastTimestamp(r, 1_700_000_000_000 + i);
      return r;
    });
    expect(new Set(rows).size).toBe(200);
    expect(t.capacity).toBeGreaterThanOrEqual(200);
    rows.forEach((r, i) => {
      expect([t.producerId(r), t.epoch(r), t.lastSequence(r), t.lastOffset(r, 0), t.timestamp(r, 0), t.lastTimestamp(r)]).toEqual([
        10_000_000_000 + i, i % 7, i + 4, i * 5 + 4, 1_700_000_000_000 + i, 1_700_000_000_000 + i,
      ]);
    });
    const capacity = t.capacity;
    t.free(rows[17]!);
    const again = t.allocate(5, 0);
    expect(again).toBe(rows[17]);
    // Taken again as a new producer's: nothing of the old one is left.
    expect([t.producerId(again), t.size(again), t.txnFirstOffset(again), t.lastTimestamp(again), t.stamp(again), t.pendingAt(again), t.draft(again)]).toEqual([5, 0, -1, -1, 0, -1, -1]);
    expect(t.capacity).toBe(capacity);
  });
});

describe('which row holds a producer', () => {
  test('finds every producer added and none deleted, through growth and deletions in the middle of collision runs', () => {
    // Rows are numbered by step here; the index reads a row's whole id back from its owner, as from the table.
    const idOfRow = new Map<number, number>();
    const rows = new ProducerRows({ producerId: (row) => idOfRow.get(row)! });
    const model = new Map<number, number>();
    // Consecutive ids, ids past 2^32 that share their low half, and a fixed pseudo-random mix of adds and deletes.
    const ids = [
      ...Array.from({ length: 3000 }, (_, i) => i),
      ...Array.from({ length: 500 }, (_, i) => 2 ** 32 * (i + 1) + 7),
      ...Array.from({ length: 500 }, (_, i) => Number.MAX_SAFE_INTEGER - i),
    ];
    let x = 12345;
    const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
    for (let step = 0; step < 40_000; step++) {
      const id = ids[next() % ids.length]!;
      if (model.has(id) && next() % 3 === 0) {
        rows.delete(id);
        model.delete(id);
      } else if (!model.has(id)) {
        idOfRow.set(step, id);
        rows.add(id, step);
        model.set(id, step);
      }
      if (step % 5000 === 4999) {
        expect(rows.size).toBe(model.size);
        for (const id of ids) expect(rows.get(id)).toBe(model.get(id) ?? -1);
      }
    }
    rows.delete(123_456_789); // not there: nothing changes
    expect(rows.size).toBe(model.size);
    rows.clear();
    expect([rows.size, rows.get(ids[0]!)]).toEqual([0, -1]);
  });
});

describe('fencing and sequences', () => {
  test('an older epoch is EPRODUCERFENCED; a new epoch must start at 0', async () => {
    const log = await open();
    await log.appendBatches(batch(0, 5, { epoch: 3 }));
    await expect(log.appendBatches(batch(5, 5, { epoch: 2 }))).rejects.toMatchObject({ code: 'EPRODUCERFENCED' });
    await expect(log.appendBatches(batch(5, 5, { epoch: 4 }))).rejects.toMatchObject({ code: 'EOUTOFORDERSEQUENCE' });
    await log.appendBatches(batch(0, 5, { epoch: 4 }));
    expect(log.producerState()).toMatchObject([{ producerId: PID, producerEpoch: 4, lastSequence: 4, lastOffset: 9 }]);
    await log.close();
  });

  test('a gap or a repeat that is not a whole earlier batch is EOUTOFORDERSEQUENCE; nothing is written and the producer goes on', async () => {
    const log = await open();
    await log.appendBatches(batch(0));
    await expect(log.appendBatches(batch(6))).rejects.toMatchObject({ code: 'EOUTOFORDERSEQUENCE' });
    await expect(log.appendBatches(batch(3))).rejects.toMatchObject({ code: 'EOUTOFORDERSEQUENCE' });
    expect(log.endOffset).toBe(5);
    await log.appendBatches(batch(5));
    expect(log.endOffset).toBe(10);
    await log.close();
  });

  test('all or nothing: a refused batch refuses the batches before it in the same call', async () => {
    const log = await open();
    await expect(log.appendBatches(Buffer.concat([batch(0), batch(9)]))).rejects.toMatchObject({ code: 'EOUTOFORDERSEQUENCE' });
    expect(log.endOffset).toBe(0);
    // Nothing of the refused call reached the state: sequence 0 is new (an unknown producer may start anywhere).
    expect(log.producerState()).toEqual([]);
    expect((await log.appendBatches(batch(0))).duplicate).toBe(false);
    await log.close();
  });

  test('sequences wrap from INT32_MAX to 0, as Kafka does', async () => {
    const log = await open();
    const max = 0x7fffffff;
    await log.appendBatches(batch(max - 4)); // max-4 .. max
    await log.appendBatches(batch(0)); // wraps
    // A batch that itself wraps: its last sequence is (start + count - 1) mod 2^31.
    await log.appendBatches(batch(5));
    expect(log.producerState()[0]!.lastSequence).toBe(9);
    // The batch before the wrap is still in the window: a retry of it is a duplicate; one sequence off is not.
    expect(await log.appendBatches(batch(max - 4))).toMatchObject({ baseOffset: 0, duplicate: true });
    await expect(log.appendBatches(batch(max - 3))).rejects.toMatchObject({ code: 'EOUTOFORDERSEQUENCE' });
    const log2 = await open();
    await log2.appendBatches(batch(max - 2)); // max-2 .. max+2 → wraps inside the batch to 1
    expect(log2.producerState()[0]!.lastSequence).toBe(1);
    await log2.appendBatches(batch(2));
    expect((await log2.appendBatches(batch(max - 2))).duplicate).toBe(true);
    await log.close();
    await log2.close();
  });

  test("a follower's append (origin 'replication') is not checked but recorded", async () => {
    const log = await open();
    await log.appendBatches(batch(10, 5, { epoch: 2 }), { origin: 'replication' });
    await log.appendBatches(batch(40, 5, { epoch: 1 }), { origin: 'replication' });
    expect(log.endOffset).toBe(10);
    // Recorded as the leader wrote them (Kafka takes each batch's epoch on this path).
    expect(log.producerState()).toMatchObject([{ producerId: PID, producerEpoch: 1, lastSequence: 44, lastOffset: 9 }]);
    await log.close();
  });
});

describe('appends checked together in one group', () => {
  // Appends made in one turn of the event loop are numbered as one group: each is checked against the ones ahead of it.

  test('a refused append of several batches leaves the producers as the appends ahead of it in the group left them', async () => {
    const log = await open();
    await log.appendBatches(batch(0, 5, { pid: 1 }));
    await log.appendBatches(batch(5, 5, { pid: 1 }));
    const [ahead, refused, next, retry, fresh] = await Promise.allSettled([
      log.appendBatches(batch(10, 5, { pid: 1 })),
      // Producer 1 goes on, producer 7 (new) starts, producer 1 then skips: refused whole.
      log.appendBatches(Buffer.concat([batch(15, 5, { pid: 1 }), batch(20, 5, { pid: 1 }), batch(0, 5, { pid: 7 }), batch(99, 5, { pid: 1 })])),
      // So 15 is next for producer 1, and 0 is still in its window; producer 7 is unknown and may start anywhere.
      log.appendBatches(batch(15, 5, { pid: 1 })),
      log.appendBatches(batch(0, 5, { pid: 1 })),
      log.appendBatches(batch(3, 5, { pid: 7 })),
    ]);
    expect(refused).toMatchObject({ status: 'rejected', reason: { code: 'EOUTOFORDERSEQUENCE' } });
    expect([ahead, next, retry, fresh].map((r) => (r.status === 'fulfilled' ? r.value : r.reason))).toMatchObject([
      { baseOffset: 10, duplicate: false },
      { baseOffset: 15, duplicate: false },
      { baseOffset: 0, lastOffset: 4, duplicate: true },
      { baseOffset: 20, duplicate: false },
    ]);
    expect(log.producerState()).toMatchObject([
      { producerId: 1, lastSequence: 19, lastOffset: 19 },
      { producerId: 7, lastSequence: 7, lastOffset: 24 },
    ]);
    await log.close();
  });

  test('an append of several batches that are all duplicates of the group\'s earlier ones changes nothing', async () => {
    const log = await open();
    await log.appendBatches(batch(0, 5, { pid: 1 }));
    const [a, b, again, c] = await Promise.all([
      log.appendBatches(batch(5, 5, { pid: 1 })),
      log.appendBatches(batch(0, 5, { pid: 2 })),
      log.appendBatches(Buffer.concat([batch(5, 5, { pid: 1 }), batch(0, 5, { pid: 2 })])),
      log.appendBatches(Buffer.concat([batch(10, 5, { pid: 1 }), batch(5, 5, { pid: 2 })])),
    ]);
    expect([a.baseOffset, b.baseOffset, c.baseOffset]).toEqual([5, 10, 15]);
    expect(again).toMatchObject({ baseOffset: 5, lastOffset: 14, duplicate: true });
    expect(log.producerState()).toMatchObject([
      { producerId: 1, lastSequence: 14, lastOffset: 19 },
      { producerId: 2, lastSequence: 9, lastOffset: 24 },
    ]);
    await log.close();
  });

  test('a failed write of a group of several producers leaves all of them as they were, and a retry answered from that group fails with it', async () => {
    const log = await open();
    await log.appendBatches(batch(0, 5, { pid: 1 }));
    await log.appendBatches(batch(0, 5, { pid: 2 }));
    const before = log.producerState();
    injectFault('pwrite', 'EIO', { partial: true, count: -1 });
    const group = await Promise.allSettled([
      log.appendBatches(batch(5, 5, { pid: 1 })),
      log.appendBatches(batch(5, 5, { pid: 2 })),
      log.appendBatches(batch(0, 5, { pid: 3 })),
      // A retry of a batch of the same group: its original is never written, so neither is it acknowledged.
      log.appendBatches(batch(5, 5, { pid: 1 })),
    ]);
    injectFault('pwrite', null);
    expect(group.map((r) => r.status === 'rejected' && (r.reason as { code?: string }).code)).toEqual(['EIO', 'EIO', 'EIO', 'EIO']);
    expect(log.producerState()).toEqual(before);
    // The retries are new batches, written in order; sequence 5 of producer 3 is accepted (unknown producers may start anywhere).
    const retries = await Promise.all([
      log.appendBatches(batch(5, 5, { pid: 2 })),
      log.appendBatches(batch(5, 5, { pid: 1 })),
      log.appendBatches(batch(5, 5, { pid: 3 })),
    ]);
    expect(retries.map((r) => [r.baseOffset, r.duplicate])).toEqual([[10, false], [15, false], [20, false]]);
    expect(log.producerState().map((p) => [p.producerId, p.lastSequence])).toEqual([[2, 9], [1, 9], [3, 9]]);
    await log.close();
  });

  test('after a failed write of a group that drafted a producer, the next group checks its appends against each other, not that draft', async () => {
    const log = await open();
    await log.appendBatches(batch(0));
    injectFault('pwrite', 'EIO', { partial: true, count: -1 });
    const failed = await Promise.allSettled([log.appendBatches(batch(5)), log.appendBatches(batch(10))]);
    injectFault('pwrite', null);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    const [a, b] = await Promise.all([log.appendBatches(batch(5)), log.appendBatches(batch(10))]);
    expect([a, b].map((r) => [r.baseOffset, r.duplicate])).toEqual([[5, false], [10, false]]);
    expect(log.producerState()).toMatchObject([{ producerId: PID, lastSequence: 14, lastOffset: 14 }]);
    await log.close();
  });
});

describe('state', () => {
  test('producerState lists each producer with its last batch and open transaction', async () => {
    const log = await open();
    await log.appendBatches(batch(0, 3, { pid: 1, timestamp: 1000 }));
    await log.appendBatches(batch(0, 2, { pid: 2, timestamp: Date.now(), transactional: true }));
    const now = Date.now();
    const state = log.producerState();
    // Producer 1's batch is older than a day: expired.
    expect(state).toEqual([{ producerId: 2, producerEpoch: 0, lastSequence: 1, lastOffset: 4, lastTimestamp: expect.any(Number), currentTxnFirstOffset: 3 }]);
    expect(state[0]!.lastTimestamp).toBeLessThanOrEqual(now);
    await log.close();
  });

  test('an expired producer is forgotten: any sequence is accepted again, its old batches are not duplicates', async () => {
    const log = await open({ producerIdExpirationMs: 60_000 });
    const old = Date.now() - 120_000;
    await log.appendBatches(batch(0, 5, { timestamp: old }));
    expect(log.producerState()).toEqual([]);
    expect((await log.appendBatches(batch(0, 5, { timestamp: old }))).duplicate).toBe(false);
    expect((await log.appendBatches(batch(77))).duplicate).toBe(false);
    expect(log.endOffset).toBe(15);
    await log.close();
  });

  test('maxProducerIds: the least recently appending producers are forgotten first', async () => {
    const log = await open({ maxProducerIds: 3 });
    for (const pid of [1, 2, 3]) await log.appendBatches(batch(0, 1, { pid }));
    await log.appendBatches(batch(1, 1, { pid: 1 }));
    await log.appendBatches(batch(0, 1, { pid: 4 }));
    expect(log.producerState().map((p) => p.producerId)).toEqual([3, 1, 4]);
    await log.close();
  });

  test('maxProducerIds keeps the most recently appending producers over many appends, in recency order', async () => {
    const log = await open({ maxProducerIds: 5 });
    const seqs = new Map<number, number>();
    // The expected state: least recently appending first.
    let order: number[] = [];
    for (let i = 0; i < 300; i++) {
      const pid = 1 + ((i * 7 + (i >> 3)) % 9);
      const seq = seqs.get(pid) ?? 0;
      expect((await log.appendBatches(batch(seq, 1, { pid }))).duplicate).toBe(false);
      seqs.set(pid, seq + 1);
      order = [...order.filter((p) => p !== pid), pid].slice(-5);
      if (i % 25 === 24) expect(log.producerState().map((p) => p.producerId)).toEqual(order);
    }
    await log.close();
  });

  test('the recency order stays exact over thousands of appends of busy and returning producers', () => {
    const states = new ProducerStates({ expirationMs: 3_600_000, maxProducerIds: 40 });
    const draft = new ProducerDraft(states, Date.now());
    const seqs = new Map<number, number>();
    let order: number[] = [];
    // 5,000 appends: 45 producers taking turns (more than the 40 kept) between appends of 7 busy ones.
    for (let i = 0; i < 5000; i++) {
      const pid = i % 2 === 0 ? 1 + ((i >> 1) % 45) : 1 + (i % 7);
      const seq = seqs.get(pid) ?? 0;
      const data = batch(seq, 1, { pid });
      const c = checkBatch(data, 0, data.length);
      if (!c.ok) throw new Error(c.reason);
      draft.reset(Date.now());
      expect(draft.admit([c], data, i, false)).toBeUndefined();
      states.apply(draft);
      seqs.set(pid, seq + 1);
      order = [...order.filter((p) => p !== pid), pid].slice(-40);
      expect(states.list(Date.now()).map((p) => p.producerId)).toEqual(order);
    }
  });

  test("a producer that expires while its group is written is recorded again, with the group's batch", () => {
    const states = new ProducerStates({ expirationMs: 60_000, maxProducerIds: 10 });
    const now = Date.now();
    const draft = new ProducerDraft(states, now);
    const append = (seq: number, offset: number, timestamp: number) => {
      const data = batch(seq, 5, { timestamp });
      const c = checkBatch(data, 0, data.length);
      if (!c.ok) throw new Error(c.reason);
      return draft.admit([c], data, offset, false);
    };
    append(0, 0, now - 50_000);
    states.apply(draft);
    draft.reset(now);
    expect(append(5, 5, now)).toBeUndefined();
    // producerState() 20 s later, while the group is being written: the producer's last batch is 70 s old.
    expect(states.list(now + 20_000)).toEqual([]);
    states.apply(draft);
    expect(states.list(now)).toMatchObject([{ producerId: PID, lastSequence: 9, lastOffset: 9 }]);
    // Known again: a retry of the batch is a duplicate.
    draft.reset(now);
    expect(append(5, 10, now)).toEqual({ baseOffset: 5, lastOffset: 9 });
  });

  test('the rows of expired producers are freed when a later group is applied, not while one is drafted', () => {
    const states = new ProducerStates({ expirationMs: 1_000, maxProducerIds: 10 });
    const t0 = Date.now();
    const draft = new ProducerDraft(states, t0);
    const append = (pid: number, offset: number, at: number) => {
      const data = batch(0, 1, { pid, timestamp: at });
      const c = checkBatch(data, 0, data.length);
      if (!c.ok) throw new Error(c.reason);
      expect(draft.admit([c], data, offset, false)).toBeUndefined();
    };
    append(1, 0, t0);
    states.apply(draft);
    draft.reset(t0 + 70_000);
    append(2, 1, t0 + 70_000);
    // Expired, so left out of answers, but its row stays while the group is drafted.
    expect(states.list(t0 + 70_000).map((p) => p.producerId)).toEqual([]);
    expect(states.row(1)).toBeGreaterThanOrEqual(0);
    states.apply(draft);
    expect(states.row(1)).toBe(-1);
    expect(states.list(t0 + 70_000).map((p) => p.producerId)).toEqual([2]);
  });

  test('a group that needs more rows than the table has grows it, keeping the rows it marked and drafted', () => {
    const states = new ProducerStates({ expirationMs: 3_600_000, maxProducerIds: 10_000 });
    const now = Date.now();
    const draft = new ProducerDraft(states, now);
    const append = (pid: number, seq: number, offset: number) => {
      const data = batch(seq, 1, { pid, timestamp: now });
      const c = checkBatch(data, 0, data.length);
      if (!c.ok) throw new Error(c.reason);
      return draft.admit([c], data, offset, false);
    };
    for (let pid = 1; pid <= 10; pid++) append(pid, 0, pid - 1);
    states.apply(draft);
    const capacity = states.table.capacity;
    draft.reset(now);
    // Pending batches of the 10 known producers, then a draft of one, then more new producers than the table has rows.
    for (let pid = 1; pid <= 10; pid++) expect(append(pid, 1, 10 + pid - 1)).toBeUndefined();
    expect(append(3, 2, 20)).toBeUndefined();
    for (let pid = 11; pid <= 10 + capacity; pid++) expect(append(pid, 0, 21 + pid - 11)).toBeUndefined();
    expect(append(3, 2, 99_999)).toEqual({ baseOffset: 20, lastOffset: 20 });
    states.apply(draft);
    expect(states.table.capacity).toBeGreaterThan(capacity);
    const listed = states.list(now);
    expect(listed).toHaveLength(10 + capacity);
    expect(listed.find((p) => p.producerId === 3)).toMatchObject({ lastSequence: 2, lastOffset: 20 });
    expect(listed.find((p) => p.producerId === 7)).toMatchObject({ lastSequence: 1, lastOffset: 16 });
    expect(listed.at(-1)).toMatchObject({ producerId: 10 + capacity, lastSequence: 0, lastOffset: 20 + capacity });
  });

  test('a failed write leaves the state as it was: the retry is written, not taken for a duplicate', async () => {
    const log = await open();
    await log.appendBatches(batch(0));
    injectFault('pwrite', 'EIO', { partial: true });
    await expect(log.appendBatches(batch(5))).rejects.toMatchObject({ code: 'EIO' });
    expect(log.producerState()[0]!.lastSequence).toBe(4);
    const r = await log.appendBatches(batch(5));
    expect(r).toMatchObject({ baseOffset: 5, duplicate: false });
    expect(await values(log)).toEqual(Array.from({ length: 10 }, (_, i) => `s${i}`));
    await log.close();
  });

  test('plain batches (no producerId) are not tracked', async () => {
    const log = await open();
    await log.appendBatches(encodeBatch([{ value: 'a' }]));
    await log.appendBatches(encodeBatch([{ value: 'a' }]));
    await log.append([{ value: 'b' }]);
    expect(log.producerState()).toEqual([]);
    expect(log.endOffset).toBe(3);
    await log.close();
  });
});

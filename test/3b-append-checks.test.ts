// Validation of appended batches (issue #16 item 2), with Kafka's error
// meanings: ERECORDTOOLARGE, EINVALIDTIMESTAMP, ECORRUPT for record counts
// and offset deltas, LogAppendTime stamping. Every refusal writes nothing and
// the log goes on.
import { describe, expect, test } from 'vitest';
import { Log, type LogOptions } from '../src/log/log.js';
import { crc32c } from '../src/native.js';
import { checkBatch, decodeBatch, encodeBatch, readBatchHeader, type RecordInput } from '../src/segment/batch.js';
import { tempDir } from './helpers/tmp.js';

/** Rewrites the i32 at `at` of `batch` (a copy) and recomputes the CRC, as a buggy producer would send it. */
function withI32(batch: Buffer, at: number, value: number): Buffer {
  const out = Buffer.from(batch);
  out.writeInt32BE(value, at);
  out.writeUInt32BE(crc32c(out.subarray(21)), 17);
  return out;
}

/** Opens a log, runs `refuse` (expecting `code`), then checks nothing was written and the log still appends. */
async function refused(options: LogOptions, code: string, refuse: (log: Log) => Promise<unknown>): Promise<void> {
  const dir = await tempDir();
  const log = await Log.open(dir, options);
  await log.append([{ value: 'before' }]);
  const size = log.size;
  await expect(refuse(log)).rejects.toMatchObject({ code });
  expect([log.endOffset, log.size, log.failure]).toEqual([1, size, undefined]);
  await log.append([{ value: 'after' }]);
  const values: string[] = [];
  for await (const r of log.records(0)) values.push(r.value!.toString());
  expect(values).toEqual(['before', 'after']);
  await log.close();
}

describe('maxMessageBytes (ERECORDTOOLARGE)', () => {
  const big: RecordInput[] = [{ value: Buffer.alloc(2000, 1) }];

  test('append() of a batch over the limit', async () => {
    await refused({ maxMessageBytes: 2000 }, 'ERECORDTOOLARGE', (log) => log.append(big));
  });

  test('the default is Kafka\'s 1048588 bytes, batch overhead included', async () => {
    await refused({}, 'ERECORDTOOLARGE', (log) => log.append([{ value: Buffer.alloc(1024 * 1024, 1) }]));
    // A value that makes a batch of 1048588 bytes exactly (header and record overhead included) fits.
    const sizeWith = (n: number) => encodeBatch([{ value: Buffer.alloc(n) }]).length;
    const n = 1048588 - (sizeWith(1048000) - 1048000);
    expect(sizeWith(n)).toBe(1048588);
    const log = await Log.open(await tempDir());
    await log.append([{ value: Buffer.alloc(n) }]);
    await expect(log.append([{ value: Buffer.alloc(n + 1) }])).rejects.toMatchObject({ code: 'ERECORDTOOLARGE' });
    await log.close();
  });

  test('appendBatches: any batch of the buffer over the limit refuses the whole buffer', async () => {
    const buffer = Buffer.concat([encodeBatch([{ value: 'small' }]), encodeBatch(big)]);
    await refused({ maxMessageBytes: 2000 }, 'ERECORDTOOLARGE', (log) => log.appendBatches(buffer));
  });

  test('a follower (origin replication) takes what its leader took', async () => {
    const log = await Log.open(await tempDir(), { maxMessageBytes: 2000 });
    await log.appendBatches(encodeBatch(big), { origin: 'replication' });
    expect(log.endOffset).toBe(1);
    await log.close();
  });
});

describe('timestamp bounds (EINVALIDTIMESTAMP)', () => {
  const hour = 3600_000;

  test('append(): a record too old or too far ahead', async () => {
    const options = { messageTimestampBeforeMaxMs: hour, messageTimestampAfterMaxMs: hour };
    await refused(options, 'EINVALIDTIMESTAMP', (log) => log.append([{ value: 'a' }, { value: 'old', timestamp: Date.now() - 2 * hour }]));
    await refused(options, 'EINVALIDTIMESTAMP', (log) => log.append([{ value: 'new', timestamp: Date.now() + 2 * hour }, { value: 'b' }]));
    // options.timestamp is the records' default timestamp: it is checked too.
    await refused(options, 'EINVALIDTIMESTAMP', (log) => log.append([{ value: 'c' }], { timestamp: 1 }));
    const log = await Log.open(await tempDir(), options);
    await log.append([{ value: 'in', timestamp: Date.now() - hour / 2 }, { value: 'now' }]);
    await log.close();
  });

  test('appendBatches: every record of an uncompressed batch is checked, not just the first and the max', async () => {
    const now = Date.now();
    // The old record sits in the middle: neither baseTimestamp nor maxTimestamp shows it.
    const batch = encodeBatch([{ value: 'a', timestamp: now }, { value: 'b', timestamp: now - 2 * hour }, { value: 'c', timestamp: now + 1 }]);
    await refused({ messageTimestampBeforeMaxMs: hour }, 'EINVALIDTIMESTAMP', (log) => log.appendBatches(Buffer.concat([encodeBatch([{ value: 'ok' }]), batch])));
  });

  test('appendBatches: a compressed batch is judged by its header\'s timestamps', async () => {
    const now = Date.now();
    const ahead = encodeBatch([{ value: 'a', timestamp: now }, { value: 'b', timestamp: now + 2 * hour }], { compression: 'gzip' });
    await refused({ messageTimestampAfterMaxMs: hour }, 'EINVALIDTIMESTAMP', (log) => log.appendBatches(ahead));
    const behind = encodeBatch([{ value: 'a', timestamp: now - 2 * hour }, { value: 'b', timestamp: now }], { compression: 'gzip' });
    await refused({ messageTimestampBeforeMaxMs: hour }, 'EINVALIDTIMESTAMP', (log) => log.appendBatches(behind));
  });

  test('unbounded by default', async () => {
    const log = await Log.open(await tempDir());
    await log.appendBatches(encodeBatch([{ value: 'a', timestamp: 5 }]));
    await log.append([{ value: 'b', timestamp: Date.now() + 1000 * hour }]);
    await log.close();
  });

  test('not applied under LogAppendTime (the stamp replaces the timestamps), nor to a follower', async () => {
    const stamped = await Log.open(await tempDir(), { messageTimestampBeforeMaxMs: 1, messageTimestampType: 'LogAppendTime' });
    await stamped.appendBatches(encodeBatch([{ value: 'a', timestamp: 5 }]));
    await stamped.append([{ value: 'b', timestamp: 5 }]);
    await stamped.close();
    const follower = await Log.open(await tempDir(), { messageTimestampBeforeMaxMs: 1 });
    await follower.appendBatches(encodeBatch([{ value: 'a', timestamp: 5 }]), { origin: 'replication' });
    await follower.close();
  });
});

describe('record counts and offset deltas (ECORRUPT)', () => {
  const good = encodeBatch([{ value: 'a' }, { value: 'b' }, { value: 'c' }]);

  test('a count that is not the records present', async () => {
    await refused({}, 'ECORRUPT', (log) => log.appendBatches(withI32(good, 57, 2)));
    await refused({}, 'ECORRUPT', (log) => log.appendBatches(withI32(withI32(good, 57, 4), 23, 3)));
  });

  test('a last offset delta other than count - 1, and an empty batch', async () => {
    await refused({}, 'ECORRUPT', (log) => log.appendBatches(withI32(good, 23, 5)));
    await refused({}, 'ECORRUPT', (log) => log.appendBatches(withI32(withI32(good, 57, 0), 23, 0)));
  });

  test('a record whose offset delta is out of step', async () => {
    const batch = Buffer.from(good);
    // Records are [length][attributes][timestampDelta][offsetDelta]...: the second record's offset delta, zigzag 1 -> 2.
    const first = 61;
    const second = first + 1 + batch[first]! / 2;
    expect(batch[second + 3]).toBe(2);
    batch[second + 3] = 4;
    batch.writeUInt32BE(crc32c(batch.subarray(21)), 17);
    await refused({}, 'ECORRUPT', (log) => log.appendBatches(batch));
  });

  test('compressed batches: the header\'s count and last offset delta must agree', async () => {
    const gz = encodeBatch([{ value: 'a' }, { value: 'b' }], { compression: 'gzip' });
    await refused({}, 'ECORRUPT', (log) => log.appendBatches(withI32(gz, 23, 4)));
  });

  test('a follower keeps a batch whose last offset delta passes its count (Kafka compaction leaves those)', async () => {
    const log = await Log.open(await tempDir());
    await log.appendBatches(withI32(good, 23, 5), { origin: 'replication' });
    expect(log.endOffset).toBe(6);
    await log.close();
  });
});

describe("messageTimestampType 'LogAppendTime'", () => {
  test('append() stamps its batch: attribute bit 3, maxTimestamp = the append time, CRC valid', async () => {
    const log = await Log.open(await tempDir(), { messageTimestampType: 'LogAppendTime' });
    const before = Date.now();
    const r = await log.append([{ value: 'a', timestamp: 5 }, { value: 'b', timestamp: 6 }]);
    expect(r.logAppendTime).toBeGreaterThanOrEqual(before);
    const { bytes } = await log.read(0);
    const h = readBatchHeader(bytes);
    expect([h.attributes & 8, h.timestampType, h.maxTimestamp]).toEqual([8, 'logAppend', r.logAppendTime]);
    expect(checkBatch(bytes, 0, bytes.length).ok).toBe(true);
    expect(decodeBatch(bytes).map((x) => x.timestamp)).toEqual([r.logAppendTime, r.logAppendTime]);
    await log.close();
  });

  test('appendBatches stamps every batch in our copy (CRC recomputed once), the caller\'s buffer untouched', async () => {
    const log = await Log.open(await tempDir(), { messageTimestampType: 'LogAppendTime' });
    const buffer = Buffer.concat([encodeBatch([{ value: 'a', timestamp: 5 }]), encodeBatch([{ value: 'b', timestamp: 6 }], { compression: 'gzip' })]);
    const copy = Buffer.from(buffer);
    const r = await log.appendBatches(buffer);
    expect(buffer.equals(copy)).toBe(true);
    const { bytes } = await log.read(0);
    for (let p = 0; p < bytes.length; p += readBatchHeader(bytes, p).size) {
      const h = readBatchHeader(bytes, p);
      expect([h.timestampType, h.maxTimestamp]).toEqual(['logAppend', r.logAppendTime]);
      expect(checkBatch(bytes, p, bytes.length).ok).toBe(true);
    }
    // logAppendTime given: that time; a follower: the leader's stamp kept.
    expect((await log.appendBatches(encodeBatch([{ value: 'c' }]), { logAppendTime: 42 })).logAppendTime).toBe(42);
    const leaders = encodeBatch([{ value: 'd', timestamp: 7 }]);
    expect((await log.appendBatches(leaders, { origin: 'replication' })).logAppendTime).toBe(-1);
    expect((await log.read(3)).bytes.subarray(8).equals(leaders.subarray(8))).toBe(true);
    await log.close();
  });
});

describe('options', () => {
  test('bad values are refused before anything touches the disk', async () => {
    const dir = await tempDir();
    await expect(Log.open(dir, { maxMessageBytes: 10 })).rejects.toThrow(RangeError);
    await expect(Log.open(dir, { maxMessageBytes: 'big' as never })).rejects.toThrow(TypeError);
    await expect(Log.open(dir, { messageTimestampBeforeMaxMs: -1 })).rejects.toThrow(RangeError);
    await expect(Log.open(dir, { messageTimestampAfterMaxMs: 1.5 })).rejects.toThrow(RangeError);
    await expect(Log.open(dir, { messageTimestampType: 'AppendTime' as never })).rejects.toThrow(/CreateTime/);
    const log = await Log.open(dir);
    await expect(log.append([{ value: 'a' }], { leaderEpoch: -1 })).rejects.toThrow(RangeError);
    await expect(log.appendBatches(encodeBatch([{ value: 'a' }]), { origin: 'leader' as never })).rejects.toThrow(RangeError);
    await expect(log.appendBatches(encodeBatch([{ value: 'a' }]), { origin: 'replication', leaderEpoch: 1 })).rejects.toThrow(RangeError);
    expect(log.endOffset).toBe(0);
    await log.close();
  });
});

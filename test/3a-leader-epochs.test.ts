// Leader epochs (issue #16 item 1): stamping, the leader-epoch-checkpoint in
// Kafka's text layout, endOffsetForEpoch with Kafka's semantics, trimming by
// truncation and retention, rebuilding from batch headers, crash leftovers.
import { readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { Log, type LogOptions } from '../src/log/log.js';
import { LogStore } from '../src/store/store.js';
import { checkBatch, encodeBatch, readBatchHeader } from '../src/segment/batch.js';
import { File } from '../src/native.js';
import { injectFault } from './helpers/faults.js';
import { tempDir } from './helpers/tmp.js';
import { until } from './helpers/until.js';

const CHECKPOINT = 'leader-epoch-checkpoint';
const checkpoint = (dir: string) => readFile(join(dir, CHECKPOINT), 'utf8');
const three = (tag: string) => [{ value: `${tag}-a` }, { value: `${tag}-b` }, { value: `${tag}-c` }];

afterEach(() => {
  for (const p of ['pwrite', 'fsync', 'fdatasync', 'ftruncate', 'open'] as const) injectFault(p, null);
});

/** A log with epochs 0 (offsets 0-2), 2 (3-5) and 5 (6-8), one batch each. */
async function gappy(dir: string, options?: LogOptions): Promise<Log> {
  const log = await Log.open(dir, options);
  await log.append(three('e0'), { leaderEpoch: 0 });
  await log.append(three('e2'), { leaderEpoch: 2 });
  await log.append(three('e5'), { leaderEpoch: 5 });
  return log;
}

describe('stamping', () => {
  test('append({ leaderEpoch }) writes it into the batch header, CRC still valid', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir);
    await log.append([{ value: 'x' }], { leaderEpoch: 9 });
    const { bytes } = await log.read(0);
    expect(readBatchHeader(bytes).partitionLeaderEpoch).toBe(9);
    expect(checkBatch(bytes, 0, bytes.length).ok).toBe(true);
    // Without the option: as before, no epoch (-1), and nothing tracked.
    await log.append([{ value: 'y' }]);
    expect(readBatchHeader((await log.read(1)).bytes).partitionLeaderEpoch).toBe(-1);
    expect(log.latestEpoch).toBe(9);
    await log.close();
  });

  test('appendBatches({ leaderEpoch }) stamps every batch of the buffer, not the caller\'s copy', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir);
    const buffer = Buffer.concat([encodeBatch([{ value: 'a' }, { value: 'b' }]), encodeBatch([{ value: 'c' }], { partitionLeaderEpoch: 1 })]);
    const before = Buffer.from(buffer);
    await log.appendBatches(buffer, { leaderEpoch: 4 });
    expect(buffer.equals(before)).toBe(true);
    const { bytes } = await log.read(0);
    const first = readBatchHeader(bytes, 0);
    const second = readBatchHeader(bytes, first.size);
    expect([first.partitionLeaderEpoch, second.partitionLeaderEpoch]).toEqual([4, 4]);
    expect(checkBatch(bytes, 0, bytes.length).ok && checkBatch(bytes, first.size, bytes.length).ok).toBe(true);
    expect(log.latestEpoch).toBe(4);
    expect(log.endOffsetForEpoch(4)).toEqual({ epoch: 4, endOffset: 3 });
    await log.close();
  });

  test('without leaderEpoch, appendBatches keeps and tracks the epochs the batches carry (a follower)', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir);
    const buffer = Buffer.concat([
      encodeBatch([{ value: 'a' }], { partitionLeaderEpoch: -1 }),
      encodeBatch([{ value: 'b' }], { partitionLeaderEpoch: 3 }),
      encodeBatch([{ value: 'c' }], { partitionLeaderEpoch: 3 }),
      encodeBatch([{ value: 'd' }], { partitionLeaderEpoch: 7 }),
    ]);
    await log.appendBatches(buffer, { origin: 'replication' });
    // Each batch as the leader wrote it but for its base offset.
    const stored = (await log.read(0)).bytes;
    for (let p = 0; p < buffer.length; p += readBatchHeader(buffer, p).size) {
      expect(stored.subarray(p + 8, p + readBatchHeader(buffer, p).size).equals(buffer.subarray(p + 8, p + readBatchHeader(buffer, p).size))).toBe(true);
    }
    expect(await checkpoint(dir)).toBe('0\n2\n3 1\n7 3\n');
    expect(log.latestEpoch).toBe(7);
    await log.close();
  });
});

describe('endOffsetForEpoch', () => {
  test('over gaps (epochs 0, 2, 5), as Kafka answers OffsetsForLeaderEpoch', async () => {
    const dir = await tempDir();
    const empty = await Log.open(await tempDir());
    expect(empty.latestEpoch).toBe(-1);
    expect(empty.endOffsetForEpoch(0)).toEqual({ epoch: -1, endOffset: -1 });
    await empty.close();
    const log = await gappy(dir);
    expect(log.latestEpoch).toBe(5);
    const ask = (e: number) => log.endOffsetForEpoch(e);
    expect(ask(0)).toEqual({ epoch: 0, endOffset: 3 });
    expect(ask(1)).toEqual({ epoch: 0, endOffset: 3 });
    expect(ask(2)).toEqual({ epoch: 2, endOffset: 6 });
    expect(ask(4)).toEqual({ epoch: 2, endOffset: 6 });
    expect(ask(5)).toEqual({ epoch: 5, endOffset: 9 });
    expect(ask(6)).toEqual({ epoch: -1, endOffset: -1 });
    expect(ask(-1)).toEqual({ epoch: -1, endOffset: -1 });
    // The latest epoch ends at the log end, wherever that is now.
    await log.append([{ value: 'more' }]);
    expect(ask(5)).toEqual({ epoch: 5, endOffset: 10 });
    expect(() => log.endOffsetForEpoch(-2)).toThrow(RangeError);
    expect(() => log.endOffsetForEpoch(1.5)).toThrow(RangeError);
    await log.close();
    expect(() => log.endOffsetForEpoch(0)).toThrow(expect.objectContaining({ code: 'ECLOSED' }));
  });

  test('the checkpoint holds Kafka\'s text: version 0, the count, then "epoch startOffset" lines', async () => {
    const dir = await tempDir();
    const log = await gappy(dir);
    expect(await checkpoint(dir)).toBe('0\n3\n0 0\n2 3\n5 6\n');
    // The same epoch again starts nothing new.
    await log.append(three('again'), { leaderEpoch: 5 });
    expect(await checkpoint(dir)).toBe('0\n3\n0 0\n2 3\n5 6\n');
    await log.close();
    const reopened = await Log.open(dir);
    expect(reopened.endOffsetForEpoch(2)).toEqual({ epoch: 2, endOffset: 6 });
    expect(reopened.latestEpoch).toBe(5);
    await reopened.close();
  });
});

describe('an epoch below the latest', () => {
  test('is refused whole (EFENCEDLEADEREPOCH), writes nothing, and the log goes on', async () => {
    const dir = await tempDir();
    const log = await gappy(dir);
    await expect(log.append([{ value: 'stale' }], { leaderEpoch: 4 })).rejects.toMatchObject({ code: 'EFENCEDLEADEREPOCH' });
    // A buffer whose second batch goes back is refused whole, whatever the first one is.
    const mixed = Buffer.concat([encodeBatch([{ value: 'a' }], { partitionLeaderEpoch: 6 }), encodeBatch([{ value: 'b' }], { partitionLeaderEpoch: 5 })]);
    await expect(log.appendBatches(mixed)).rejects.toMatchObject({ code: 'EFENCEDLEADEREPOCH' });
    await expect(log.appendBatches(encodeBatch([{ value: 'c' }]), { leaderEpoch: 1 })).rejects.toMatchObject({ code: 'EFENCEDLEADEREPOCH' });
    expect(log.endOffset).toBe(9);
    expect(log.latestEpoch).toBe(5);
    expect(await checkpoint(dir)).toBe('0\n3\n0 0\n2 3\n5 6\n');
    await log.append([{ value: 'ok' }], { leaderEpoch: 5 });
    expect(log.endOffset).toBe(10);
    await log.close();
  });

  test('queued together, only the append that goes back is refused; the epoch is judged in append order', async () => {
    const log = await Log.open(await tempDir());
    const results = await Promise.allSettled([
      log.append([{ value: 'a' }], { leaderEpoch: 1 }),
      log.append([{ value: 'b' }], { leaderEpoch: 3 }),
      log.append([{ value: 'c' }], { leaderEpoch: 2 }),
      log.append([{ value: 'd' }], { leaderEpoch: 3 }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'EFENCEDLEADEREPOCH' });
    expect(log.endOffset).toBe(3);
    expect(log.endOffsetForEpoch(1)).toEqual({ epoch: 1, endOffset: 1 });
    await log.close();
  });
});

describe('removing records trims the epochs', () => {
  test('truncateTo drops epochs from the end (the cut batch goes whole), durably', async () => {
    const dir = await tempDir();
    const log = await gappy(dir);
    // Offset 4 is in epoch 2's batch (3-5): the log ends at 3, epoch 2 is gone.
    expect(await log.truncateTo(4)).toBe(3);
    expect(await checkpoint(dir)).toBe('0\n1\n0 0\n');
    expect(log.latestEpoch).toBe(0);
    expect(log.endOffsetForEpoch(0)).toEqual({ epoch: 0, endOffset: 3 });
    expect(log.endOffsetForEpoch(2)).toEqual({ epoch: -1, endOffset: -1 });
    // A follower then takes its leader's epoch 1, older than the epochs it cut.
    await log.append(three('e1'), { leaderEpoch: 1 });
    expect(await checkpoint(dir)).toBe('0\n2\n0 0\n1 3\n');
    await log.close();
  });

  test('deleteRecordsBefore keeps the epoch that holds the new start, moved to it (Kafka\'s truncateFromStart)', async () => {
    const dir = await tempDir();
    const log = await gappy(dir);
    await log.deleteRecordsBefore(4);
    expect(await checkpoint(dir)).toBe('0\n2\n2 4\n5 6\n');
    expect(log.endOffsetForEpoch(2)).toEqual({ epoch: 2, endOffset: 6 });
    // Below the first epoch it knows: the requested epoch with that first epoch's start.
    expect(log.endOffsetForEpoch(0)).toEqual({ epoch: 0, endOffset: 4 });
    // Every record gone: the latest epoch stays, at the (empty) log's start.
    await log.deleteRecordsBefore(9);
    expect(await checkpoint(dir)).toBe('0\n1\n5 9\n');
    expect(log.endOffsetForEpoch(5)).toEqual({ epoch: 5, endOffset: 9 });
    await log.close();
    // As Kafka's load does, an epoch that starts at the log end holds no data and is dropped on open.
    const reopened = await Log.open(dir);
    expect(reopened.latestEpoch).toBe(-1);
    expect(await checkpoint(dir)).toBe('0\n0\n');
    await reopened.close();
  });

  test('retention removing whole segments moves the first epoch to the new start', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir);
    for (const [epoch, tag] of [
      [0, 'a'],
      [2, 'b'],
      [5, 'c'],
    ] as const) {
      await log.append(three(tag), { leaderEpoch: epoch });
      await log.roll();
    }
    expect(log.segmentCount).toBe(4);
    // Keeps the newest segment with records (offsets 6-8) and the empty active one.
    expect(await log.applyRetention({ retentionBytes: 1 })).toBe(2);
    expect(log.startOffset).toBe(6);
    expect(await checkpoint(dir)).toBe('0\n1\n5 6\n');
    await log.close();
    const log2 = await gappy(await tempDir());
    await log2.roll();
    await log2.append(three('d'), { leaderEpoch: 6 });
    await log2.roll();
    expect(await log2.applyRetention({ retentionBytes: 1 })).toBe(1);
    expect(log2.startOffset).toBe(9);
    // The segment removed held epochs 0, 2 and 5; the new start is epoch 6's first offset.
    expect(await checkpoint(log2.dir)).toBe('0\n1\n6 9\n');
    expect(log2.endOffsetForEpoch(5)).toEqual({ epoch: 5, endOffset: 9 });
    await log2.close();
  });
});

describe('open', () => {
  test('a missing or damaged checkpoint is rebuilt from the batch headers', async () => {
    const dir = await tempDir();
    const log = await gappy(dir, { segmentBytes: 1024 });
    await log.roll();
    await log.append(three('e7'), { leaderEpoch: 7 });
    await log.close();
    const expected = '0\n4\n0 0\n2 3\n5 6\n7 9\n';
    expect(await checkpoint(dir)).toBe(expected);
    for (const damage of [null, 'garbage', '0\n2\n5 6\n2 3\n', '0\n3\n0 0\n', '1\n0\n', '0\n1\n-1 0\n']) {
      if (damage === null) await rm(join(dir, CHECKPOINT));
      else await writeFile(join(dir, CHECKPOINT), damage);
      const reopened = await Log.open(dir);
      expect(reopened.latestEpoch).toBe(7);
      expect(reopened.endOffsetForEpoch(3)).toEqual({ epoch: 2, endOffset: 6 });
      expect(await checkpoint(dir)).toBe(expected);
      await reopened.close();
    }
  });

  test('epochs past the log end (a crash after the checkpoint, before the batch) are dropped', async () => {
    const dir = await tempDir();
    const log = await gappy(dir);
    await log.close();
    await writeFile(join(dir, CHECKPOINT), '0\n5\n0 0\n2 3\n5 6\n8 9\n9 12\n');
    const reopened = await Log.open(dir);
    expect(reopened.latestEpoch).toBe(5);
    expect(await checkpoint(dir)).toBe('0\n3\n0 0\n2 3\n5 6\n');
    await reopened.close();
  });

  test('after a crash that tore the last batch, recovery cuts it and its epoch goes too', async () => {
    const dir = await tempDir();
    const log = await gappy(dir);
    await log.close();
    // As if the process died mid-write of the epoch-5 batch: no clean-shutdown marker, a torn tail.
    await rm(join(dir, '.clean-shutdown'));
    const file = join(dir, '00000000000000000000.log');
    await truncate(file, (await stat(file)).size - 5);
    const reopened = await Log.open(dir);
    expect(reopened.endOffset).toBe(6);
    expect(reopened.latestEpoch).toBe(2);
    expect(reopened.endOffsetForEpoch(2)).toEqual({ epoch: 2, endOffset: 6 });
    expect(await checkpoint(dir)).toBe('0\n2\n0 0\n2 3\n');
    await reopened.close();
  });

  test('a new log starts with an empty checkpoint; a log without one (older, or lost) is walked once', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir);
    expect(await checkpoint(dir)).toBe('0\n0\n');
    await log.append([{ value: 'x' }], { leaderEpoch: 2 });
    await log.close();
    await rm(join(dir, CHECKPOINT));
    await (await Log.open(dir)).close();
    expect(await checkpoint(dir)).toBe('0\n1\n2 0\n');
    // Found on the next open: neither walked nor written again (a write would be a new file, renamed in).
    const before = await stat(join(dir, CHECKPOINT));
    await (await Log.open(dir)).close();
    expect((await stat(join(dir, CHECKPOINT))).ino).toBe(before.ino);
  });
});

describe('visibility', () => {
  test("under 'always' a new epoch shows once its batch is published (durable), not while its fdatasync runs", async () => {
    const log = await Log.open(await tempDir(), { flush: 'always' });
    const { datasync } = File.prototype;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let syncing = false;
    File.prototype.datasync = async function (this: File) {
      syncing = true;
      await held;
      return datasync.call(this);
    };
    try {
      const appended = log.append([{ value: 'x' }], { leaderEpoch: 3 });
      await until(() => syncing);
      // The checkpoint already has it (written before the batch); the log does not show it yet.
      expect(await checkpoint(log.dir)).toBe('0\n1\n3 0\n');
      expect([log.latestEpoch, log.endOffset]).toEqual([-1, 0]);
      expect(log.endOffsetForEpoch(3)).toEqual({ epoch: -1, endOffset: -1 });
      release();
      await appended;
      expect(log.latestEpoch).toBe(3);
      expect(log.endOffsetForEpoch(3)).toEqual({ epoch: 3, endOffset: 1 });
    } finally {
      File.prototype.datasync = datasync;
    }
    await log.close();
  });
});

describe('failures', () => {
  test('a failed write of a batch that starts an epoch takes the epoch back', async () => {
    const dir = await tempDir();
    const log = await gappy(dir);
    // The checkpoint write goes through (skip 1); the batch's write fails.
    injectFault('pwrite', 'EIO', { skip: 1, partial: true });
    await expect(log.append([{ value: 'x' }], { leaderEpoch: 8 })).rejects.toMatchObject({ code: 'EIO' });
    expect(log.failure).toBeUndefined();
    expect(log.latestEpoch).toBe(5);
    expect(await checkpoint(dir)).toBe('0\n3\n0 0\n2 3\n5 6\n');
    await log.append([{ value: 'y' }], { leaderEpoch: 6 });
    expect(await checkpoint(dir)).toBe('0\n4\n0 0\n2 3\n5 6\n6 9\n');
    await log.close();
  });
});

describe('LogStore', () => {
  test('a store\'s logs keep their epochs in their own directories, across reopen', async () => {
    const dataDir = await tempDir();
    const store = await LogStore.open(dataDir);
    const log = await store.log('t-0');
    await log.append(three('a'), { leaderEpoch: 3 });
    await log.append(three('b'), { leaderEpoch: 4 });
    await store.close();
    expect(await checkpoint(join(dataDir, 't-0'))).toBe('0\n2\n3 0\n4 3\n');
    const again = await LogStore.open(dataDir);
    const reopened = await again.log('t-0');
    expect(reopened.endOffsetForEpoch(3)).toEqual({ epoch: 3, endOffset: 3 });
    await again.close();
  });
});

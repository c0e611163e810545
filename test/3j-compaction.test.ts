// Log compaction (issue #17): the options of a compacted log and its refusal
// of records without a key.
import { describe, expect, test } from 'vitest';
import { Log, type LogOptions } from '../src/log/log.js';
import { encodeBatch } from '../src/segment/batch.js';
import { encodeControlBatch } from '../src/segment/control-record.js';
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

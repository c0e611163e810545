// Producer snapshots (issue #15 item 2): `<offset>.snapshot` in Kafka's
// layout (checked against bytes built here) on roll and clean close; open
// loads the latest good one at or below the recovered end and replays the
// batch headers after it, so duplicates are recognised after a clean close
// and after a crash; truncateTo and retention keep snapshots consistent; a
// clean reopen opens no sealed segment for it.
import { cp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CLEAN_SHUTDOWN_FILE, snapshotFileName, snapshotOffsets } from '../src/layout.js';
import { Log, type LogOptions } from '../src/log/log.js';
import { encodeBatch } from '../src/segment/batch.js';
import { snapshotBytes } from './helpers/kafka-bytes.js';
import { openFilesUnder, tempDir } from './helpers/tmp.js';

function batch(pid: number, seq: number, count = 5, o: { epoch?: number; timestamp?: number; transactional?: boolean } = {}): Buffer {
  const records = Array.from({ length: count }, (_, i) => ({ value: `p${pid}-${seq + i}`, timestamp: o.timestamp }));
  return encodeBatch(records, { producerId: pid, producerEpoch: o.epoch ?? 0, baseSequence: seq, transactional: o.transactional });
}

async function snapshots(dir: string): Promise<number[]> {
  return snapshotOffsets(await readdir(dir));
}

/** Every batch of the producer's last 5 is a duplicate with its offsets, and the next sequence is taken. */
async function expectWindow(log: Log, pid: number, lastSeqs: number[], firstOffsets: number[]): Promise<void> {
  for (let i = 0; i < lastSeqs.length; i++) {
    const r = await log.appendBatches(batch(pid, lastSeqs[i]!));
    expect(r).toMatchObject({ baseOffset: firstOffsets[i], duplicate: true });
  }
  await expect(log.appendBatches(batch(pid, lastSeqs[0]! - 5))).rejects.toMatchObject({ code: 'EOUTOFORDERSEQUENCE' });
}

describe('snapshot files', () => {
  test("clean close writes the state at the log end in Kafka's ProducerSnapshot layout, one entry per retained batch", async () => {
    const dir = await tempDir();
    const log = await Log.open(dir);
    const t = Date.now();
    for (let i = 0; i < 6; i++) await log.appendBatches(batch(7, i * 5, 5, { timestamp: t + i, epoch: 2 }));
    await log.appendBatches(batch(8, 0, 3, { timestamp: t + 10, transactional: true }));
    await log.appendControl({ producerId: 9, producerEpoch: 1, type: 'commit', coordinatorEpoch: 4, timestamp: t + 20 });
    await log.close();
    expect(await snapshots(dir)).toEqual([34]);
    const rows = [1, 2, 3, 4, 5].map((i) => ({ producerId: 7, epoch: 2, lastSequence: i * 5 + 4, lastOffset: i * 5 + 4, offsetDelta: 4, timestamp: t + i, coordinatorEpoch: -1, currentTxnFirstOffset: -1 }));
    rows.push({ producerId: 8, epoch: 0, lastSequence: 2, lastOffset: 32, offsetDelta: 2, timestamp: t + 10, coordinatorEpoch: -1, currentTxnFirstOffset: 30 });
    rows.push({ producerId: 9, epoch: 1, lastSequence: -1, lastOffset: -1, offsetDelta: 0, timestamp: t + 20, coordinatorEpoch: 4, currentTxnFirstOffset: -1 });
    expect(await readFile(join(dir, snapshotFileName(34)))).toEqual(snapshotBytes(rows));
  });

  test('a snapshot at each new segment base on roll; retention drops those below the first segment, truncateTo those above the end', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { segmentBytes: 1024, fileDeleteDelayMs: 0 });
    const ends: number[] = [];
    for (let i = 0; i < 12; i++) {
      await log.appendBatches(batch(1, i * 5));
      await log.roll();
      ends.push(log.endOffset);
    }
    expect(await snapshots(dir)).toEqual(ends);
    await log.deleteRecordsBefore(30);
    expect(await snapshots(dir)).toEqual(ends.filter((o) => o >= 30));
    await log.truncateTo(45);
    expect(await snapshots(dir)).toEqual(ends.filter((o) => o >= 30 && o <= 45));
    // State as if the batches after 45 were never written: sequence 45 is next, 20-40 duplicates.
    await expectWindow(log, 1, [20, 25, 30, 35, 40], [20, 25, 30, 35, 40]);
    expect((await log.appendBatches(batch(1, 45))).baseOffset).toBe(45);
    await log.close();
  });
});

describe("Kafka's snapshots", () => {
  test('a snapshot as Kafka writes it (one entry per producer, its last batch) is read: that batch is a duplicate, the next sequence follows', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir);
    const t = Date.now();
    await log.appendBatches(batch(5, 0, 5, { timestamp: t }));
    await log.appendBatches(batch(5, 5, 5, { timestamp: t, epoch: 0 }));
    await log.close();
    // Kafka's entry for producer 5: its last batch only (sequences 5-9 at offsets 5-9).
    const kafka = snapshotBytes([{ producerId: 5, epoch: 0, lastSequence: 9, lastOffset: 9, offsetDelta: 4, timestamp: t, coordinatorEpoch: -1, currentTxnFirstOffset: -1 }]);
    await writeFile(join(dir, snapshotFileName(10)), kafka);
    const reopened = await Log.open(dir);
    expect(await reopened.appendBatches(batch(5, 5))).toMatchObject({ baseOffset: 5, lastOffset: 9, duplicate: true });
    // Kafka's state knows only the last batch: the one before is out of sequence, not a duplicate.
    await expect(reopened.appendBatches(batch(5, 0))).rejects.toMatchObject({ code: 'EOUTOFORDERSEQUENCE' });
    expect((await reopened.appendBatches(batch(5, 10))).baseOffset).toBe(10);
    await reopened.close();
  });
});

describe('duplicates survive', () => {
  async function fill(options?: LogOptions): Promise<{ dir: string; log: Log }> {
    const dir = await tempDir();
    const log = await Log.open(dir, { segmentBytes: 1024, ...options });
    // Producer 1 across several segments, producer 2 interleaved.
    for (let i = 0; i < 20; i++) {
      await log.appendBatches(batch(1, i * 5));
      if (i % 3 === 0) await log.appendBatches(batch(2, (i / 3) * 5, 5));
    }
    return { dir, log };
  }
  const windowOf1 = async (log: Log) => {
    const firsts: number[] = [];
    for await (const b of log.batches(log.startOffset)) if (b.header.producerId === 1) firsts.push(b.header.baseOffset);
    return firsts.slice(-5);
  };

  test('a clean close: every batch of the window, with no sealed segment opened at reopen', async () => {
    const { dir, log } = await fill();
    const firsts = await windowOf1(log);
    await log.close();
    const reopened = await Log.open(dir, { segmentBytes: 1024 });
    const open = (await openFilesUnder(dir)).filter((p) => p.endsWith('.log'));
    expect(open).toHaveLength(1);
    await expectWindow(reopened, 1, [75, 80, 85, 90, 95], firsts);
    expect((await reopened.appendBatches(batch(1, 100))).duplicate).toBe(false);
    await reopened.close();
  });

  test('a crash (the files as a kill leaves them): the replay from the last roll snapshot restores the window', async () => {
    const { dir, log } = await fill();
    const firsts = await windowOf1(log);
    const copy = await tempDir();
    await cp(dir, copy, { recursive: true });
    await log.close();
    expect((await readdir(copy)).includes(CLEAN_SHUTDOWN_FILE)).toBe(false);
    const reopened = await Log.open(copy, { segmentBytes: 1024 });
    await expectWindow(reopened, 1, [75, 80, 85, 90, 95], firsts);
    await reopened.close();
  });

  test('a damaged latest snapshot: open falls back to an older one (or the start) and removes it', async () => {
    const { dir, log } = await fill();
    const firsts = await windowOf1(log);
    await log.close();
    const [latest] = (await snapshots(dir)).slice(-1);
    await writeFile(join(dir, snapshotFileName(latest!)), Buffer.from('not a snapshot'));
    const reopened = await Log.open(dir, { segmentBytes: 1024 });
    await expectWindow(reopened, 1, [75, 80, 85, 90, 95], firsts);
    expect(await snapshots(dir)).not.toContain(latest);
    await reopened.close();
    for (const o of await snapshots(dir)) await rm(join(dir, snapshotFileName(o)));
    const again = await Log.open(dir, { segmentBytes: 1024 });
    await expectWindow(again, 1, [75, 80, 85, 90, 95], firsts);
    await again.close();
  });

  test('a snapshot above the recovered end (a crash after truncateTo cut the log) is removed at open', async () => {
    const { dir, log } = await fill();
    await log.close();
    const stray = 1_000_000;
    await writeFile(join(dir, snapshotFileName(stray)), await readFile(join(dir, snapshotFileName((await snapshots(dir)).at(-1)!))));
    const reopened = await Log.open(dir, { segmentBytes: 1024 });
    expect(await snapshots(dir)).not.toContain(stray);
    await reopened.close();
  });
});

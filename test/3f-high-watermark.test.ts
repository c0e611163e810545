// The high watermark (issue #15 item 4): 'auto' at the log end (the durable
// end under flush 'always'), 'manual' moved by setHighWatermark (clamped,
// forward only, lowered by truncateTo, raised by a start offset past it), its
// start on reopen from the store's replication-offset-checkpoint or, for a
// standalone log, the recovered end; the last stable offset beside it.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { SeglogError } from '../src/errors.js';
import { Log, type LogOptions } from '../src/log/log.js';
import { File } from '../src/native.js';
import { LogStore } from '../src/store/store.js';
import { tempDir } from './helpers/tmp.js';
import { until } from './helpers/until.js';

const CHECKPOINT = 'replication-offset-checkpoint';

/** A log with `batches` batches of `perBatch` records each (offsets 0, perBatch, 2 * perBatch... start them). */
async function filled(dir: string, batches: number, perBatch: number, options?: LogOptions): Promise<Log> {
  const log = await Log.open(dir, options);
  for (let b = 0; b < batches; b++) await log.append(Array.from({ length: perBatch }, (_, i) => ({ value: `v${b * perBatch + i}` })));
  return log;
}

describe("highWatermark 'auto' (default)", () => {
  test('follows the log end through appends and truncation; the LSO with no transactions is the HW; setHighWatermark is refused', async () => {
    const log = await filled(await tempDir(), 3, 2);
    expect(log.highWatermark).toBe(6);
    expect(log.lastStableOffset).toBe(6);
    await log.append([{ value: 'x' }]);
    expect(log.highWatermark).toBe(7);
    await log.truncateTo(4);
    expect([log.endOffset, log.highWatermark, log.lastStableOffset]).toEqual([4, 4, 4]);
    const err = (() => {
      try {
        log.setHighWatermark(2);
      } catch (e) {
        return e as SeglogError;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(SeglogError);
    expect(err!.code).toBe('EINVAL');
    expect(log.highWatermark).toBe(4);
    await log.close();
  });

  test("under flush 'always' it stays at the durable end while a written group waits for its fdatasync", async () => {
    const log = await filled(await tempDir(), 1, 2, { flush: 'always' });
    // Hold the next fdatasync of the .log: the group is written, not yet durable.
    const datasync = Object.getOwnPropertyDescriptor(File.prototype, 'datasync')!;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let syncing = false;
    Object.defineProperty(File.prototype, 'datasync', {
      ...datasync,
      value: async function (this: File) {
        if (this.path.endsWith('.log')) {
          syncing = true;
          await held;
        }
        return (datasync.value as (this: File) => Promise<void>).call(this);
      },
    });
    try {
      const size = log.size;
      const appending = log.append([{ value: 'a' }, { value: 'b' }, { value: 'c' }]);
      await until(() => syncing, 'the group written and its fdatasync begun');
      expect(log.size).toBeGreaterThan(size);
      expect([log.highWatermark, log.flushedOffset]).toEqual([2, 2]);
      release();
      await appending;
      expect([log.highWatermark, log.flushedOffset, log.endOffset]).toEqual([5, 5, 5]);
    } finally {
      Object.defineProperty(File.prototype, 'datasync', datasync);
    }
    await log.close();
  });

  test("under flush 'none' it is the log end, ahead of what an fdatasync made durable", async () => {
    const log = await filled(await tempDir(), 2, 3);
    expect(log.flushedOffset).toBe(0);
    expect(log.highWatermark).toBe(6);
    await log.close();
  });
});

describe("highWatermark 'manual'", () => {
  test('moves only through setHighWatermark: clamped to [startOffset, endOffset], never back', async () => {
    const log = await Log.open(await tempDir(), { highWatermark: 'manual' });
    expect(log.highWatermark).toBe(0);
    for (let i = 0; i < 5; i++) await log.append([{ value: `a${i}` }, { value: `b${i}` }]);
    // Appends do not move it: the replicas have yet to copy them.
    expect(log.highWatermark).toBe(0);
    expect(log.setHighWatermark(4)).toBe(4);
    expect(log.setHighWatermark(3)).toBe(4);
    expect(log.highWatermark).toBe(4);
    // Inside a batch (offsets 4-5) is allowed, as Kafka allows it; reads then stop before that batch.
    expect(log.setHighWatermark(5)).toBe(5);
    expect(log.setHighWatermark(1_000)).toBe(10);
    expect(log.lastStableOffset).toBe(10);
    await log.append([{ value: 'later' }]);
    expect(log.highWatermark).toBe(10);
    expect(log.setHighWatermark(11)).toBe(11);
    await log.close();
  });

  test('truncateTo pulls it down to the new end (a batch goes whole), and appends after do not bring it back', async () => {
    const log = await filled(await tempDir(), 4, 3, { highWatermark: 'manual' });
    log.setHighWatermark(12);
    // Offset 7 lies in the batch 6-8: the log ends at 6.
    expect(await log.truncateTo(7)).toBe(6);
    expect(log.highWatermark).toBe(6);
    await log.append([{ value: 'x' }, { value: 'y' }, { value: 'z' }]);
    expect(log.highWatermark).toBe(6);
    // A truncation past it leaves it where it is.
    log.setHighWatermark(7);
    await log.append([{ value: 'x' }, { value: 'y' }, { value: 'z' }]);
    expect(await log.truncateTo(10)).toBe(9);
    expect(log.highWatermark).toBe(7);
    await log.close();
  });

  test('deleteRecordsBefore and retention raise it to the new start offset; below the start it clamps up', async () => {
    const log = await filled(await tempDir(), 6, 2, { highWatermark: 'manual', segmentBytes: 1024 });
    await log.roll();
    for (let i = 0; i < 2; i++) await log.append([{ value: Buffer.alloc(600) }]), await log.roll();
    expect(log.segmentCount).toBeGreaterThan(2);
    log.setHighWatermark(2);
    await log.deleteRecordsBefore(5);
    expect([log.startOffset, log.highWatermark]).toEqual([5, 5]);
    expect(log.setHighWatermark(1)).toBe(5);
    await log.applyRetention({ retentionBytes: 1 });
    expect(log.startOffset).toBeGreaterThan(5);
    expect(log.highWatermark).toBe(log.startOffset);
    expect(log.setHighWatermark(log.endOffset)).toBe(log.endOffset);
    await log.close();
  });

  test('a standalone log starts from its recovered end on reopen (no store keeps it)', async () => {
    const dir = await tempDir();
    const log = await filled(dir, 5, 2, { highWatermark: 'manual' });
    log.setHighWatermark(4);
    await log.close();
    const again = await Log.open(dir, { highWatermark: 'manual' });
    expect([again.endOffset, again.highWatermark]).toEqual([10, 10]);
    await again.close();
  });
});

describe("the store's replication-offset-checkpoint", () => {
  test('holds every log\'s high watermark in Kafka\'s layout, written with the other checkpoints and on close', async () => {
    const dir = await tempDir();
    const store = await LogStore.open(dir);
    const a = await store.log('a', { highWatermark: 'manual' });
    const b = await store.log('b');
    for (let i = 0; i < 5; i++) await a.append([{ value: `a${i}` }, { value: `a${i}` }]);
    await b.append([{ value: 'b0' }, { value: 'b1' }, { value: 'b2' }]);
    a.setHighWatermark(4);
    await store.checkpoint();
    expect(await readFile(join(dir, CHECKPOINT), 'utf8')).toBe('0\n2\na 4\nb 3\n');
    a.setHighWatermark(6);
    await store.close();
    expect(await readFile(join(dir, CHECKPOINT), 'utf8')).toBe('0\n2\na 6\nb 3\n');
  });

  test("a 'manual' log reopens at the checkpointed value, clamped to the log; a log it does not name starts at its start offset", async () => {
    const dir = await tempDir();
    const store = await LogStore.open(dir, { highWatermark: 'manual' });
    for (const name of ['a', 'b', 'c']) {
      const log = await store.log(name);
      for (let i = 0; i < 5; i++) await log.append([{ value: `${name}${i}` }, { value: `${name}${i}` }]);
      log.setHighWatermark(10);
    }
    await (await store.log('c')).deleteRecordsBefore(3);
    await store.close();
    // Written here, not by the store: a in the log, b past its end, c absent.
    await writeFile(join(dir, CHECKPOINT), '0\n2\na 7\nb 99\n');
    const again = await LogStore.open(dir, { highWatermark: 'manual' });
    expect((await again.log('a')).highWatermark).toBe(7);
    expect((await again.log('b')).highWatermark).toBe(10);
    expect((await again.log('c')).highWatermark).toBe(3);
    await again.close();
  });

  test('dropLog removes its entry', async () => {
    const dir = await tempDir();
    const store = await LogStore.open(dir);
    await (await store.log('keep')).append([{ value: 'k' }]);
    await (await store.log('gone')).append([{ value: 'g' }]);
    await store.checkpoint();
    await store.dropLog('gone');
    expect(await readFile(join(dir, CHECKPOINT), 'utf8')).toBe('0\n1\nkeep 1\n');
    await store.close();
  });
});

describe('bad arguments', () => {
  test('options.highWatermark and setHighWatermark are checked before anything happens', async () => {
    const dir = await tempDir();
    await expect(Log.open(dir, { highWatermark: 'sometimes' as never })).rejects.toThrow(RangeError);
    await expect(Log.open(dir, { highWatermark: 1 as never })).rejects.toThrow(TypeError);
    const log = await filled(dir, 1, 3, { highWatermark: 'manual' });
    log.setHighWatermark(3);
    expect(() => log.setHighWatermark('2' as never)).toThrow(TypeError);
    expect(() => log.setHighWatermark(-1)).toThrow(RangeError);
    expect(() => log.setHighWatermark(1.5)).toThrow(RangeError);
    expect(log.highWatermark).toBe(3);
    await log.close();
    expect(() => log.setHighWatermark(1)).toThrow(expect.objectContaining({ code: 'ECLOSED' }));
    // Still readable once closed: the store checkpoints it after closing its logs.
    expect(log.highWatermark).toBe(3);
  });
});

// Reopening after a clean shutdown: the marker records every segment, sealed
// segments stay unopened until first read and are checked against the record
// then, a damaged marker means full recovery, and the marker goes durably
// before the first write, not at open.
import { readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { SeglogError } from '../src/errors.js';
import { CLEAN_SHUTDOWN_FILE, segmentFileName } from '../src/layout.js';
import { decodeCleanShutdown } from '../src/log/clean-shutdown.js';
import { Log, type LogOptions } from '../src/log/log.js';
import { injectFault } from './helpers/faults.js';
import { openFilesUnder, tempDir } from './helpers/tmp.js';

afterEach(() => injectFault('fsync', null));

// 10 records of 100 bytes per batch, 4 batches per segment: every segment has the same size.
const OPTIONS: LogOptions = { segmentBytes: 4 * 1300, indexIntervalBytes: 1000 };
const PER_BATCH = 10;
const value = (offset: number) => Buffer.alloc(100, offset % 251).fill(`v${offset}:`, 0, `v${offset}:`.length);
const timestamp = (offset: number) => 1_000_000 + offset;

/** A clean log of five segments whose third .log was then overwritten with the second's bytes (same size, other offsets). */
async function buildWithThirdReplaced(): Promise<{ dir: string; bases: number[]; file: string }> {
  const { dir, bases } = await build(5);
  const file = join(dir, segmentFileName(bases[2]!, 'log'));
  await writeFile(file, await readFile(join(dir, segmentFileName(bases[1]!, 'log'))));
  return { dir, bases, file };
}

async function build(segments: number): Promise<{ dir: string; bases: number[] }> {
  const dir = await tempDir();
  const log = await Log.open(dir, OPTIONS);
  while (log.segmentCount < segments) {
    const base = log.endOffset;
    await log.append(Array.from({ length: PER_BATCH }, (_, i) => ({ value: value(base + i), timestamp: timestamp(base + i) })));
  }
  await log.close();
  const bases = (await readdir(dir)).filter((n) => n.endsWith('.log')).map((n) => Number(n.slice(0, 20))).sort((a, b) => a - b);
  return { dir, bases };
}

/** The segment files (by base offset) this process has open under `dir`. */
async function openSegments(dir: string): Promise<number[]> {
  const bases = (await openFilesUnder(dir)).map((p) => Number(p.slice(dir.length + 1, dir.length + 21)));
  return [...new Set(bases)];
}

async function readAll(log: Log): Promise<number[]> {
  const offsets: number[] = [];
  for await (const r of log.records(log.startOffset)) {
    expect(r.value!.equals(value(r.offset))).toBe(true);
    expect(r.timestamp).toBe(timestamp(r.offset));
    offsets.push(r.offset);
  }
  return offsets;
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('clean reopen', () => {
  test('the marker records every segment; open keeps only the active segment open; a read opens the segment it reads', async () => {
    const { dir, bases } = await build(6);
    const recorded = decodeCleanShutdown(await readFile(join(dir, CLEAN_SHUTDOWN_FILE)))!;
    expect(recorded.map((s) => s.baseOffset)).toEqual(bases);
    const log = await Log.open(dir, OPTIONS);
    expect(await openSegments(dir)).toEqual([bases.at(-1)]);
    expect(log.endOffset).toBe(recorded.at(-1)!.nextOffset);
    expect(log.size).toBe(recorded.reduce((n, s) => n + s.size, 0));
    const record = await log.readRecord(bases[2]! + 3);
    expect(record?.value?.equals(value(bases[2]! + 3))).toBe(true);
    expect(await openSegments(dir)).toEqual([bases[2], bases.at(-1)]);
    await log.close();
    expect(await openFilesUnder(dir)).toEqual([]);
  });

  test('never-opened segments serve every read: records, read, readRecord, time lookups; concurrent reads share one open', async () => {
    const { dir, bases } = await build(6);
    const log = await Log.open(dir, OPTIONS);
    const end = log.endOffset;
    const same = await Promise.all(range(0, 8).map((i) => log.readRecord(bases[1]! + i)));
    expect(same.map((r) => r!.offset)).toEqual(range(bases[1]!, bases[1]! + 8));
    expect((await openFilesUnder(dir)).filter((p) => p.includes(segmentFileName(bases[1]!, 'log')))).toHaveLength(1);
    expect(await log.offsetForTimestamp(timestamp(bases[3]! + 5))).toBe(bases[3]! + 5);
    // A time lookup opens only the segment it lands in.
    expect(await openSegments(dir)).toEqual([bases[1], bases[3], bases.at(-1)]);
    const fetched = await log.read(bases[4]!, { maxBytes: 1 });
    expect(fetched.nextOffset).toBe(bases[4]! + PER_BATCH);
    expect(await readAll(log)).toEqual(range(0, end));
    await log.close();
  });

  test('a read-only session leaves the marker as it was; the first write removes it, close writes a new one', async () => {
    const { dir } = await build(4);
    const marker = join(dir, CLEAN_SHUTDOWN_FILE);
    const before = await readFile(marker);
    let log = await Log.open(dir, OPTIONS);
    await readAll(log);
    expect(await log.applyRetention({ retentionBytes: 1e12 })).toBe(0); // removes nothing, but may write: the marker goes
    expect(await readdir(dir)).not.toContain(CLEAN_SHUTDOWN_FILE);
    await log.close();
    expect((await readFile(marker)).equals(before)).toBe(true);
    log = await Log.open(dir, OPTIONS);
    await readAll(log);
    await log.close();
    expect((await readFile(marker)).equals(before)).toBe(true);
    log = await Log.open(dir, OPTIONS);
    await log.append([{ value: value(log.endOffset), timestamp: timestamp(log.endOffset) }]);
    expect(await readdir(dir)).not.toContain(CLEAN_SHUTDOWN_FILE);
    const end = log.endOffset;
    await log.close();
    expect(decodeCleanShutdown(await readFile(marker))!.at(-1)!.nextOffset).toBe(end);
  });

  test('no write before the marker is durably gone: a failed removal fails the append and the log, the file unchanged', async () => {
    const { dir, bases } = await build(3);
    const active = join(dir, segmentFileName(bases.at(-1)!, 'log'));
    const size = (await readFile(active)).length;
    const log = await Log.open(dir, OPTIONS);
    injectFault('fsync', 'EIO');
    await expect(log.append([{ value: 'x' }])).rejects.toMatchObject({ code: 'EIO' });
    expect(log.failure).toMatchObject({ code: 'EIO' });
    expect((await readFile(active)).length).toBe(size);
    await log.close();
  });

  test('a damaged or empty marker means full recovery: a mid-log CRC error is refused at open', async () => {
    for (const damage of ['flip', 'empty', 'short']) {
      const { dir, bases } = await build(4);
      const file = join(dir, segmentFileName(bases[1]!, 'log'));
      const bytes = await readFile(file);
      const second = bytes.readInt32BE(8) + 12;
      bytes[second + 100] ^= 0x40; // inside the second batch's records
      await writeFile(file, bytes);
      // Behind an intact marker the segment is trusted and the read names the damage.
      let log = await Log.open(dir, OPTIONS);
      await expect(log.read(bases[1]! + PER_BATCH)).rejects.toMatchObject({ code: 'ECORRUPT', path: file, position: second });
      await log.close();
      const marker = join(dir, CLEAN_SHUTDOWN_FILE);
      const m = await readFile(marker);
      if (damage === 'flip') m[m.length - 10] ^= 1;
      await writeFile(marker, damage === 'flip' ? m : damage === 'empty' ? Buffer.alloc(0) : m.subarray(0, m.length - 1));
      const err = await Log.open(dir, OPTIONS).catch((e: unknown) => e);
      expect(err, damage).toMatchObject({ code: 'ECORRUPT', path: file, position: second });
      log = await Log.open(dir, { ...OPTIONS, repair: true });
      expect(log.endOffset).toBe(bases[1]! + PER_BATCH);
      await log.close();
    }
  });
});

describe('segment files changed behind a clean marker', () => {
  test('a missing .log is refused at open', async () => {
    const { dir, bases } = await build(4);
    await rm(join(dir, segmentFileName(bases[1]!, 'log')));
    await expect(Log.open(dir, OPTIONS)).rejects.toMatchObject({ code: 'ECORRUPT', message: expect.stringMatching(/in no segment/) });
  });

  test('a .log of another size is scanned at open: cut mid-batch or grown, refused naming it; repair cuts the log there', async () => {
    for (const change of ['cut', 'grown']) {
      const { dir, bases } = await build(4);
      const file = join(dir, segmentFileName(bases[1]!, 'log'));
      const size = (await readFile(file)).length;
      await truncate(file, change === 'cut' ? size - 50 : size + 3000);
      const before = await readFile(file);
      const err = await Log.open(dir, OPTIONS).catch((e: unknown) => e);
      expect(err, change).toBeInstanceOf(SeglogError);
      expect(err, change).toMatchObject({ code: 'ECORRUPT', path: file });
      // Refusing changed nothing: only repair cuts a sealed segment.
      expect((await readFile(file)).equals(before), change).toBe(true);
      const log = await Log.open(dir, { ...OPTIONS, repair: true });
      expect(await readAll(log)).toEqual(range(0, change === 'cut' ? bases[1]! + 3 * PER_BATCH : log.endOffset));
      await log.close();
    }
  });

  test('a .log replaced by other bytes of the same size is refused by the reads that reach it, and again after a reopen', async () => {
    const { dir, bases, file } = await buildWithThirdReplaced();
    let log = await Log.open(dir, OPTIONS);
    expect(await log.readRecord(bases[1]!)).toMatchObject({ offset: bases[1] });
    const refused = { code: 'ECORRUPT', path: file, position: 0 };
    await expect(log.readRecord(bases[2]! + 1)).rejects.toMatchObject(refused);
    await expect(log.read(bases[2]!)).rejects.toMatchObject(refused);
    expect((await log.read(bases[3]!)).bytes.length).toBeGreaterThan(0);
    await log.close();
    log = await Log.open(dir, OPTIONS);
    await expect(log.read(bases[2]!)).rejects.toMatchObject(refused);
    await log.close();
  });
});

describe('removing records over never-opened segments', () => {
  test('retention by size and by time removes segments without opening them', async () => {
    const { dir, bases } = await build(6);
    const sizes = decodeCleanShutdown(await readFile(join(dir, CLEAN_SHUTDOWN_FILE)))!.map((s) => s.size);
    let log = await Log.open(dir, OPTIONS);
    expect(await log.applyRetention({ retentionBytes: log.size - sizes[0]! - sizes[1]! })).toBe(2);
    expect(log.startOffset).toBe(bases[2]);
    expect(await log.applyRetention({ retentionMs: 1000, now: timestamp(bases[3]! - 1) + 1001 })).toBe(1);
    expect(log.startOffset).toBe(bases[3]);
    expect(await openSegments(dir)).toEqual([bases.at(-1)]);
    expect(await readAll(log)).toEqual(range(bases[3]!, log.endOffset));
    await log.close();
    log = await Log.open(dir, OPTIONS);
    expect(log.startOffset).toBe(bases[3]);
    await log.close();
  });

  test('truncateTo into a never-opened segment cuts it and continues from there', async () => {
    const { dir, bases } = await build(5);
    let log = await Log.open(dir, OPTIONS);
    const cut = bases[1]! + 2 * PER_BATCH + 4;
    expect(await log.truncateTo(cut)).toBe(bases[1]! + 2 * PER_BATCH);
    expect(log.segmentCount).toBe(2);
    const base = log.endOffset;
    await log.append([{ value: value(base), timestamp: timestamp(base) }]);
    expect(await readAll(log)).toEqual(range(0, base + 1));
    await log.close();
    log = await Log.open(dir, OPTIONS);
    expect(await readAll(log)).toEqual(range(0, base + 1));
    await log.close();
  });

  test('truncateTo into a segment changed behind the marker is refused before anything is removed', async () => {
    const { dir, bases, file } = await buildWithThirdReplaced();
    const log = await Log.open(dir, OPTIONS);
    const end = log.endOffset;
    await expect(log.truncateTo(bases[2]! + 5)).rejects.toMatchObject({ code: 'ECORRUPT', path: file, position: 0 });
    expect([log.endOffset, log.segmentCount]).toEqual([end, 5]);
    await log.close();
  });
});

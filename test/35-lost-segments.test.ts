// A log whose segments do not cover [start offset, end) without a hole is
// refused on open (ECORRUPT naming the missing offsets) unless repair
// accepts the loss: past a lost first segment the start offset moves (in a
// store, its checkpoint); at a hole further on the log is cut.
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { SeglogError } from '../src/errors.js';
import { CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_CHECKPOINT, parseSegmentFileName } from '../src/layout.js';
import { Log } from '../src/log/log.js';
import { LogStore } from '../src/store/store.js';
import { tempDir } from './helpers/tmp.js';

const SEGMENT = { segmentBytes: 1024 };

/** Appends 7-record batches until the log has `segments` segments; returns the base offsets. */
async function fill(log: Log, segments: number): Promise<number[]> {
  while (log.segmentCount < segments) {
    await log.append(Array.from({ length: 7 }, (_, i) => ({ value: Buffer.alloc(20, log.endOffset + i) })));
  }
  return segmentBases(log.dir);
}

async function segmentBases(dir: string): Promise<number[]> {
  const names = await readdir(dir);
  return names
    .map(parseSegmentFileName)
    .filter((p) => p?.kind === 'log')
    .map((p) => p!.baseOffset)
    .sort((a, b) => a - b);
}

/** Deletes the three files of the segment at `base`, as a lost segment. */
async function lose(dir: string, base: number): Promise<void> {
  const names = (await readdir(dir)).filter((n) => parseSegmentFileName(n)?.baseOffset === base);
  expect(names.length).toBeGreaterThan(0);
  await Promise.all(names.map((n) => rm(join(dir, n))));
}

async function offsets(log: Log): Promise<number[]> {
  const out: number[] = [];
  for await (const r of log.records(log.startOffset)) out.push(r.offset);
  return out;
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('a standalone log', () => {
  test.each([
    ['after a clean close', true],
    ['after a crash', false],
  ])('a lost middle segment is refused with ECORRUPT naming the offsets, %s', async (_, clean) => {
    const dir = await tempDir();
    const log = await Log.open(dir, SEGMENT);
    const bases = await fill(log, 8);
    const end = log.endOffset;
    await log.close();
    if (!clean) await rm(join(dir, CLEAN_SHUTDOWN_FILE));
    const [gone, next] = [bases[3]!, bases[4]!];
    await lose(dir, gone);
    const err = await Log.open(dir, SEGMENT).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SeglogError);
    expect(err).toMatchObject({ code: 'ECORRUPT', path: dir });
    expect((err as Error).message).toContain(`offsets ${gone}..${next - 1}`);
    // Refused without a change: a second try is refused the same way.
    await expect(Log.open(dir, SEGMENT)).rejects.toMatchObject({ code: 'ECORRUPT' });

    const repaired = await Log.open(dir, { ...SEGMENT, repair: true });
    expect(repaired.missingRanges).toEqual([{ from: gone, to: end - 1 }]);
    expect(repaired.endOffset).toBe(gone);
    expect(await offsets(repaired)).toEqual(range(0, gone));
    expect(await segmentBases(dir)).toEqual(bases.slice(0, 3));
    // The cut log takes appends from the hole on, and reopens without repair.
    expect(await repaired.append([{ value: 'after' }])).toMatchObject({ baseOffset: gone });
    await repaired.close();
    const again = await Log.open(dir, SEGMENT);
    expect(await offsets(again)).toEqual(range(0, gone + 1));
    await again.close();
  });

  test('a lost first segment is refused; repair moves the start offset durably', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, SEGMENT);
    const bases = await fill(log, 4);
    const end = log.endOffset;
    await log.close();
    await lose(dir, 0);
    await expect(Log.open(dir, SEGMENT)).rejects.toMatchObject({ code: 'ECORRUPT', message: expect.stringContaining(`offsets 0..${bases[1]! - 1}`) });
    const repaired = await Log.open(dir, { ...SEGMENT, repair: true });
    expect(repaired.missingRanges).toEqual([{ from: 0, to: bases[1]! - 1 }]);
    expect(repaired.startOffset).toBe(bases[1]);
    await repaired.close();
    // The new start is on disk: a plain open no longer sees a hole.
    const again = await Log.open(dir, SEGMENT);
    expect(again.missingRanges).toEqual([]);
    expect(await offsets(again)).toEqual(range(bases[1]!, end));
    await again.close();
  });

  test('segments removed by retention and deleteRecordsBefore are no hole', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { ...SEGMENT, fileDeleteDelayMs: 0 });
    const bases = await fill(log, 6);
    expect(await log.applyRetention({ retentionBytes: 1 })).toBe(5);
    await fill(log, 3);
    const start = log.startOffset;
    expect(start).toBe(bases[5]);
    await log.deleteRecordsBefore(log.endOffset - 3);
    const end = log.endOffset;
    await log.close();
    const again = await Log.open(dir, SEGMENT);
    expect(again.missingRanges).toEqual([]);
    expect(again.startOffset).toBe(end - 3);
    await again.close();
  });
});

describe('a store', () => {
  test('a lost first segment of a closed store is refused; repair moves the checkpoint', async () => {
    const dir = await tempDir();
    let store = await LogStore.open(dir, SEGMENT);
    const bases = await fill(await store.log('t-0'), 8);
    await store.close();
    await lose(join(dir, 't-0'), 0);
    await expect(LogStore.open(dir, SEGMENT)).rejects.toMatchObject({ code: 'ECORRUPT', path: join(dir, 't-0') });
    store = await LogStore.open(dir, { ...SEGMENT, repair: true });
    const log = await store.log('t-0');
    expect(log.missingRanges).toEqual([{ from: 0, to: bases[1]! - 1 }]);
    expect(log.startOffset).toBe(bases[1]);
    expect(await readFile(join(dir, LOG_START_OFFSET_CHECKPOINT), 'utf8')).toContain(`t-0 ${bases[1]}`);
    await store.close();
    store = await LogStore.open(dir, SEGMENT);
    expect((await store.log('t-0')).startOffset).toBe(bases[1]);
    await store.close();
  });
});

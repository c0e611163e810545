// A flipped bit in a batch's lastOffsetDelta (inside the CRC, but read as
// part of the header before any CRC is checked) must never make a read skip
// the batch or take it for the end of the log: the batch is refused with
// ECORRUPT naming its file and position, at open or by the read that
// reaches it, and everything before it is served intact.
import { cp, open as openFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { SeglogError } from '../src/errors.js';
import { segmentFileName } from '../src/layout.js';
import { Log } from '../src/log/log.js';
import { tempDir } from './helpers/tmp.js';

const OPTIONS = { segmentBytes: 2048, indexIntervalBytes: 128 };
/** lastOffsetDelta is the i32 at bytes 23..26 of a batch. */
const DELTA_AT = 23;

/** A clean log of 2-record batches over several segments; returns where the first segment's batches start. */
async function makeLog(dir: string): Promise<number[]> {
  const log = await Log.open(dir, OPTIONS);
  while (log.segmentCount < 4) {
    const at = log.endOffset;
    await log.append([{ value: Buffer.alloc(150, at) }, { value: Buffer.alloc(60, at + 1) }]);
  }
  await log.close();
  const bytes = await readFile(join(dir, segmentFileName(0, 'log')));
  const starts: number[] = [];
  for (let p = 0; p < bytes.length; p += bytes.readInt32BE(p + 8) + 12) starts.push(p);
  return starts;
}

async function flip(path: string, position: number, bit: number): Promise<void> {
  const file = await openFile(path, 'r+');
  const b = Buffer.alloc(1);
  await file.read(b, 0, 1, position);
  b[0]! ^= bit;
  await file.write(b, 0, 1, position);
  await file.close();
}

/** What a reader gets from offset 0, a batch per read: the offsets served before the error, and the error. */
async function readAll(log: Log): Promise<{ offsets: number[]; error?: unknown }> {
  const offsets: number[] = [];
  try {
    for await (const r of log.records(0, { maxBytes: 1 })) offsets.push(r.offset);
  } catch (error) {
    return { offsets, error };
  }
  return { offsets };
}

test.each([
  ['sign bit (a negative delta)', DELTA_AT, 0x80],
  ['a huge delta', DELTA_AT + 1, 0x80],
])('%s in any batch of a trusted segment: refused where it lies, nothing skipped', async (_, byte, bit) => {
  const base = await tempDir();
  const starts = await makeLog(base);
  const path = (dir: string) => join(dir, segmentFileName(0, 'log'));
  for (const [i, start] of starts.entries()) {
    const dir = join(await tempDir(), 'log');
    await cp(base, dir, { recursive: true });
    await flip(path(dir), start + byte, bit);
    const where = { code: 'ECORRUPT', path: path(dir), position: start };
    let log: Log;
    try {
      log = await Log.open(dir, OPTIONS);
    } catch (err) {
      expect(err, `batch ${i} at ${start}`).toBeInstanceOf(SeglogError);
      expect(err, `batch ${i} at ${start}`).toMatchObject(where);
      continue;
    }
    const { offsets, error } = await readAll(log);
    await log.close();
    // Batch i holds offsets 2i and 2i + 1: everything before it, then the refusal.
    expect(offsets, `batch ${i} at ${start}`).toEqual(Array.from({ length: 2 * i }, (_, k) => k));
    expect(error, `batch ${i} at ${start}`).toBeInstanceOf(SeglogError);
    expect(error, `batch ${i} at ${start}`).toMatchObject(where);
  }
  expect((await readdir(base)).length).toBeGreaterThan(4);
});

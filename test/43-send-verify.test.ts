// sendTo checks what it serves: sendfile(2) moves the bytes without the
// process seeing them, so each range's batch CRCs are checked the first time
// it is served after open and remembered per segment. A bit flipped on disk is
// refused with ECORRUPT, nothing of the fetch sent; a range served before is not
// checked again; reopening and truncation forget what they must; bytes this
// process appended and segments recovery scanned count as checked.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { Log } from '../src/log/log.js';
import { File } from '../src/native.js';
import { Segment } from '../src/segment/segment.js';
import { VerifiedRanges } from '../src/segment/verified-ranges.js';
import { CLEAN_SHUTDOWN_FILE } from '../src/layout.js';
import { socketPair } from './helpers/sockets.js';
import { random } from './helpers/random.js';
import { tempDir } from './helpers/tmp.js';

const SEGMENT_BYTES = 16 * 1024;
const PER_BATCH = 4;

afterEach(() => {
  vi.restoreAllMocks();
});

/** A closed log of `segments` sealed segments (and an active one) of equal batches; its directory, segment files and batch size. */
async function closedLog(segments: number): Promise<{ dir: string; files: string[]; batchBytes: number; perSegment: number }> {
  const dir = await tempDir();
  const log = await Log.open(dir, { segmentBytes: SEGMENT_BYTES });
  for (let i = 0; (await segmentFiles(dir)).length <= segments; i++) {
    await log.append(Array.from({ length: PER_BATCH }, (_, r) => ({ value: Buffer.alloc(900, (i * PER_BATCH + r) % 251) })));
  }
  const batchBytes = (await log.read(0, { maxBytes: 1 })).bytes.length;
  await log.close();
  const files = await segmentFiles(dir);
  return { dir, files, batchBytes, perSegment: Math.floor(SEGMENT_BYTES / batchBytes) + 1 };
}

async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir))
    .filter((n) => n.endsWith('.log'))
    .sort()
    .map((n) => join(dir, n));
}

/** Flips one bit of a record value inside the `batch`th batch of `path` (inside its CRC), through the page cache. */
async function flipBit(path: string, batch: number, batchBytes: number): Promise<void> {
  const f = await File.open(path, { write: true });
  const at = batch * batchBytes + batchBytes - 100;
  const b = Buffer.alloc(1);
  await f.read(b, at);
  b[0] ^= 0x10;
  await f.write(b, at);
  await f.close();
}

/** sendTo of `offset` to a fresh paused pair: the result or the rejection, and every byte the receiver got. */
async function serve(log: Log, offset: number, maxBytes: number): Promise<{ result: PromiseSettledResult<unknown>; received: Buffer }> {
  const pair = await socketPair();
  pair.receiver.resume();
  const [result] = await Promise.allSettled([log.sendTo(pair.sender, offset, { maxBytes, prefix: () => Buffer.from('HEADER') })]);
  if (result.status === 'fulfilled') pair.sender.end();
  await pair.ended;
  const received = pair.received();
  await pair.close();
  return { result, received };
}

/** Calls that check bytes for sendTo (Segment.checkOnce reads or maps them only to check them). */
function checkWork(): { count: () => number } {
  const mapped = vi.spyOn(Segment.prototype, 'mapRange');
  const read = vi.spyOn(Segment.prototype, 'readRange');
  return { count: () => mapped.mock.calls.length + read.mock.calls.length };
}

describe('sendTo checks batch CRCs once per range after open', () => {
  test('a bit flipped on disk in a sealed segment is refused with ECORRUPT and nothing of the fetch is sent', async () => {
    const { dir, files, batchBytes, perSegment } = await closedLog(4);
    await flipBit(files[2]!, 3, batchBytes);
    // Closed cleanly: every segment is trusted without a scan.
    const log = await Log.open(dir, { segmentBytes: SEGMENT_BYTES });
    const base2 = Number(files[2]!.slice(-24, -4));
    expect(base2).toBeGreaterThan(0);
    // The damaged batch itself, and a fetch that starts two segments earlier and runs into it.
    for (const offset of [base2 + 3 * PER_BATCH, 0]) {
      const { result, received } = await serve(log, offset, 3 * SEGMENT_BYTES);
      expect(result.status).toBe('rejected');
      expect((result as PromiseRejectedResult).reason).toMatchObject({ code: 'ECORRUPT', bytesSent: 0 });
      expect(received.length).toBe(0);
    }
    // What comes before the damage is served, byte for byte what read() returns.
    const before = await log.read(0, { maxBytes: 2 * SEGMENT_BYTES });
    const { result, received } = await serve(log, 0, 2 * SEGMENT_BYTES);
    expect(result.status).toBe('fulfilled');
    expect(received.equals(Buffer.concat([Buffer.from('HEADER'), before.bytes]))).toBe(true);
    expect(perSegment).toBeGreaterThan(3);
    await log.close();
  });

  test('pages not in memory are read to be checked (readRange, off the event loop), and damage there is refused too', async () => {
    const { dir, files, batchBytes } = await closedLog(3);
    await flipBit(files[1]!, 2, batchBytes);
    const log = await Log.open(dir, { segmentBytes: SEGMENT_BYTES });
    // As mincore answers for evicted pages (evicting them for real would not last: readahead brings a small file back whole).
    vi.spyOn(Segment.prototype, 'view').mockReturnValue(undefined);
    const read = vi.spyOn(Segment.prototype, 'readRange');
    const base1 = Number(files[1]!.slice(-24, -4));
    expect((await serve(log, 0, SEGMENT_BYTES)).result.status).toBe('fulfilled');
    expect(read).toHaveBeenCalledTimes(1);
    expect((await serve(log, base1, SEGMENT_BYTES)).result).toMatchObject({ status: 'rejected', reason: { code: 'ECORRUPT' } });
    expect(read).toHaveBeenCalledTimes(2);
    await log.close();
  });

  test('a range served once is not checked again; reopening forgets it', async () => {
    const { dir, files, batchBytes } = await closedLog(3);
    let log = await Log.open(dir, { segmentBytes: SEGMENT_BYTES });
    const work = checkWork();
    expect((await serve(log, 0, 2 * SEGMENT_BYTES)).result.status).toBe('fulfilled');
    const first = work.count();
    expect(first).toBeGreaterThan(0);
    expect((await serve(log, 0, 2 * SEGMENT_BYTES)).result.status).toBe('fulfilled');
    // A fetch inside what was served, from a later batch, is covered too.
    expect((await serve(log, 2 * PER_BATCH, SEGMENT_BYTES)).result.status).toBe('fulfilled');
    expect(work.count()).toBe(first);
    // Proof that nothing looks again: damage after the first serve goes unseen until the segment is reopened.
    await flipBit(files[0]!, 1, batchBytes);
    expect((await serve(log, 0, SEGMENT_BYTES)).result.status).toBe('fulfilled');
    await log.close();
    log = await Log.open(dir, { segmentBytes: SEGMENT_BYTES });
    expect((await serve(log, 0, SEGMENT_BYTES)).result).toMatchObject({ status: 'rejected', reason: { code: 'ECORRUPT' } });
    await log.close();
  });

  test('truncateTo forgets what was checked of the segment it cuts', async () => {
    const { dir, files, batchBytes } = await closedLog(3);
    const log = await Log.open(dir, { segmentBytes: SEGMENT_BYTES });
    const base1 = Number(files[1]!.slice(-24, -4));
    expect((await serve(log, base1, SEGMENT_BYTES)).result.status).toBe('fulfilled');
    await flipBit(files[1]!, 1, batchBytes);
    expect((await serve(log, base1, SEGMENT_BYTES)).result.status).toBe('fulfilled'); // remembered
    // Cuts segment 1 after its damaged batch: the segment that remains is checked afresh.
    await log.truncateTo(base1 + 3 * PER_BATCH);
    expect((await serve(log, base1, SEGMENT_BYTES)).result).toMatchObject({ status: 'rejected', reason: { code: 'ECORRUPT' } });
    await log.close();
  });

  test('bytes this process appended, and segments recovery scanned, are not checked again', async () => {
    const { dir } = await closedLog(2);
    // No clean-shutdown marker: recovery scans (and CRC-checks) the segments after the recovery point, here all.
    await rm(join(dir, CLEAN_SHUTDOWN_FILE));
    const log = await Log.open(dir, { segmentBytes: SEGMENT_BYTES });
    const work = checkWork();
    expect((await serve(log, 0, 4 * SEGMENT_BYTES)).result.status).toBe('fulfilled');
    const from = log.endOffset;
    for (let i = 0; i < 10; i++) await log.append(Array.from({ length: PER_BATCH }, () => ({ value: Buffer.alloc(900, i) })));
    const served = await serve(log, from, 4 * SEGMENT_BYTES);
    expect(served.result.status).toBe('fulfilled');
    expect(served.received.length).toBeGreaterThan(40 * 900);
    expect(work.count()).toBe(0);
    await log.close();
  });
});

test('VerifiedRanges agrees with a byte map through random adds and cuts', () => {
  const rand = random(43);
  for (let round = 0; round < 50; round++) {
    const ranges = new VerifiedRanges();
    const map = new Uint8Array(200);
    for (let step = 0; step < 40; step++) {
      const a = Math.floor(rand() * 200);
      const b = a + Math.floor(rand() * (200 - a));
      if (rand() < 0.15) {
        ranges.cut(a);
        map.fill(0, a);
      } else {
        ranges.add(a, b);
        map.fill(1, a, b);
      }
      const s = Math.floor(rand() * 200);
      const e = s + 1 + Math.floor(rand() * (200 - s));
      expect(ranges.covers(s, e)).toBe(map.subarray(s, e).every((x) => x === 1));
    }
  }
});

// Truncation never changes bytes on their way to a socket. sendfile(2) returns
// once the socket holds references to the file's page-cache pages; a follower's
// truncateTo that cuts the active segment mid-page, and the appends that then
// rewrite those positions, must not reach the bytes a slow receiver has yet to
// read. Seeded trials: each sends the tail of the log to a paused receiver, cuts
// inside what was sent, appends other batches over it, then lets the receiver
// read; what arrives must be the log as it was when sent, batch for batch.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Log } from '../src/log/log.js';
import { checkBatch } from '../src/segment/batch.js';
import { PAGE_SIZE } from '../src/native.js';
import { random } from './helpers/random.js';
import { socketPair, until } from './helpers/sockets.js';
import { tempDir } from './helpers/tmp.js';

const SEED = 1616;
const TRIALS = Number(process.env.SEGLOG_TRUNCATE_RACE_TRIALS ?? 40);

/** The whole batches of `bytes`, each passing its CRC, as [baseOffset, lastOffset] pairs; throws at the first torn one. */
function batchesOf(bytes: Buffer): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let p = 0; p < bytes.length; ) {
    const c = checkBatch(bytes, p, bytes.length);
    if (!c.ok) throw new Error(`torn batch at byte ${p} of ${bytes.length}: ${c.reason}`);
    out.push([c.header.baseOffset, c.header.lastOffset]);
    p += c.header.size;
  }
  return out;
}

/** Whether the log's active segment ends inside a page: its bytes are the log's from its base offset on. */
async function cutMidPage(log: Log): Promise<boolean> {
  const bases = (await readdir(log.dir)).filter((n) => n.endsWith('.log')).map((n) => Number(n.slice(0, 20)));
  const activeBase = Math.max(...bases);
  return (await log.read(activeBase, { maxBytes: 1 << 30 })).bytes.length % PAGE_SIZE !== 0;
}

describe('truncateTo under sendfile(2)', () => {
  // One segment: every cut is in the active segment. 16 KiB segments: the sent bytes span several, cuts land in
  // sealed ones, the segments after the cut are deleted and the one cut becomes the active segment.
  test.each([
    ['the active segment', 64 * 1024 * 1024],
    ['sealed segments', 16 * 1024],
  ])(`a follower's truncate + re-append in %s never changes bytes queued for a paused receiver (${TRIALS} seeded trials)`, async (_, segmentBytes) => {
    const rand = random(SEED + segmentBytes);
    const dir = await tempDir();
    const log = await Log.open(dir, { segmentBytes });
    let torn = 0;
    let midPage = 0;
    const append = async (batches: number, fill: number) => {
      for (let i = 0; i < batches; i++) {
        // Sizes that put batch boundaries anywhere within a page.
        const records = 1 + Math.floor(rand() * 6);
        await log.append(Array.from({ length: records }, () => ({ value: Buffer.alloc(100 + Math.floor(rand() * 900), fill) })));
      }
    };
    try {
      await append(50, 0x11);
      for (let trial = 0; trial < TRIALS; trial++) {
        const from = log.endOffset - 1 - Math.floor(rand() * 20) - 20;
        // What the log holds when the bytes are sent.
        const expected = await log.read(from, { maxBytes: 1 << 20 });
        const pair = await socketPair();
        // Resolves once sendfile(2) returned: the bytes sit in the paused connection's socket buffers.
        const sent = await log.sendTo(pair.sender, from, { maxBytes: 1 << 20 });
        expect(sent.bytes).toBe(expected.bytes.length);
        // The follower cuts inside what was sent, then appends the leader's (different) batches in its place.
        const cut = from + 1 + Math.floor(rand() * (log.endOffset - from - 2));
        await log.truncateTo(cut);
        // Where the file was cut: the end of the active segment, which starts at a batch of its own.
        if (await cutMidPage(log)) midPage++;
        await append(20 + Math.floor(rand() * 10), 0xee - (trial % 16));
        pair.receiver.resume();
        await until(() => pair.received().length >= expected.bytes.length, 'every byte sent');
        const got = pair.received();
        if (got.equals(expected.bytes)) expect(batchesOf(got)).toEqual(batchesOf(expected.bytes));
        else torn++;
        await pair.close();
      }
    } finally {
      await log.close();
    }
    // Most cuts fall inside a page: the case the kernel rewrites in place.
    expect(midPage).toBeGreaterThan(TRIALS * 0.5);
    console.log(`${midPage} of ${TRIALS} cuts mid-page; ${torn} of ${TRIALS} trials received bytes that changed after they were sent`);
    expect(torn).toBe(0);
  });

  test('a copy that truncateTo did not live to rename over the .log is removed on open', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir);
    await log.append([{ value: Buffer.from('kept') }]);
    await log.close();
    const leftover = join(dir, `${'0'.repeat(20)}.log.copy`);
    await writeFile(leftover, 'a half-written copy');
    const reopened = await Log.open(dir);
    expect(await readdir(dir)).not.toContain(`${'0'.repeat(20)}.log.copy`);
    expect((await reopened.readRecord(0))?.value?.toString()).toBe('kept');
    await reopened.close();
  });

  test('a copy that fails (a full disk, here a directory in its way) leaves the log as it was, still open for appends', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir);
    for (let i = 0; i < 10; i++) await log.append([{ value: Buffer.alloc(300, i) }]);
    const before = await log.read(0, { maxBytes: 1 << 20 });
    await mkdir(join(dir, `${'0'.repeat(20)}.log.copy`, 'in-the-way'), { recursive: true });
    await expect(log.truncateTo(5)).rejects.toThrow();
    expect(log.endOffset).toBe(10);
    expect((await log.read(0, { maxBytes: 1 << 20 })).bytes.equals(before.bytes)).toBe(true);
    expect((await log.append([{ value: Buffer.from('after') }])).baseOffset).toBe(10);
    await log.close();
  });
});

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { File, rawAddon } from '../src/native.js';
import { tempDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;
const pattern = (length: number) => Buffer.from(Array.from({ length }, (_, i) => (i * 7 + (i >> 12)) & 0xff));

async function fileWith(bytes: Buffer): Promise<File> {
  const path = join(await tempDir(), 'f');
  await writeFile(path, bytes);
  return File.open(path);
}

describe('File.readHot', () => {
  test('a range in the page cache is read on the calling thread, whole', async () => {
    const data = pattern(MiB);
    const f = await fileWith(data);
    const into = Buffer.alloc(300_000);
    await f.read(into, 5000); // now cached
    into.fill(0);
    expect(rawAddon.preadNowait(f.fd, into, 5000)).toBe(into.length);
    expect(into.equals(data.subarray(5000, 305_000))).toBe(true);
    expect(await f.readHot(into.fill(0), 5000)).toBe(into.length);
    expect(into.equals(data.subarray(5000, 305_000))).toBe(true);
    await f.close();
  });

  test('evicted pages are read on the threadpool and still give the right bytes', async () => {
    const data = pattern(4 * MiB);
    const f = await fileWith(data);
    await f.datasync();
    await f.advise(0, 0, 'dontneed');
    expect(f.residentPages(0, data.length).resident).toBeLessThan(f.residentPages(0, data.length).total);
    const into = Buffer.alloc(2 * MiB);
    // The page-cache-only read stops where the cache does (or refuses outright), never waiting for the disk.
    const inline = rawAddon.preadNowait(f.fd, into, MiB);
    expect(inline === -11 || (inline >= 0 && inline < into.length)).toBe(true);
    into.fill(0);
    expect(await f.readHot(into, MiB)).toBe(into.length);
    expect(into.equals(data.subarray(MiB, 3 * MiB))).toBe(true);
    await f.close();
  });

  test('stops at the end of the file like read()', async () => {
    const data = pattern(10_000);
    const f = await fileWith(data);
    const into = Buffer.alloc(8192);
    expect(await f.readHot(into, 6000)).toBe(4000);
    expect(into.subarray(0, 4000).equals(data.subarray(6000))).toBe(true);
    expect(await f.readHot(into, 20_000)).toBe(0);
    expect(await f.readHot(Buffer.alloc(0), 0)).toBe(0);
    await f.close();
  });

  test('bad arguments are TypeError/RangeError; a closed file is ECLOSED; errors name preadv2', async () => {
    const f = await fileWith(pattern(100));
    await expect(f.readHot('x' as never, 0)).rejects.toThrow(TypeError);
    await expect(f.readHot(Buffer.alloc(1), -1)).rejects.toThrow(RangeError);
    await expect(f.readHot(Buffer.alloc(1), 1.5)).rejects.toThrow(RangeError);
    const w = await File.open(join(await tempDir(), 'd'), { create: true });
    await expect(w.readHot(Buffer.alloc(1), 0)).resolves.toBe(0);
    await w.close();
    await f.close();
    await expect(f.readHot(Buffer.alloc(1), 0)).rejects.toMatchObject({ code: 'ECLOSED' });
    expect(rawAddon.preadNowait(1 << 20, Buffer.alloc(1), 0)).toBe(-9); // EBADF
  });
});

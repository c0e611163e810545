import { join } from 'node:path';
import { constants } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { allocAligned, directIOAlignment, File, freeAligned, probeDirectIO, rawAddon, stats } from '../src/native.js';
import { collectGarbage, tempDir } from './helpers/tmp.js';

describe('O_DIRECT', () => {
  test('alignment comes from statx, the block device, or the 4096 default', async () => {
    const dir = await tempDir();
    const f = await File.open(join(dir, 'a'), { create: true, direct: true });
    const a = f.alignment!;
    expect(['statx', 'blockdev', 'default']).toContain(a.source);
    for (const n of [a.memory, a.offset]) {
      expect(n).toBeGreaterThan(0);
      expect(n & (n - 1)).toBe(0);
    }
    expect(await directIOAlignment(f.path)).toEqual(a);
    await f.close();
    await expect(directIOAlignment(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT', syscall: 'statx' });
  });

  test('aligned transfers round-trip; misaligned ones are RangeErrors before the OS sees them', async () => {
    const f = await File.open(join(await tempDir(), 'a'), { create: true, direct: true });
    const block = allocAligned(8192, 4096);
    block.fill(0xab);
    expect(await f.write(block, 0)).toBe(8192);
    const back = allocAligned(8192, 4096);
    expect(await f.read(back, 0)).toBe(8192);
    expect(back.equals(block)).toBe(true);
    await expect(f.write(block.subarray(0, 100), 0)).rejects.toThrow(/aligned to/);
    await expect(f.write(block, 100)).rejects.toThrow(RangeError);
    // A Buffer from the JS heap is not aligned to the page (one byte off, for sure).
    await expect(f.write(allocAligned(8192 + 4096, 4096).subarray(1, 8193), 0)).rejects.toThrow(/use allocAligned/);
    await f.close();
  });

  test('the kernel answers a misaligned O_DIRECT write with EINVAL', async () => {
    const path = join(await tempDir(), 'a');
    const fd = await rawAddon.open(path, constants.O_RDWR | constants.O_CREAT | rawAddon.constants.O_DIRECT, 0o644);
    expect(fd).toBeGreaterThanOrEqual(0);
    const block = allocAligned(8192, 4096);
    expect(await rawAddon.pwrite(fd, block.subarray(1, 4097), 0)).toBe(-22);
    expect(await rawAddon.pwrite(fd, block.subarray(0, 4096), 1)).toBe(-22);
    expect(await rawAddon.pwrite(fd, block.subarray(0, 4096), 0)).toBe(4096);
    expect(await rawAddon.close(fd)).toBe(0);
  });

  test('probeDirectIO agrees with what an O_DIRECT open really does, on disk and on /dev/shm (tmpfs)', async () => {
    for (const dir of [await tempDir(), await tempDir('/dev/shm')]) {
      const path = join(dir, 'probe-check');
      const fd = await rawAddon.open(path, constants.O_RDWR | constants.O_CREAT | rawAddon.constants.O_DIRECT, 0o644);
      let works = fd >= 0;
      if (works) {
        const block = allocAligned(4096, 4096);
        works = (await rawAddon.pwrite(fd, block, 0)) === 4096;
        await rawAddon.close(fd);
      } else {
        expect(fd).toBe(-22);
      }
      expect(await probeDirectIO(dir)).toBe(works);
    }
    await expect(probeDirectIO('/nonexistent-dir')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('aligned buffers', () => {
  test('are zeroed, aligned and detach when freed', () => {
    for (const alignment of [512, 4096, 65536]) {
      const b = allocAligned(10_000, alignment);
      expect(b.length).toBe(10_000);
      expect(b.every((x) => x === 0)).toBe(true);
      expect(rawAddon.addressOf(b) % alignment).toBe(0);
      const view = b.subarray(100, 200);
      freeAligned(b);
      expect(b.length).toBe(0);
      expect(view.length).toBe(0);
      freeAligned(b); // idempotent
    }
  });

  test('are freed by their finalizer when dropped', async () => {
    await collectGarbage();
    const before = stats().liveAlignedBuffers;
    for (let i = 0; i < 200; i++) allocAligned(65536, 4096);
    expect(stats().liveAlignedBuffers).toBeGreaterThanOrEqual(before + 1);
    await collectGarbage();
    expect(stats().liveAlignedBuffers).toBe(before);
  });

  test('bad arguments', () => {
    expect(() => allocAligned(0)).toThrow(RangeError);
    expect(() => allocAligned(10, 3)).toThrow(/power of two/);
    expect(() => allocAligned('1' as never)).toThrow(TypeError);
    expect(() => freeAligned(Buffer.alloc(10))).toThrow(TypeError);
    expect(() => rawAddon.freeAligned(new ArrayBuffer(8))).toThrow(TypeError);
  });
});

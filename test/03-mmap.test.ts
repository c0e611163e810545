import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { File, PAGE_SIZE, rawAddon, stats } from '../src/native.js';
import { collectGarbage, tempDir } from './helpers/tmp.js';

async function fileWith(bytes: number, fill = 7): Promise<File> {
  const path = join(await tempDir(), 'f');
  await writeFile(path, Buffer.alloc(bytes, fill));
  return File.open(path, { write: true });
}

describe('mmap', () => {
  test('a read-only mapping sees the file; a writable one writes through to it', async () => {
    const f = await fileWith(2 * PAGE_SIZE);
    const ro = f.map(0, 2 * PAGE_SIZE);
    expect(ro.buffer.length).toBe(2 * PAGE_SIZE);
    expect(ro.buffer[0]).toBe(7);
    const rw = f.map(PAGE_SIZE, PAGE_SIZE, { writable: true });
    rw.buffer.write('mapped', 10);
    await rw.sync();
    const back = Buffer.alloc(6);
    await f.read(back, PAGE_SIZE + 10);
    expect(back.toString()).toBe('mapped');
    // Shared mappings of one file see each other's stores.
    expect(ro.buffer.subarray(PAGE_SIZE + 10, PAGE_SIZE + 16).toString()).toBe('mapped');
    ro.unmap();
    rw.unmap();
    await f.close();
  });

  test('after unmap every view reads as length 0 and using it does not crash', async () => {
    const f = await fileWith(PAGE_SIZE);
    const before = stats().liveMappings;
    const m = f.map(0, PAGE_SIZE);
    expect(stats().liveMappings).toBe(before + 1);
    const view = m.buffer.subarray(10, 20);
    const copy = Buffer.from(m.buffer.buffer, 0, 100);
    m.unmap();
    expect(stats().liveMappings).toBe(before);
    expect(m.unmapped).toBe(true);
    expect(m.buffer.length).toBe(0);
    expect(view.length).toBe(0);
    expect(copy.length).toBe(0);
    expect(view[0]).toBeUndefined();
    expect(m.buffer.toString()).toBe('');
    m.unmap(); // idempotent
    await expect(m.sync()).rejects.toMatchObject({ code: 'ECLOSED' });
    expect(() => m.advise(0, 0, 'willneed')).toThrow(/unmapped/);
    // The raw addon refuses a detached buffer instead of touching freed memory.
    expect(() => rawAddon.munmap(m.buffer.buffer as ArrayBuffer)).toThrow(TypeError);
    await f.close();
  });

  test('mappings dropped without unmap are unmapped by the finalizer: no leak over many maps', async () => {
    const f = await fileWith(PAGE_SIZE);
    await collectGarbage();
    const before = stats().liveMappings;
    for (let i = 0; i < 2000; i++) f.map(0, PAGE_SIZE).buffer[0];
    await collectGarbage();
    expect(stats().liveMappings).toBe(before);
    await f.close();
  });

  test('madvise accepts its advice values; msync covers sub-ranges', async () => {
    const f = await fileWith(4 * PAGE_SIZE);
    const m = f.map(0, 4 * PAGE_SIZE, { writable: true });
    for (const a of ['normal', 'random', 'sequential', 'willneed', 'dontneed'] as const) m.advise(100, PAGE_SIZE, a);
    expect(() => m.advise(0, 1, 'huge' as never)).toThrow(RangeError);
    m.buffer[3 * PAGE_SIZE + 5] = 9;
    await m.sync(3 * PAGE_SIZE + 5, 1);
    expect(() => m.advise(0, 5 * PAGE_SIZE, 'normal')).toThrow(RangeError);
    m.unmap();
    await f.close();
  });

  test('errors: unaligned offset, zero length, writable map of a read-only fd, closed file', async () => {
    const f = await fileWith(PAGE_SIZE);
    expect(() => f.map(1, 10)).toThrow(RangeError);
    expect(() => f.map(0, 0)).toThrow(RangeError);
    const ro = await File.open(f.path);
    expect(() => ro.map(0, PAGE_SIZE, { writable: true })).toThrow(expect.objectContaining({ code: 'EACCES', syscall: 'mmap' }));
    await ro.close();
    expect(typeof rawAddon.mmap(1_000_000, 0, PAGE_SIZE, false)).toBe('number');
    expect(rawAddon.mmap(1_000_000, 0, PAGE_SIZE, false)).toBe(-9);
    await f.close();
    expect(() => f.map(0, PAGE_SIZE)).toThrow(expect.objectContaining({ code: 'ECLOSED' }));
  });
});

describe('page-cache residency (mincore)', () => {
  test('drops after fadvise DONTNEED and returns after a read', async () => {
    const pages = 64;
    const f = await fileWith(pages * PAGE_SIZE);
    await f.datasync(); // DONTNEED cannot drop dirty pages
    await f.advise(0, 0, 'dontneed');
    const cold = f.residentPages(0, pages * PAGE_SIZE);
    expect(cold.total).toBe(pages);
    expect(cold.resident).toBeLessThan(pages / 4);
    await f.read(Buffer.alloc(pages * PAGE_SIZE), 0);
    expect(f.residentPages(0, pages * PAGE_SIZE).resident).toBe(pages);
    // Measuring does not fault pages in.
    await f.advise(0, 0, 'dontneed');
    const again = f.residentPages(0, pages * PAGE_SIZE);
    expect(f.residentPages(0, pages * PAGE_SIZE).resident).toBe(again.resident);
    expect(again.resident).toBeLessThan(pages / 4);
    expect(() => f.residentPages(1, 10)).toThrow(RangeError);
    expect(f.residentPages(0, 0)).toEqual({ resident: 0, total: 0 });
    expect(rawAddon.residentPages(1_000_000, 0, PAGE_SIZE)).toBe(-9);
    await f.close();
  });
});

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

describe('private read mappings (mapPrivate)', () => {
  test('writes stay in memory; resident() follows the page cache', async () => {
    const pages = 64;
    const f = await fileWith(pages * PAGE_SIZE);
    const m = f.mapPrivate(0, pages * PAGE_SIZE);
    m.buffer.fill(9, 0, 100);
    const back = Buffer.alloc(100);
    await f.read(back, 0);
    expect(back.every((b) => b === 7)).toBe(true);
    await f.datasync();
    await f.advise(0, 0, 'dontneed');
    // Never touched through the mapping, so DONTNEED could drop them: a read of them here would wait for the disk.
    expect(m.resident(8 * PAGE_SIZE, 8 * PAGE_SIZE)).toBe(false);
    expect(m.resident(0, 100)).toBe(true); // the page written to is the process's own now
    await f.read(Buffer.alloc(8 * PAGE_SIZE), 8 * PAGE_SIZE);
    expect(m.resident(8 * PAGE_SIZE, 8 * PAGE_SIZE)).toBe(true);
    expect(() => m.resident(0, pages * PAGE_SIZE + 1)).toThrow(RangeError);
    expect(() => f.mapPrivate(1, PAGE_SIZE)).toThrow(RangeError);
    m.unmap();
    await f.close();
  });

  test('truncate turns live mappings past the cut into zeros instead of SIGBUS; the part before it stays', async () => {
    const f = await fileWith(8 * PAGE_SIZE);
    // One from the start (room past the end, as a segment maps), one of a later range.
    const whole = f.mapPrivate(0, 16 * PAGE_SIZE);
    const later = f.mapPrivate(4 * PAGE_SIZE, 4 * PAGE_SIZE);
    const view = whole.buffer.subarray(0, 8 * PAGE_SIZE);
    expect(view.every((b) => b === 7)).toBe(true);
    const cut = 2 * PAGE_SIZE + 100;
    await f.truncate(cut);
    // Without the cover, touching these pages (wholly past the end now) kills the process with SIGBUS.
    expect(view.subarray(3 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
    expect(later.buffer.every((b) => b === 0)).toBe(true);
    expect(view.subarray(0, cut).every((b) => b === 7)).toBe(true);
    // Growing the file again does not bring pages into the covered range.
    await f.write(Buffer.alloc(6 * PAGE_SIZE, 5), cut);
    expect(view.subarray(3 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
    // Other files' mappings are not touched.
    const g = await fileWith(2 * PAGE_SIZE, 3);
    const other = g.mapPrivate(0, 2 * PAGE_SIZE);
    await f.truncate(0);
    expect(other.buffer.every((b) => b === 3)).toBe(true);
    for (const m of [whole, later, other]) m.unmap();
    await Promise.all([f.close(), g.close()]);
  });
});

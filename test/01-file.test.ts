import { execFileSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { File, freeBytes, fsyncDir, rawAddon, statSizes, stats } from '../src/native.js';
import { SeglogError } from '../src/errors.js';
import { injectFault } from './helpers/faults.js';
import { tempDir } from './helpers/tmp.js';

describe('File.open', () => {
  test('creates, and refuses an existing file with exclusive', async () => {
    const path = join(await tempDir(), 'a');
    const f = await File.open(path, { create: true, exclusive: true });
    await f.close();
    const err = await File.open(path, { create: true, exclusive: true }).catch((e) => e);
    expect(err).toBeInstanceOf(SeglogError);
    expect(err).toMatchObject({ code: 'EEXIST', errno: -17, syscall: 'open', path });
    expect(err.message).toBe(`EEXIST: file already exists, open '${path}'`);
  });

  test('ENOENT names path and syscall like node:fs', async () => {
    const path = join(await tempDir(), 'missing', 'x');
    await expect(File.open(path)).rejects.toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'open', path });
  });

  test('truncate empties an existing file; read-only refuses writes with EBADF', async () => {
    const path = join(await tempDir(), 'a');
    await writeFile(path, 'hello');
    const ro = await File.open(path);
    await expect(ro.write(Buffer.from('x'), 0)).rejects.toMatchObject({ code: 'EBADF', syscall: 'pwrite', path });
    await ro.close();
    const rw = await File.open(path, { truncate: true });
    expect(await rw.size()).toBe(0);
    await rw.close();
  });

  test('file mode applies to created files', async () => {
    const path = join(await tempDir(), 'a');
    await (await File.open(path, { create: true, mode: 0o600 })).close();
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  test('bad arguments are TypeError/RangeError before reaching the addon', async () => {
    await expect(File.open(42 as never)).rejects.toThrow(TypeError);
    await expect(File.open('')).rejects.toThrow(RangeError);
    await expect(File.open('a\0b')).rejects.toThrow(RangeError);
    await expect(File.open('/tmp/x', { write: 'yes' } as never)).rejects.toThrow(TypeError);
    await expect(File.open('/tmp/x', { exclusive: true })).rejects.toThrow(RangeError);
    await expect(File.open('/tmp/x', { mode: -1 })).rejects.toThrow(RangeError);
    await expect(File.open('/tmp/x', 'r' as never)).rejects.toThrow(TypeError);
  });
});

describe('reads and writes', () => {
  test('write/read at positions, writev/readv in order', async () => {
    const path = join(await tempDir(), 'a');
    const f = await File.open(path, { create: true });
    expect(await f.write(Buffer.from('hello'), 0)).toBe(5);
    expect(await f.writev([Buffer.from(' '), Buffer.alloc(0), Buffer.from('world')], 5)).toBe(6);
    expect(await f.size()).toBe(11);
    const into = Buffer.alloc(5);
    expect(await f.read(into, 6)).toBe(5);
    expect(into.toString()).toBe('world');
    const parts = [Buffer.alloc(3), Buffer.alloc(4)];
    expect(await f.readv(parts, 2)).toBe(7);
    expect(Buffer.concat(parts).toString()).toBe('llo wor');
    // At end of file a read returns fewer bytes, not an error.
    expect(await f.read(Buffer.alloc(10), 8)).toBe(3);
    expect(await f.read(Buffer.alloc(10), 100)).toBe(0);
    await f.close();
    expect(await readFile(path, 'utf8')).toBe('hello world');
  });

  test('writev with more chunks than IOV_MAX writes them all in order', async () => {
    const path = join(await tempDir(), 'a');
    const f = await File.open(path, { create: true });
    const chunks = Array.from({ length: 3000 }, (_, i) => Buffer.from(`${i},`));
    const total = chunks.reduce((n, c) => n + c.length, 0);
    expect(await f.writev(chunks, 0)).toBe(total);
    await f.close();
    expect(await readFile(path, 'utf8')).toBe(chunks.join(''));
  });

  test('writevNow writes on the calling thread, all chunks in order; errors throw like writev rejects', async () => {
    const path = join(await tempDir(), 'a');
    const f = await File.open(path, { create: true });
    const chunks = Array.from({ length: 3000 }, (_, i) => Buffer.from(`${i},`));
    const total = chunks.reduce((n, c) => n + c.length, 0);
    expect(f.writevNow(chunks, 0)).toBe(total);
    expect(f.writevNow([Buffer.from('!')], total)).toBe(1);
    expect(() => f.writevNow([Buffer.from('x'), 'y'] as never, 0)).toThrow(TypeError);
    expect(() => f.writevNow([Buffer.from('x')], -1)).toThrow(RangeError);
    await f.close();
    expect(() => f.writevNow([Buffer.from('x')], 0)).toThrow(expect.objectContaining({ code: 'ECLOSED' }));
    expect(await readFile(path, 'utf8')).toBe(`${chunks.join('')}!`);
    const ro = await File.open(path);
    expect(() => ro.writevNow([Buffer.from('x')], 0)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'pwritev', path }));
    await ro.close();
  });

  test('a write past the end leaves a hole of zeros', async () => {
    const path = join(await tempDir(), 'a');
    const f = await File.open(path, { create: true });
    await f.write(Buffer.from('x'), 4096);
    const into = Buffer.alloc(4097, 1);
    expect(await f.read(into, 0)).toBe(4097);
    expect(into.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    await f.close();
  });

  test('bad arguments', async () => {
    const f = await File.open(join(await tempDir(), 'a'), { create: true });
    await expect(f.write('text' as never, 0)).rejects.toThrow(TypeError);
    await expect(f.write(Buffer.from('x'), -1)).rejects.toThrow(RangeError);
    await expect(f.write(Buffer.from('x'), 1.5)).rejects.toThrow(RangeError);
    await expect(f.read(Buffer.alloc(1), Number.MAX_SAFE_INTEGER + 2)).rejects.toThrow(RangeError);
    await expect(f.writev([Buffer.from('x'), 'y'] as never, 0)).rejects.toThrow(TypeError);
    await expect(f.readv('x' as never, 0)).rejects.toThrow(TypeError);
    await f.close();
  });
});

describe('durability calls', () => {
  test('fsync and fdatasync run the syscall (counted by the addon)', async () => {
    const f = await File.open(join(await tempDir(), 'a'), { create: true });
    await f.write(Buffer.from('x'), 0);
    const before = stats();
    await f.datasync();
    await f.sync();
    const after = stats();
    expect(after.fdatasyncCalls - before.fdatasyncCalls).toBe(1);
    expect(after.fsyncCalls - before.fsyncCalls).toBe(1);
    await f.close();
  });

  test('writevDatasync writes every chunk, then runs fdatasync, in one call; a failure of either rejects', async () => {
    const path = join(await tempDir(), 'a');
    const f = await File.open(path, { create: true });
    const before = stats();
    expect(await f.writevDatasync([Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cde')], 3)).toBe(5);
    const after = stats();
    expect(after.fdatasyncCalls - before.fdatasyncCalls).toBe(1);
    expect(after.pwriteCalls - before.pwriteCalls).toBe(1);
    expect((await readFile(path)).subarray(3).toString()).toBe('abcde');
    injectFault('fdatasync', 'EIO');
    await expect(f.writevDatasync([Buffer.from('f')], 8)).rejects.toMatchObject({ code: 'EIO', syscall: 'pwritev+fdatasync' });
    injectFault('pwrite', 'ENOSPC');
    const syncs = stats().fdatasyncCalls;
    await expect(f.writevDatasync([Buffer.from('g')], 9)).rejects.toMatchObject({ code: 'ENOSPC' });
    // No fdatasync after a failed write.
    expect(stats().fdatasyncCalls).toBe(syncs);
    await expect(f.writevDatasync('x' as never, 0)).rejects.toThrow(TypeError);
    await expect(f.writevDatasync([Buffer.from('x')], -1)).rejects.toThrow(RangeError);
    expect(() => rawAddon.pwritevDatasync(1, [1] as never, 0)).toThrow(TypeError);
    expect(await rawAddon.pwritevDatasync(1_000_000, [Buffer.from('x')], 0)).toBe(-9);
    await f.close();
  });

  test('fsyncDir succeeds on a directory and fails on a missing one or a file', async () => {
    const dir = await tempDir();
    await fsyncDir(dir);
    await expect(fsyncDir(join(dir, 'nope'))).rejects.toMatchObject({ code: 'ENOENT', syscall: 'fsync' });
    await writeFile(join(dir, 'f'), '');
    await expect(fsyncDir(join(dir, 'f'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  test('freeBytes reports the filesystem\'s available bytes, and ENOENT for a missing path', async () => {
    const dir = await tempDir();
    const free = await freeBytes(dir);
    expect(Number.isSafeInteger(free)).toBe(true);
    expect(free).toBeGreaterThan(0);
    await expect(freeBytes(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT', syscall: 'statvfs' });
    await expect(freeBytes('' as never)).rejects.toThrow(RangeError);
  });

  test('openSized opens as open does and reports the size at open, in one call', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'f'), Buffer.alloc(7));
    const { file, size } = await File.openSized(join(dir, 'f'), { write: true });
    expect(size).toBe(7);
    expect(await file.write(Buffer.from('ab'), 7)).toBe(2);
    await file.close();
    const created = await File.openSized(join(dir, 'new'), { create: true });
    expect(created.size).toBe(0);
    await created.file.close();
    await expect(File.openSized(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open' });
  });

  test('statSizes reports the size of each name in a directory, undefined for a missing one', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a'), Buffer.alloc(5));
    await writeFile(join(dir, 'b'), '');
    expect(await statSizes(dir, ['a', 'missing', 'b', 'a'])).toEqual([5, undefined, 0, 5]);
    expect(await statSizes(dir, [])).toEqual([]);
    await expect(statSizes(join(dir, 'nope'), ['a'])).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open' });
    await expect(statSizes(dir, ['a/x'])).rejects.toMatchObject({ code: 'ENOTDIR', syscall: 'stat', path: join(dir, 'a/x') });
    await expect(statSizes(dir, 'a' as never)).rejects.toThrow(TypeError);
    await expect(statSizes(dir, ['a\0'])).rejects.toThrow(RangeError);
  });

  test('fsync on a bad descriptor is EBADF', async () => {
    // Through the raw addon: File never hands out a closed fd.
    expect(await rawAddon.fsync(1_000_000)).toBe(-9);
    expect(await rawAddon.fdatasync(-1)).toBe(-9);
    expect(await rawAddon.pwrite(1_000_000, Buffer.from('x'), 0)).toBe(-9);
    expect(await rawAddon.pread(1_000_000, Buffer.alloc(1), 0)).toBe(-9);
    expect(await rawAddon.fstatSize(1_000_000)).toBe(-9);
    expect(await rawAddon.close(1_000_000)).toBe(-9);
  });

  test('the raw addon rejects wrong argument types with TypeError, never a crash', () => {
    expect(() => rawAddon.pwrite('x' as never, Buffer.alloc(1), 0)).toThrow(TypeError);
    expect(() => rawAddon.pwrite(1, 'x' as never, 0)).toThrow(TypeError);
    expect(() => rawAddon.pwrite(1, new Uint16Array(2) as never, 0)).toThrow(TypeError);
    expect(() => rawAddon.pwrite(1, Buffer.alloc(1), 0.5)).toThrow(TypeError);
    expect(() => rawAddon.pwritev(1, [1] as never, 0)).toThrow(TypeError);
    expect(() => rawAddon.open('a\0b', 0, 0)).toThrow(TypeError);
    expect(() => (rawAddon.fsync as () => unknown)()).toThrow(TypeError);
  });
});

describe('space and cache calls', () => {
  test('allocate grows the file; keepSize reserves without growing', async () => {
    const f = await File.open(join(await tempDir(), 'a'), { create: true });
    await f.allocate(0, 8192, { keepSize: true });
    expect(await f.size()).toBe(0);
    await f.allocate(0, 8192);
    expect(await f.size()).toBe(8192);
    await expect(f.allocate(0, 0)).rejects.toThrow(RangeError);
    await f.close();
    const ro = await File.open(f.path);
    await expect(ro.allocate(0, 4096)).rejects.toMatchObject({ code: 'EBADF', syscall: 'fallocate' });
    await ro.close();
  });

  test('truncate shrinks and extends', async () => {
    const f = await File.open(join(await tempDir(), 'a'), { create: true });
    await f.write(Buffer.alloc(100, 7), 0);
    await f.truncate(10);
    expect(await f.size()).toBe(10);
    await f.truncate(50);
    expect(await f.size()).toBe(50);
    await expect(f.truncate(-1)).rejects.toThrow(RangeError);
    await f.close();
  });

  test('advise and syncRange accept every documented value and reject others', async () => {
    const f = await File.open(join(await tempDir(), 'a'), { create: true });
    await f.write(Buffer.alloc(8192, 1), 0);
    for (const a of ['normal', 'sequential', 'random', 'willneed', 'dontneed', 'noreuse'] as const) await f.advise(0, 0, a);
    await expect(f.advise(0, 0, 'forget' as never)).rejects.toThrow(RangeError);
    await f.syncRange(0, 0);
    await f.syncRange(0, 4096, { waitBefore: true, write: true, waitAfter: true });
    await expect(f.syncRange(0, 0, { write: 1 } as never)).rejects.toThrow(TypeError);
    await f.close();
    // posix_fadvise reports its error directly; the doorway still maps it.
    expect(await rawAddon.fadvise(1_000_000, 0, 0, 0)).toBe(-9);
    expect(await rawAddon.syncFileRange(1_000_000, 0, 0, 2)).toBe(-9);
  });
});

describe('close', () => {
  test('is idempotent, later calls reject with ECLOSED', async () => {
    const f = await File.open(join(await tempDir(), 'a'), { create: true });
    const a = f.close();
    const b = f.close();
    expect(a).toBe(b);
    await a;
    expect(f.closed).toBe(true);
    await expect(f.size()).rejects.toMatchObject({ code: 'ECLOSED' });
    expect(() => f.fd).toThrow(SeglogError);
  });

  test('waits for calls under way so the fd cannot be reused beneath them', async () => {
    const path = join(await tempDir(), 'a');
    const f = await File.open(path, { create: true });
    const writes = Array.from({ length: 50 }, (_, i) => f.write(Buffer.alloc(4096, i), i * 4096));
    await f.close();
    // Every write had finished on the right file by the time close resolved.
    expect(await Promise.all(writes)).toEqual(Array(50).fill(4096));
    const data = await readFile(path);
    expect(data.length).toBe(50 * 4096);
    for (let i = 0; i < 50; i++) expect(data[i * 4096]).toBe(i);
  });
});

describe('addon builds', () => {
  test('the product build has no fault injection; tests run the seglog_faults build', () => {
    // In a child: a process loads one build of the addon.
    const root = fileURLToPath(new URL('..', import.meta.url));
    const probe = "const a = require('./build/Release/seglog.node'); process.stdout.write(JSON.stringify(['injectFault' in a, 'faultPoints' in a]))";
    expect(JSON.parse(execFileSync(process.execPath, ['-e', probe], { cwd: root, encoding: 'utf8' }))).toEqual([false, false]);
    expect(typeof (rawAddon as unknown as { injectFault?: unknown }).injectFault).toBe('function');
  });
});

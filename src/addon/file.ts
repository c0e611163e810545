// Files: positioned reads and writes, syncs, space and advice, mappings,
// the directory lock and O_DIRECT probing.
import { unlink } from 'node:fs/promises';
import { constants as fsConstants, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { errnoError, SeglogError } from '../errors.js';
import { checkBoolean, checkBytes, checkInteger, checkOneOf, checkOptions, checkString } from '../validate.js';
import { addon, C, check, MAX_MAPPING, MAX_OFFSET, PAGE_SIZE } from './load.js';
import { directIOAlignment, type DirectIOAlignment } from './filesystem.js';
import { allocAligned, freeAligned, MappedRegion } from './memory.js';

const ERRNO = osConstants.errno;

export interface OpenOptions {
  /** Open for writing as well as reading. Default false. */
  write?: boolean;
  /** Create the file if missing (implies write). */
  create?: boolean;
  /** With create: fail with EEXIST if the file exists. */
  exclusive?: boolean;
  /** Truncate to 0 on open (implies write). */
  truncate?: boolean;
  /** O_DIRECT: bypass the page cache; every transfer must then be aligned. */
  direct?: boolean;
  /** O_DSYNC: each write returns once its data is durable. */
  dsync?: boolean;
  /** Permission bits for a created file. Default 0o644. */
  mode?: number;
}

export type FileAdvice = 'normal' | 'sequential' | 'random' | 'willneed' | 'dontneed' | 'noreuse';
const FILE_ADVICE: Record<FileAdvice, number> = {
  normal: C.POSIX_FADV_NORMAL,
  sequential: C.POSIX_FADV_SEQUENTIAL,
  random: C.POSIX_FADV_RANDOM,
  willneed: C.POSIX_FADV_WILLNEED,
  dontneed: C.POSIX_FADV_DONTNEED,
  noreuse: C.POSIX_FADV_NOREUSE,
};

export interface SyncRangeOptions {
  waitBefore?: boolean;
  /** Start writeback of the range's dirty pages. Default true. */
  write?: boolean;
  waitAfter?: boolean;
}


/**
 * An open file. close() waits for calls already under way and for pinned
 * work (pin()), so an fd number is never reused while one of them could
 * still touch it. Calls made after close() reject with ECLOSED, except while
 * pinned work is still running: a read pinned before the close may finish.
 */
export class File {
  readonly path: string;
  readonly direct: boolean;
  /** For direct files: the alignment every transfer must honour. */
  readonly alignment: DirectIOAlignment | undefined;
  #fd: number;
  /** Calls and pins under way: close() waits for them. */
  #inflight = 0;
  #pins = 0;
  #closing: Promise<void> | undefined;
  #drained: (() => void) | undefined;

  private constructor(path: string, fd: number, alignment: DirectIOAlignment | undefined) {
    this.path = path;
    this.#fd = fd;
    this.direct = alignment !== undefined;
    this.alignment = alignment;
  }

  static async open(path: string, options?: OpenOptions): Promise<File> {
    return (await File.#open(path, options, false)).file;
  }

  /** open() and the file's size then, in one threadpool round trip instead of open() and size()'s two. */
  static openSized(path: string, options?: OpenOptions): Promise<{ file: File; size: number }> {
    return File.#open(path, options, true);
  }

  static async #open(path: string, options: OpenOptions | undefined, stat: boolean): Promise<{ file: File; size: number }> {
    checkString('path', path);
    const o = checkOptions<OpenOptions>('options', options);
    const bool = (name: keyof OpenOptions) => (o[name] === undefined ? false : checkBoolean(`options.${name}`, o[name]));
    const mode = o.mode === undefined ? 0o644 : checkInteger('options.mode', o.mode, 0, 0o7777);
    const create = bool('create');
    const exclusive = bool('exclusive');
    const truncate = bool('truncate');
    const direct = bool('direct');
    if (exclusive && !create) throw new RangeError('options.exclusive requires options.create');
    let flags = bool('write') || create || truncate ? fsConstants.O_RDWR : fsConstants.O_RDONLY;
    if (create) flags |= fsConstants.O_CREAT;
    if (exclusive) flags |= fsConstants.O_EXCL;
    if (truncate) flags |= fsConstants.O_TRUNC;
    if (direct) flags |= C.O_DIRECT;
    if (bool('dsync')) flags |= C.O_DSYNC;
    const opened = await addon.open(path, flags, mode, stat ? 1 : 0);
    const [fd, size] = typeof opened === 'number' ? [check(opened, 'open', path), -1] : [opened[0], opened[1]];
    if (!direct) return { file: new File(path, fd, undefined), size };
    try {
      return { file: new File(path, fd, await directIOAlignment(path)), size };
    } catch (err) {
      await addon.close(fd);
      throw err;
    }
  }

  /** The file descriptor; throws ECLOSED once close() was called and no pinned work keeps it open. */
  get fd(): number {
    if (this.#closing !== undefined && this.#pins === 0) throw new SeglogError('ECLOSED', `file is closed: ${this.path}`, { path: this.path });
    return this.#fd;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Runs one addon call with the fd pinned open until it settles. */
  async #call(syscall: string, op: (fd: number) => Promise<number>): Promise<number> {
    const fd = this.fd;
    this.#inflight++;
    try {
      return check(await op(fd), syscall, this.path);
    } finally {
      if (--this.#inflight === 0 && this.#drained !== undefined) this.#drained();
    }
  }

  /**
   * Keeps the file usable while `work` runs, even if close() is called
   * meanwhile (e.g. a multi-step read, or a sendfile using the fd).
   */
  async pin<T>(work: (fd: number) => Promise<T>): Promise<T> {
    const fd = this.fd;
    this.#inflight++;
    this.#pins++;
    try {
      return await work(fd);
    } finally {
      this.#pins--;
      if (--this.#inflight === 0 && this.#drained !== undefined) this.#drained();
    }
  }

  #checkDirect(what: string, position: number, length: number, address?: number): void {
    const a = this.alignment;
    if (a === undefined) return;
    if (position % a.offset !== 0 || length % a.offset !== 0) {
      throw new RangeError(`${what} on an O_DIRECT file needs position and length aligned to ${a.offset} bytes (got ${position}, ${length})`);
    }
    if (address !== undefined && address % a.memory !== 0) {
      throw new RangeError(`${what} on an O_DIRECT file needs a buffer aligned to ${a.memory} bytes; use allocAligned()`);
    }
  }

  async size(): Promise<number> {
    return this.#call('fstat', (fd) => addon.fstatSize(fd));
  }

  /** Writes all of `data` at `position` (short writes are continued). */
  async write(data: Uint8Array, position: number): Promise<number> {
    checkBytes('data', data);
    checkInteger('position', position, 0, MAX_OFFSET - data.length);
    this.#checkDirect('write', position, data.length, data.length === 0 ? undefined : addon.addressOf(data));
    return this.#call('pwrite', (fd) => addon.pwrite(fd, data, position));
  }

  /** Writes every chunk, in order, starting at `position`. */
  async writev(chunks: Uint8Array[], position: number): Promise<number> {
    this.#checkWritev('writev', chunks, position);
    return this.#call('pwritev', (fd) => addon.pwritev(fd, chunks, position));
  }

  #checkWritev(what: string, chunks: Uint8Array[], position: number): void {
    const total = checkChunks('chunks', chunks);
    checkInteger('position', position, 0, MAX_OFFSET - total);
    for (const c of chunks) this.#checkDirect(what, position, c.length, c.length === 0 ? undefined : addon.addressOf(c));
  }

  /**
   * writev on the calling thread, for small page-cache writes where the
   * threadpool round trip costs more than the copy. Not for O_DIRECT or
   * O_DSYNC files: those wait for the device.
   */
  writevNow(chunks: Uint8Array[], position: number): number {
    const total = checkChunks('chunks', chunks);
    checkInteger('position', position, 0, MAX_OFFSET - total);
    if (this.direct) throw new RangeError('writevNow on an O_DIRECT file would wait for the device on the event loop; use writev');
    return check(addon.pwritevSync(this.fd, chunks, position), 'pwritev', this.path);
  }

  /** Reads into `into` from `position`; returns bytes read, fewer only at end of file. */
  async read(into: Uint8Array, position: number): Promise<number> {
    checkBytes('into', into);
    checkInteger('position', position, 0, MAX_OFFSET);
    this.#checkDirect('read', position, into.length, into.length === 0 ? undefined : addon.addressOf(into));
    return this.#call('pread', (fd) => addon.pread(fd, into, position));
  }

  /**
   * read(), served on this thread where the page cache holds the range
   * (preadv2 RWF_NOWAIT): a cache hit pays no threadpool round trip. What
   * the cache lacks is read on the threadpool as read() does, so the event
   * loop never waits on the disk. O_DIRECT files always take the threadpool.
   */
  async readHot(into: Uint8Array, position: number): Promise<number> {
    checkBytes('into', into);
    checkInteger('position', position, 0, MAX_OFFSET);
    if (this.direct || into.length === 0) return this.read(into, position);
    const n = addon.preadNowait(this.fd, into, position);
    if (n === into.length) return n;
    // EOPNOTSUPP: a filesystem without RWF_NOWAIT reads; everything goes to the threadpool there.
    if (n < 0 && n !== -ERRNO.EAGAIN && n !== -ERRNO.EOPNOTSUPP) throw errnoError(n, 'preadv2', this.path);
    const done = Math.max(n, 0);
    return done + (await this.read(into.subarray(done), position + done));
  }

  async readv(into: Uint8Array[], position: number): Promise<number> {
    checkChunks('into', into);
    checkInteger('position', position, 0, MAX_OFFSET);
    for (const c of into) this.#checkDirect('readv', position, c.length, c.length === 0 ? undefined : addon.addressOf(c));
    return this.#call('preadv', (fd) => addon.preadv(fd, into, position));
  }

  async sync(): Promise<void> {
    await this.#call('fsync', (fd) => addon.fsync(fd));
  }

  /**
   * writev, then datasync, in one threadpool job with no trip back to JS
   * between them: resolves with the bytes written once they are durable. A
   * failure of either rejects (syscall 'pwritev+fdatasync').
   */
  async writevDatasync(chunks: Uint8Array[], position: number): Promise<number> {
    this.#checkWritev('writevDatasync', chunks, position);
    return this.#call('pwritev+fdatasync', (fd) => addon.pwritevDatasync(fd, chunks, position));
  }

  async datasync(): Promise<void> {
    await this.#call('fdatasync', (fd) => addon.fdatasync(fd));
  }

  /** Reserves blocks for [offset, offset+length); keepSize leaves the file size as it is. */
  async allocate(offset: number, length: number, options?: { keepSize?: boolean }): Promise<void> {
    checkInteger('offset', offset);
    checkInteger('length', length, 1, MAX_OFFSET - offset);
    const o = checkOptions<{ keepSize?: boolean }>('options', options);
    const keep = o.keepSize === undefined ? false : checkBoolean('options.keepSize', o.keepSize);
    await this.#call('fallocate', (fd) => addon.fallocate(fd, keep ? C.FALLOC_FL_KEEP_SIZE : 0, offset, length));
  }

  /** Cuts or extends the file to `length`; mapPrivate() mappings of it read zeros past a cut instead of faulting. */
  async truncate(length: number): Promise<void> {
    checkInteger('length', length);
    check(addon.coverMappings(this.fd, length), 'mmap', this.path);
    await this.#call('ftruncate', (fd) => addon.ftruncate(fd, length));
  }

  /** posix_fadvise over [offset, offset+length); length 0 means to the end of the file. */
  async advise(offset: number, length: number, advice: FileAdvice): Promise<void> {
    checkInteger('offset', offset);
    checkInteger('length', length, 0, MAX_OFFSET - offset);
    const a = FILE_ADVICE[checkOneOf('advice', advice, Object.keys(FILE_ADVICE) as FileAdvice[])];
    await this.#call('fadvise', (fd) => addon.fadvise(fd, offset, length, a));
  }

  /** sync_file_range over [offset, offset+length); length 0 means to the end of the file. */
  async syncRange(offset: number, length: number, options?: SyncRangeOptions): Promise<void> {
    checkInteger('offset', offset);
    checkInteger('length', length, 0, MAX_OFFSET - offset);
    const o = checkOptions<SyncRangeOptions>('options', options);
    const flag = (name: keyof SyncRangeOptions, dflt: boolean) => (o[name] === undefined ? dflt : checkBoolean(`options.${name}`, o[name]));
    const flags =
      (flag('waitBefore', false) ? C.SYNC_FILE_RANGE_WAIT_BEFORE : 0) |
      (flag('write', true) ? C.SYNC_FILE_RANGE_WRITE : 0) |
      (flag('waitAfter', false) ? C.SYNC_FILE_RANGE_WAIT_AFTER : 0);
    await this.#call('sync_file_range', (fd) => addon.syncFileRange(fd, offset, length, flags));
  }

  /** Maps [offset, offset+length) of the file, which must lie inside it (RangeError otherwise); offset must be page aligned. */
  map(offset: number, length: number, options?: { writable?: boolean }): MappedRegion {
    checkInteger('offset', offset);
    if (offset % PAGE_SIZE !== 0) throw new RangeError(`offset must be a multiple of the page size ${PAGE_SIZE}, got ${offset}`);
    checkInteger('length', length, 1, Math.min(MAX_OFFSET - offset, MAX_MAPPING));
    const o = checkOptions<{ writable?: boolean }>('options', options);
    const writable = o.writable === undefined ? false : checkBoolean('options.writable', o.writable);
    // Touching a mapped page past the end of the file raises SIGBUS: map only what the file holds.
    const size = fstatSync(this.fd).size;
    if (offset + length > size) {
      throw new RangeError(`cannot map [${offset}, ${offset + length}) of ${this.path}: the file holds ${size} bytes (pages past its end would raise SIGBUS)`);
    }
    const result = addon.mmap(this.fd, offset, length, writable);
    if (typeof result === 'number') throw errnoError(result, 'mmap', this.path);
    return new MappedRegion(result, this.path);
  }

  /**
   * [offset, offset+length) of the file mapped private (offset a multiple of
   * the page size): writes to it stay in this process's memory. It may reach
   * past the end of the file, which may grow into it, but a page wholly past
   * the end raises SIGBUS when touched: touch only what the file holds, and
   * (on the event loop) only what MappedRegion.resident() says is in memory.
   * truncate() first turns the pages of live private mappings past the new
   * end into zeros, so views that were valid never fault. Unmapped when
   * garbage collected, or unmap().
   */
  mapPrivate(offset: number, length: number): MappedRegion {
    checkInteger('offset', offset, 0, MAX_OFFSET);
    if (offset % PAGE_SIZE !== 0) throw new RangeError(`offset must be a multiple of the page size ${PAGE_SIZE}, got ${offset}`);
    checkInteger('length', length, 1, Math.min(MAX_OFFSET - offset, MAX_MAPPING));
    const result = addon.mapPrivate(this.fd, offset, length);
    if (typeof result === 'number') throw errnoError(result, 'mmap', this.path);
    return new MappedRegion(result, this.path);
  }

  /** How many pages of [offset, offset+length) sit in the page cache (mincore). */
  residentPages(offset: number, length: number): { resident: number; total: number } {
    checkInteger('offset', offset);
    if (offset % PAGE_SIZE !== 0) throw new RangeError(`offset must be a multiple of the page size ${PAGE_SIZE}, got ${offset}`);
    checkInteger('length', length, 0, MAX_OFFSET - offset);
    const resident = check(addon.residentPages(this.fd, offset, length), 'mincore', this.path);
    return { resident, total: Math.ceil(length / PAGE_SIZE) };
  }

  /** Closes the file once calls under way have settled. Idempotent. */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = (async () => {
        if (this.#inflight > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
        check(await addon.close(this.#fd), 'close', this.path);
      })();
    }
    return this.#closing;
  }
}

function checkChunks(name: string, chunks: unknown): number {
  if (!Array.isArray(chunks)) throw new TypeError(`${name} must be an array of Uint8Array`);
  let total = 0;
  chunks.forEach((c, i) => (total += checkBytes(`${name}[${i}]`, c).length));
  return total;
}

/**
 * Takes an exclusive flock on `file` without waiting: false when another
 * open file description (this process or another) holds it.
 */
export function tryLockExclusive(file: File): Promise<boolean> {
  if (!(file instanceof File)) throw new TypeError('file must be a File');
  // flock(LOCK_EX | LOCK_NB) never waits, so the addon runs it on this thread.
  return file.pin(async (fd) => check(addon.tryLockExclusive(fd), 'flock', file.path) === 1);
}

/**
 * Whether files in directory `dir` accept O_DIRECT: creates a scratch file,
 * writes one aligned block through O_DIRECT and removes it. False when the
 * filesystem refuses (EINVAL), so callers fall back to buffered I/O.
 */
export async function probeDirectIO(dir: string): Promise<boolean> {
  checkString('dir', dir);
  const path = join(dir, `.seglog-odirect-probe-${process.pid}-${Date.now()}`);
  let file: File;
  try {
    file = await File.open(path, { create: true, exclusive: true, direct: true });
  } catch (err) {
    if ((err as SeglogError).code === 'EINVAL') return false;
    throw err;
  }
  const block = allocAligned(Math.max(file.alignment!.offset, file.alignment!.memory), file.alignment!.memory);
  try {
    await file.write(block, 0);
    return true;
  } catch (err) {
    if ((err as SeglogError).code === 'EINVAL') return false;
    throw err;
  } finally {
    freeAligned(block);
    await file.close();
    await unlink(path);
  }
}

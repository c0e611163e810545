// Filesystem-level calls that need no open File: directory fsync, free
// space, file sizes by name and O_DIRECT alignment.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { errnoError } from '../errors.js';
import { checkString } from '../validate.js';
import { addon, check } from './load.js';

const ERRNO = osConstants.errno;

/** Alignment O_DIRECT transfers need on a filesystem, and where the figure came from. */
export interface DirectIOAlignment {
  /** Required alignment of the memory address, in bytes. */
  memory: number;
  /** Required alignment of file offsets and lengths, in bytes. */
  offset: number;
  source: 'statx' | 'blockdev' | 'default';
}

/**
 * Bytes available to unprivileged writers on the filesystem holding `path`
 * (statvfs); undefined when that filesystem reports no size at all (0 total
 * blocks, as some FUSE filesystems do): free space unknown.
 */
export async function freeBytes(path: string): Promise<number | undefined> {
  checkString('path', path);
  const result = await addon.freeBytes(path);
  // The addon's answer for a filesystem that reports 0 total blocks.
  if (result === -ERRNO.ENODATA) return undefined;
  return check(result, 'statvfs', path);
}

/**
 * The sizes of the files `names` in `dir`, in one threadpool job (instead of
 * one per file); undefined for a name that does not exist. Follows symlinks.
 */
export async function statSizes(dir: string, names: readonly string[]): Promise<Array<number | undefined>> {
  checkString('dir', dir);
  if (!Array.isArray(names)) throw new TypeError('names must be an array of strings');
  names.forEach((n, i) => checkString(`names[${i}]`, n));
  const result = await addon.statSizes(dir, [...names]);
  // A bare number: -errno, or 0 with no sizes after it (no names).
  if (typeof result === 'number') return result < 0 ? Promise.reject(errnoError(result, 'open', dir)) : [];
  return names.map((name, i) => {
    const size = result[i + 1]!;
    if (size === -ERRNO.ENOENT) return undefined;
    return check(size, 'stat', join(dir, name));
  });
}

/** fsync of a directory: makes entries created, renamed or removed in it durable. */
export async function fsyncDir(path: string): Promise<void> {
  checkString('path', path);
  check(await addon.fsyncDir(path), 'fsync', path);
}

/**
 * The alignment O_DIRECT needs for files at `path`: statx's STATX_DIOALIGN
 * where the kernel and filesystem report it, else the device's logical block
 * size, else 4096.
 */
export async function directIOAlignment(path: string): Promise<DirectIOAlignment> {
  checkString('path', path);
  const r = await addon.statxDio(path);
  if (typeof r === 'number') throw errnoError(r, 'statx', path);
  const [, memory, offset, major, minor] = r;
  if (memory > 0 && offset > 0) return { memory, offset, source: 'statx' };
  try {
    const text = await readFile(`/sys/dev/block/${major}:${minor}/queue/logical_block_size`, 'utf8');
    const size = Number.parseInt(text, 10);
    if (size > 0) return { memory: size, offset: size, source: 'blockdev' };
  } catch {
    // No block device behind this filesystem (tmpfs, overlay): use the default.
  }
  return { memory: 4096, offset: 4096, source: 'default' };
}


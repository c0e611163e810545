// The `cache` option of Log and LogStore: which read path a log uses and,
// in 'own' mode, how much memory it may take.
import { checkInteger, checkOneOf, checkOptions } from '../validate.js';

/**
 * - 'pagecache' (default): reads go through the kernel's page cache (pread,
 *   sendfile); the kernel decides what stays in memory.
 * - 'own': recently appended bytes are kept in a tail cache (tailBytes, one
 *   budget per LogStore) and tailing reads are served from it; other reads
 *   (catch-up) go through a read-ahead buffer of readAheadBytes per reader,
 *   with O_DIRECT where the filesystem takes it, and leave nothing in the
 *   page cache; batches that point reads (readRecord) fetch are kept in a
 *   read cache (readCacheBytes, one budget per LogStore) for the next point
 *   read of them; written data is dropped from the page cache once on disk.
 */
export type CacheOptions =
  | { mode: 'pagecache' }
  | {
      mode: 'own';
      /** Memory for the tail cache, shared by every log of a store. Default 64 MiB. */
      tailBytes?: number;
      /** Read-ahead buffer of each catch-up reader. Should be at least the reads' maxBytes. Default 2 MiB. */
      readAheadBytes?: number;
      /**
       * Memory for batches fetched by point reads (readRecord), shared by every
       * log of a store, least recently used evicted first. Catch-up reads neither
       * fill nor evict it. Size it to the point reads' working set. Default
       * 64 MiB; 0 turns it off.
       */
      readCacheBytes?: number;
      /** O_DIRECT for catch-up reads: 'auto' where the filesystem accepts it, 'on' (refuse to open where it does not), 'off'. Default 'auto'. */
      directIO?: 'auto' | 'on' | 'off';
      /** Bandwidth of all catch-up reads together (per store), in bytes per second. Default 0: unbounded (still at most two reads at a time). */
      catchUpBytesPerSecond?: number;
    };

export interface OwnCacheConfig {
  mode: 'own';
  tailBytes: number;
  readAheadBytes: number;
  readCacheBytes: number;
  directIO: 'auto' | 'on' | 'off';
  catchUpBytesPerSecond: number;
}

export type CacheConfig = { mode: 'pagecache' } | OwnCacheConfig;

const MiB = 1024 * 1024;
export const PAGECACHE: CacheConfig = { mode: 'pagecache' };
const OWN_DEFAULTS = { tailBytes: 64 * MiB, readAheadBytes: 2 * MiB, readCacheBytes: 64 * MiB, directIO: 'auto', catchUpBytesPerSecond: 0 } as const;

export function checkCacheOptions(name: string, options: unknown): CacheConfig {
  if (options === undefined) return PAGECACHE;
  const o = checkOptions<{ mode: string; tailBytes: number; readAheadBytes: number; readCacheBytes: number; directIO: string; catchUpBytesPerSecond: number }>(name, options);
  const mode = checkOneOf(`${name}.mode`, o.mode, ['pagecache', 'own']);
  if (mode === 'pagecache') {
    for (const key of ['tailBytes', 'readAheadBytes', 'readCacheBytes', 'directIO', 'catchUpBytesPerSecond'] as const) {
      if (o[key] !== undefined) throw new RangeError(`${name}.${key} applies to mode 'own' only`);
    }
    return PAGECACHE;
  }
  return {
    mode,
    // 0 turns the tail cache off: every read is a catch-up read.
    tailBytes: o.tailBytes === undefined ? OWN_DEFAULTS.tailBytes : checkInteger(`${name}.tailBytes`, o.tailBytes, 0, 2 ** 46),
    // At least a page, at most what one aligned buffer may be.
    readAheadBytes: o.readAheadBytes === undefined ? OWN_DEFAULTS.readAheadBytes : checkInteger(`${name}.readAheadBytes`, o.readAheadBytes, 4096, 1024 * MiB),
    // 0 turns the read cache off: every point read that misses the tail cache goes to disk.
    readCacheBytes: o.readCacheBytes === undefined ? OWN_DEFAULTS.readCacheBytes : checkInteger(`${name}.readCacheBytes`, o.readCacheBytes, 0, 2 ** 46),
    directIO: o.directIO === undefined ? OWN_DEFAULTS.directIO : checkOneOf(`${name}.directIO`, o.directIO, ['auto', 'on', 'off']),
    catchUpBytesPerSecond:
      o.catchUpBytesPerSecond === undefined
        ? OWN_DEFAULTS.catchUpBytesPerSecond
        : checkInteger(`${name}.catchUpBytesPerSecond`, o.catchUpBytesPerSecond, 0, Number.MAX_SAFE_INTEGER),
  };
}

// The cache counters a Log and a LogStore report, with the same names in
// both cache modes so that the modes can be compared side by side.
import { PAGE_SIZE } from '../native.js';
import type { Segment } from '../segment/segment.js';

export interface CacheStats {
  mode: 'pagecache' | 'own';
  /** Whether catch-up reads bypass the page cache with O_DIRECT (own mode with directIO 'auto' or 'on', where the filesystem takes it). */
  directIO: boolean;
  /** Reads (one per segment a read touches) served from the tail cache, without a system call. */
  tailHits: number;
  /** Reads that went to the files: catch-up reads in own mode, every read in pagecache mode. */
  tailMisses: number;
  /** Bytes of batches served from the tail cache. */
  tailHitBytes: number;
  /** Point reads (readRecord) that missed the tail cache and were served from the read cache, without a system call (own mode). */
  readCacheHits: number;
  /**
   * Bytes the missing reads took from the files: in own mode what the
   * read-ahead buffers read from disk; in pagecache mode the batches read,
   * which the kernel may have found in its cache (see residency()).
   */
  catchUpBytesFromDisk: number;
  /** Memory the cache holds now: tail cache blocks, read cache batches and read-ahead buffers (0 in pagecache mode). */
  cacheBytes: number;
  /**
   * Read system calls of reads. Own mode counts its own preads; pagecache
   * mode takes the addon's pread and sendfile counters over the time its
   * reads and transfers run, so file reads that other code (another log)
   * runs at the same time are counted as well.
   */
  readSyscalls: number;
}

/** How much of a log's files sits in the page cache (mincore), in bytes of whole pages. */
export interface Residency {
  residentBytes: number;
  fileBytes: number;
}

export type Counter = 'tailHits' | 'tailMisses' | 'tailHitBytes' | 'readCacheHits' | 'catchUpBytesFromDisk' | 'readSyscalls';

/** A log's counters; each addition also goes to its store's totals. */
export class CacheCounters {
  tailHits = 0;
  tailMisses = 0;
  tailHitBytes = 0;
  readCacheHits = 0;
  catchUpBytesFromDisk = 0;
  readSyscalls = 0;
  readonly #parent: CacheCounters | undefined;

  constructor(parent?: CacheCounters) {
    this.#parent = parent;
  }

  add(counter: Counter, n: number): void {
    this[counter] += n;
    this.#parent?.add(counter, n);
  }

  snapshot(): Pick<CacheStats, Counter> {
    const { tailHits, tailMisses, tailHitBytes, readCacheHits, catchUpBytesFromDisk, readSyscalls } = this;
    return { tailHits, tailMisses, tailHitBytes, readCacheHits, catchUpBytesFromDisk, readSyscalls };
  }
}

/** Page-cache residency of the segments' .log files; segments closed meanwhile (retention) are left out. */
export async function residency(segments: readonly Segment[]): Promise<Residency> {
  let residentPages = 0;
  let filePages = 0;
  for (const s of segments) {
    // A segment not read since a clean reopen is opened for it (Segment.load).
    await s.load();
    if (s.closed) continue;
    const length = Math.ceil(s.size / PAGE_SIZE) * PAGE_SIZE;
    const r = await s.log.pin(async () => s.log.residentPages(0, length));
    residentPages += r.resident;
    filePages += r.total;
  }
  return { residentBytes: residentPages * PAGE_SIZE, fileBytes: filePages * PAGE_SIZE };
}

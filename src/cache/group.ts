// What the logs of one store share in a cache mode: the tail cache budget, the read cache,
// the bounds on concurrent catch-up reads and their bandwidth, whether O_DIRECT works where they
// live, and the store's totals of the cache counters. A Log opened on its
// own has a group of its own.
import { SeglogError } from '../errors.js';
import { directIOAlignment, PAGE_SIZE, probeDirectIO } from '../native.js';
import { PageCacheLog, type LogCache, type SyncPolicy } from './log-cache.js';
import type { CacheConfig } from './options.js';
import { OwnLog, type OwnCacheShared } from './own-cache.js';
import { Pace } from './pace.js';
import type { ReadAheadStream } from './read-ahead.js';
import { ReadCache } from './read-cache.js';
import { Semaphore } from './semaphore.js';
import { CacheCounters, type CacheStats } from './stats.js';
import { TailBudget } from './tail.js';

/** Catch-up reads that may wait on the disk at once, per store. */
const CATCH_UP_READS = 2;
/** Read-ahead buffers kept between reads, per store: a store of many logs must not keep one per log. */
const IDLE_STREAMS = 8;

export class CacheGroup implements OwnCacheShared {
  readonly mode: 'pagecache' | 'own';
  /** The store's totals: every log's counters add to them. */
  readonly counters = new CacheCounters();
  /** The tail cache's memory; undefined in pagecache mode or with tailBytes 0. */
  readonly budget: TailBudget | undefined;
  /** Batches point reads fetched; undefined in pagecache mode or with readCacheBytes 0. */
  readonly readCache: ReadCache | undefined;
  readonly readAheadBytes: number;
  /** Of read-ahead buffers, file positions and lengths: what O_DIRECT needs, and at least a page. */
  readonly alignment: number;
  readonly directIO: boolean;
  readonly catchUpSlots = new Semaphore(CATCH_UP_READS);
  /** The bound on catch-up bandwidth; undefined: none. */
  readonly catchUpPace: Pace | undefined;
  readonly #logs = new Set<LogCache>();
  /** Streams between reads that still hold a buffer, least recently used first. */
  #idle: ReadAheadStream[] = [];

  private constructor(config: CacheConfig, directIO: boolean, alignment: number) {
    this.mode = config.mode;
    this.directIO = directIO;
    this.alignment = alignment;
    this.readAheadBytes = config.mode === 'own' ? config.readAheadBytes : 0;
    this.budget = config.mode === 'own' && config.tailBytes > 0 ? new TailBudget(config.tailBytes) : undefined;
    this.readCache = config.mode === 'own' && config.readCacheBytes > 0 ? new ReadCache(config.readCacheBytes) : undefined;
    this.catchUpPace = config.mode === 'own' && config.catchUpBytesPerSecond > 0 ? new Pace(config.catchUpBytesPerSecond) : undefined;
  }

  /** The group for logs under `dir`; with directIO 'auto' or 'on', probes whether O_DIRECT works there. */
  static async open(config: CacheConfig, dir: string): Promise<CacheGroup> {
    if (config.mode === 'pagecache' || config.directIO === 'off') return new CacheGroup(config, false, PAGE_SIZE);
    if (!(await probeDirectIO(dir))) {
      if (config.directIO === 'on') {
        throw new SeglogError('EINVAL', `the filesystem of ${dir} refuses O_DIRECT, which cache.directIO 'on' requires`, { path: dir });
      }
      return new CacheGroup(config, false, PAGE_SIZE);
    }
    const a = await directIOAlignment(dir);
    return new CacheGroup(config, true, Math.max(PAGE_SIZE, a.memory, a.offset));
  }

  /** A read-ahead stream's read is done: it keeps its buffer unless that makes too many kept. */
  parked(stream: ReadAheadStream): void {
    this.taken(stream);
    this.#idle.push(stream);
    if (this.#idle.length > IDLE_STREAMS) this.#idle.shift()!.free();
  }

  /** A stream is in use again, or gone. */
  taken(stream: ReadAheadStream): void {
    this.#idle = this.#idle.filter((s) => s !== stream);
  }

  /**
   * A cache for one log that syncs as `syncs` says; `onError` gets failures that must stop the log (background
   * writeback); its unsettled appends hold at most `maxPendingBytes` of the tail cache's memory.
   */
  attach(onError: (err: unknown) => void, syncs: SyncPolicy, maxPendingBytes: number): LogCache {
    const counters = new CacheCounters(this.counters);
    const cache = this.mode === 'own' ? new OwnLog(this, counters, onError, syncs, maxPendingBytes) : new PageCacheLog(counters);
    this.#logs.add(cache);
    return cache;
  }

  /** Closes a log's cache; its counts stay in the totals. */
  async detach(cache: LogCache): Promise<void> {
    this.#logs.delete(cache);
    await cache.close();
  }

  stats(): CacheStats {
    let cacheBytes = 0;
    for (const c of this.#logs) cacheBytes += c.cacheBytes;
    return { mode: this.mode, directIO: this.directIO, ...this.counters.snapshot(), cacheBytes };
  }
}

/** A log's figures, in the same shape as its store's. */
export function logCacheStats(cache: LogCache): CacheStats {
  return { mode: cache.mode, directIO: cache.directIO, ...cache.counters.snapshot(), cacheBytes: cache.cacheBytes };
}

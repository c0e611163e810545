// LogStore: many logs in one data directory, one subdirectory each, under an
// exclusive lock, with Kafka-style checkpoint files (recovery points, start
// offsets, high watermarks) and one scheduler for interval flushes,
// checkpoints, retention, cleaning of compacted logs and delayed deletes.
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SeglogError } from '../errors.js';
import { CLEAN_SHUTDOWN_FILE, LOCK_FILE, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT } from '../layout.js';
import { Log, type LogOptions } from '../log/log.js';
import { checkCleanerOptions, CLEANER_MEMORY_BYTES } from '../log/options.js';
import { StoreCleaner, type CleanerRun } from './store-cleaner.js';
import { File, fsyncDir, tryLockExclusive } from '../native.js';
import { CacheGroup } from '../cache/group.js';
import { checkCacheOptions } from '../cache/options.js';
import type { CacheStats, Residency } from '../cache/stats.js';
import { checkInteger, checkOptions, checkString } from '../validate.js';
import { mkdirDurable, readOffsetCheckpoint, writeOffsetCheckpoint } from '../common/durable-files.js';
import { Scheduler } from '../common/scheduler.js';


/**
 * Log names: 1 to 249 characters from letters, digits, '.', '_' and '-'
 * (Kafka's topic character set), not starting with '.', so they never clash
 * with the store's own files and cannot climb out of the data directory.
 */
const LOG_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,248}$/;

export interface RetentionOptions {
  /** Delete segments whose newest record is older than this. Default: keep. */
  retentionMs?: number;
  /** Delete oldest segments while the log stays at least this big without them. Default: keep. */
  retentionBytes?: number;
}

export interface LogStoreOptions extends LogOptions, RetentionOptions {
  /** How often recovery points, start offsets and high watermarks are checkpointed. Default 60 s. */
  checkpointIntervalMs?: number;
  /** How often retention runs. Default 5 min. */
  retentionCheckIntervalMs?: number;
  /** How often the cleaner looks for a compacted log to clean (Kafka's log.cleaner.backoff.ms). Default 15 s. */
  cleanerBackoffMs?: number;
  /** Most memory of a cleaning pass's key map (24 bytes a key; Kafka's log.cleaner.dedupe.buffer.size). Default 128 MiB. */
  cleanerMemoryBytes?: number;
  /** Most bytes a cleaning pass reads and writes per second (Kafka's log.cleaner.io.max.bytes.per.second). Default: no limit. */
  cleanerBytesPerSecond?: number;
  /**
   * Called with the error of each failed background job (checkpoint write,
   * retention, delayed unlink), after it is added to `backgroundErrors`. The
   * job keeps its schedule. What the callback throws is ignored.
   */
  onBackgroundError?: (err: unknown) => void;
}

/** Per-log overrides of the store's defaults; `cache` is the store's alone (one budget for all its logs). */
export type StoreLogOptions = Omit<LogOptions, 'cache'> & RetentionOptions;

export function checkLogName(name: unknown): string {
  checkString('name', name);
  const n = name as string;
  if (!LOG_NAME.test(n)) {
    throw new RangeError(`log name '${n}' must be 1-249 characters of A-Z a-z 0-9 . _ - and not start with '.'`);
  }
  return n;
}

interface OpenLog {
  log: Log;
  retention: RetentionOptions;
}

export class LogStore {
  readonly dataDir: string;
  /** Whether the previous process closed this store cleanly. */
  readonly cleanShutdown: boolean;
  readonly #defaults: LogStoreOptions;
  readonly #lock: File;
  readonly #scheduler: Scheduler;
  readonly #logs = new Map<string, OpenLog>();
  /** Opens under way, so two calls for one name share one Log. */
  readonly #opening = new Map<string, Promise<Log>>();
  readonly #recoveryPoints: Map<string, number>;
  readonly #startOffsets: Map<string, number>;
  readonly #highWatermarks: Map<string, number>;
  /** Cache mode, tail cache budget and counters shared by every log. */
  readonly #cache: CacheGroup;
  #checkpointing: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;
  /** One compaction pass at a time for the whole store. */
  readonly #cleaner: StoreCleaner;
  /** Errors of background work, newest last; a broker would log them. */
  readonly backgroundErrors: unknown[] = [];

  private constructor(
    dataDir: string,
    defaults: LogStoreOptions,
    lock: File,
    cleanShutdown: boolean,
    recoveryPoints: Map<string, number>,
    startOffsets: Map<string, number>,
    highWatermarks: Map<string, number>,
    cache: CacheGroup,
  ) {
    this.dataDir = dataDir;
    this.#cache = cache;
    this.#defaults = defaults;
    this.#lock = lock;
    this.cleanShutdown = cleanShutdown;
    this.#recoveryPoints = recoveryPoints;
    this.#startOffsets = startOffsets;
    this.#highWatermarks = highWatermarks;
    this.#scheduler = new Scheduler((err) => {
      this.backgroundErrors.push(err);
      if (this.backgroundErrors.length > 100) this.backgroundErrors.shift();
      try {
        defaults.onBackgroundError?.(err);
      } catch {
        // The embedder's handler must not stop the scheduler.
      }
    });
    const o = defaults;
    this.#scheduler.every(o.checkpointIntervalMs ?? 60_000, () => this.checkpoint());
    this.#scheduler.every(o.retentionCheckIntervalMs ?? 300_000, async () => {
      await this.applyRetention();
    });
    this.#cleaner = new StoreCleaner(() => [...this.#logs].map(([name, { log }]) => [name, log] as [string, Log]), {
      memoryBytes: o.cleanerMemoryBytes ?? CLEANER_MEMORY_BYTES,
      bytesPerSecond: o.cleanerBytesPerSecond ?? Infinity,
    });
    this.#scheduler.every(o.cleanerBackoffMs ?? 15_000, async () => {
      await this.runCleaner();
    });
  }

  /**
   * Opens (creating if needed) the store in `dataDir`, takes its lock
   * (ELOCKED if another process or another LogStore in this one holds it)
   * and opens every log in it. `defaults` apply to every log.
   */
  static async open(dataDir: string, defaults?: LogStoreOptions): Promise<LogStore> {
    checkString('dataDir', dataDir);
    const o = checkOptions<LogStoreOptions>('defaults', defaults);
    if (o.checkpointIntervalMs !== undefined) checkInteger('defaults.checkpointIntervalMs', o.checkpointIntervalMs, 1);
    if (o.retentionCheckIntervalMs !== undefined) checkInteger('defaults.retentionCheckIntervalMs', o.retentionCheckIntervalMs, 1);
    if (o.cleanerBackoffMs !== undefined) checkInteger('defaults.cleanerBackoffMs', o.cleanerBackoffMs, 1);
    checkCleanerOptions('defaults', o);
    checkRetention('defaults', o);
    if (o.onBackgroundError !== undefined && typeof o.onBackgroundError !== 'function') throw new TypeError('defaults.onBackgroundError must be a function');
    const cache = checkCacheOptions('defaults.cache', o.cache);
    await mkdirDurable(dataDir);
    const lockPath = join(dataDir, LOCK_FILE);
    const lock = await File.open(lockPath, { create: true });
    let store: LogStore;
    try {
      if (!(await tryLockExclusive(lock))) {
        const holder = (await readFile(lockPath, 'utf8').catch(() => '')).trim();
        throw new SeglogError('ELOCKED', `data directory ${dataDir} is locked by another LogStore${holder ? ` (pid ${holder})` : ''}: lock file ${lockPath}`, {
          path: lockPath,
        });
      }
      await lock.truncate(0);
      await lock.write(Buffer.from(`${process.pid}\n`), 0);
      const names = await readdir(dataDir, { withFileTypes: true });
      const clean = names.some((d) => d.name === CLEAN_SHUTDOWN_FILE);
      if (clean) {
        await rm(join(dataDir, CLEAN_SHUTDOWN_FILE));
        await fsyncDir(dataDir);
      }
      // Dropped logs whose removal a crash interrupted.
      for (const d of names) if (d.isDirectory() && d.name.startsWith('.') && d.name.endsWith('.deleted')) await rm(join(dataDir, d.name), { recursive: true, force: true });
      store = new LogStore(
        dataDir,
        o,
        lock,
        clean,
        await readOffsetCheckpoint(join(dataDir, RECOVERY_POINT_CHECKPOINT)),
        await readOffsetCheckpoint(join(dataDir, LOG_START_OFFSET_CHECKPOINT)),
        await readOffsetCheckpoint(join(dataDir, REPLICATION_OFFSET_CHECKPOINT)),
        await CacheGroup.open(cache, dataDir),
      );
      try {
        for (const d of names) if (d.isDirectory() && LOG_NAME.test(d.name)) await store.log(d.name);
      } catch (err) {
        await store.close().catch(() => undefined);
        throw err;
      }
    } catch (err) {
      await lock.close();
      throw err;
    }
    return store;
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw new SeglogError('ECLOSED', `store is closed: ${this.dataDir}`, { path: this.dataDir });
  }

  /** Names of the open logs. */
  get names(): string[] {
    return [...this.#logs.keys()].sort();
  }

  /** The log named `name`, opened (or created) with the store's defaults overridden by `options`. */
  log(name: string, options?: StoreLogOptions): Promise<Log> {
    try {
      this.#checkOpen();
      checkLogName(name);
      const overrides = checkOptions<StoreLogOptions>('options', options);
      checkRetention('options', overrides);
      if ((overrides as LogOptions).cache !== undefined) {
        throw new RangeError("options.cache cannot differ between a store's logs: set it in LogStore.open's defaults");
      }
      const open = this.#logs.get(name);
      if (open !== undefined) return Promise.resolve(open.log);
      let opening = this.#opening.get(name);
      if (opening === undefined) {
        opening = this.#openLog(name, overrides).finally(() => this.#opening.delete(name));
        this.#opening.set(name, opening);
      }
      return opening;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async #openLog(name: string, overrides: StoreLogOptions): Promise<Log> {
    const {
      checkpointIntervalMs: _c,
      retentionCheckIntervalMs: _r,
      cleanerBackoffMs: _b,
      cleanerMemoryBytes: _m,
      cleanerBytesPerSecond: _s,
      onBackgroundError: _e,
      retentionMs,
      retentionBytes,
      cache: _cache,
      ...logDefaults
    } = this.#defaults;
    const { retentionMs: ms, retentionBytes: bytes, ...logOverrides } = overrides;
    const log = await Log.open(
      join(this.dataDir, name),
      { ...logDefaults, ...logOverrides },
      {
        scheduler: this.#scheduler,
        recoveryPoint: this.#recoveryPoints.get(name) ?? 0,
        logStartOffset: this.#startOffsets.get(name) ?? 0,
        // As Kafka: a log the checkpoint does not name starts from 0, that is from its start offset.
        highWatermark: this.#highWatermarks.get(name) ?? 0,
        persistStartOffset: async (offset) => {
          this.#startOffsets.set(name, offset);
          await this.#writeCheckpoints();
        },
        cache: this.#cache,
      },
    );
    this.#logs.set(name, { log, retention: { retentionMs: ms ?? retentionMs, retentionBytes: bytes ?? retentionBytes } });
    return log;
  }

  /** Closes the log and removes its directory and checkpoint entries. */
  async dropLog(name: string): Promise<void> {
    this.#checkOpen();
    checkLogName(name);
    const open = this.#logs.get(name) ?? (this.#opening.has(name) ? { log: await this.#opening.get(name)! } : undefined);
    if (open === undefined) throw new SeglogError('ENOENT', `no log named '${name}' in ${this.dataDir}`, { path: join(this.dataDir, name) });
    this.#logs.delete(name);
    await open.log.close();
    // Renamed first so a crash mid-removal leaves no half log that reopens.
    const doomed = join(this.dataDir, `.${name}-${Date.now()}.deleted`);
    await rename(join(this.dataDir, name), doomed);
    await fsyncDir(this.dataDir);
    this.#recoveryPoints.delete(name);
    this.#startOffsets.delete(name);
    this.#highWatermarks.delete(name);
    await this.#writeCheckpoints();
    await rm(doomed, { recursive: true, force: true });
  }

  /** Writes every log's recovery point (its flushed offset), start offset and high watermark, atomically. */
  checkpoint(): Promise<void> {
    for (const [name, { log }] of this.#logs) {
      this.#recoveryPoints.set(name, log.flushedOffset);
      this.#startOffsets.set(name, log.startOffset);
      this.#highWatermarks.set(name, log.highWatermark);
    }
    return this.#writeCheckpoints();
  }

  /** Checkpoint writes run one at a time, each with the newest figures. */
  #writeCheckpoints(): Promise<void> {
    const run = this.#checkpointing.then(async () => {
      await writeOffsetCheckpoint(join(this.dataDir, RECOVERY_POINT_CHECKPOINT), this.#recoveryPoints);
      await writeOffsetCheckpoint(join(this.dataDir, LOG_START_OFFSET_CHECKPOINT), this.#startOffsets);
      await writeOffsetCheckpoint(join(this.dataDir, REPLICATION_OFFSET_CHECKPOINT), this.#highWatermarks);
    });
    this.#checkpointing = run.catch(() => undefined);
    return run;
  }

  /** The cache counters summed over the store's logs (closed ones included), and the memory the cache holds now. */
  cacheStats(): CacheStats {
    return this.#cache.stats();
  }

  /** Page-cache residency of every open log's files, summed. */
  async residency(): Promise<Residency> {
    this.#checkOpen();
    const total: Residency = { residentBytes: 0, fileBytes: 0 };
    for (const { log } of this.#logs.values()) {
      if (log.closed) continue;
      const r = await log.residency();
      total.residentBytes += r.residentBytes;
      total.fileBytes += r.fileBytes;
    }
    return total;
  }

  /** Runs retention on every log now; returns segments removed per log name. */
  async applyRetention(now = Date.now()): Promise<Map<string, number>> {
    const removed = new Map<string, number>();
    for (const [name, { log, retention }] of this.#logs) {
      if (retention.retentionMs === undefined && retention.retentionBytes === undefined) continue;
      if (log.closed || log.failure !== undefined) continue;
      removed.set(name, await log.applyRetention({ ...retention, now }));
    }
    return removed;
  }

  /**
   * One cleaning pass now (what the store runs every cleanerBackoffMs): of
   * the compacted log with the highest dirty ratio among those due (above
   * their minCleanableDirtyRatio, or past maxCompactionLagMs), within
   * cleanerMemoryBytes and cleanerBytesPerSecond; after any pass under way,
   * one at a time for the store. Undefined when no log is due.
   */
  runCleaner(now = Date.now()): Promise<CleanerRun | undefined> {
    try {
      this.#checkOpen();
      checkInteger('now', now);
      return this.#cleaner.run(now);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Closes every log (flushing it), writes checkpoints and the store's
   * clean-shutdown marker, and releases the lock. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = (async () => {
        await Promise.allSettled([...this.#opening.values()]);
        const logs = [...this.#logs.values()].map((l) => l.log);
        const results = await Promise.allSettled(logs.map((l) => l.close()));
        this.#scheduler.stop();
        const clean = results.every((r) => r.status === 'fulfilled') && logs.every((l) => l.failure === undefined);
        try {
          await this.checkpoint();
          if (clean) {
            await writeFile(join(this.dataDir, CLEAN_SHUTDOWN_FILE), '');
            await fsyncDir(this.dataDir);
          }
        } finally {
          // Closing the fd releases the flock.
          await this.#lock.close();
        }
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed !== undefined) throw failed.reason;
      })();
    }
    return this.#closing;
  }
}

function checkRetention(name: string, o: RetentionOptions): void {
  if (o.retentionMs !== undefined) checkInteger(`${name}.retentionMs`, o.retentionMs);
  if (o.retentionBytes !== undefined) checkInteger(`${name}.retentionBytes`, o.retentionBytes);
}

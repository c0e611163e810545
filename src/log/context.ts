// What a log gets from whoever opens it: a LogStore hands each of its logs
// the store's scheduler, checkpointed offsets (the high watermark among them)
// and cache group; a log opened on its own makes these for itself, keeping
// its start offset in its own directory.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CacheGroup } from '../cache/group.js';
import type { CacheConfig } from '../cache/options.js';
import { writeFileAtomic } from '../common/durable-files.js';
import { Scheduler } from '../common/scheduler.js';
import { SeglogError } from '../errors.js';
import { LOG_START_OFFSET_FILE } from '../layout.js';

/** @internal What a LogStore hands the logs it opens. */
export interface LogContext {
  scheduler: Scheduler;
  /** Offsets below it were durable at the last checkpoint: recovery starts from its segment. */
  recoveryPoint: number;
  logStartOffset: number;
  /**
   * The high watermark at the store's last checkpoint, where a 'manual' one
   * starts (clamped to the log). Absent for a log no store keeps: it starts
   * at the recovered end.
   */
  highWatermark?: number;
  /** Makes a new log start offset durable before segment files go. */
  persistStartOffset(offset: number): Promise<void>;
  /** The store's cache mode, budget and totals; the log's own `cache` option must then be absent. */
  cache: CacheGroup;
}

/** Where a log's start offset is kept, when it is not a store's business. */
export interface StartOffsetKeeper {
  offset: number;
  persist(offset: number): Promise<void>;
}

/**
 * A log opened on its own has its own scheduler (stopped when it closes, if
 * Log.open made this context) and keeps its start offset in its directory,
 * unless `start` says where else (seglog recover, opening one log of a store).
 */
export async function standaloneContext(dir: string, cache: CacheConfig, start?: StartOffsetKeeper): Promise<LogContext> {
  const keeper = start ?? (await startOffsetMarker(dir));
  return {
    // Failures of its tasks (interval flushes) put the log in its failed state, where appends report them.
    scheduler: new Scheduler(() => undefined),
    recoveryPoint: 0,
    logStartOffset: keeper.offset,
    persistStartOffset: (offset) => keeper.persist(offset),
    cache: await CacheGroup.open(cache, dir),
  };
}

/** A standalone log's start offset marker in its directory (0 while there is none). */
async function startOffsetMarker(dir: string): Promise<StartOffsetKeeper> {
  const path = join(dir, LOG_START_OFFSET_FILE);
  let offset = 0;
  try {
    offset = Number((await readFile(path, 'utf8')).trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new SeglogError('ECORRUPT', `${path} does not hold an offset`, { path });
  }
  return { offset, persist: (next) => writeFileAtomic(path, `${next}\n`) };
}

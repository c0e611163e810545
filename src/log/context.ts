// What a log gets from whoever opens it: a LogStore hands each of its logs
// the store's scheduler, checkpointed offsets and cache group; a log opened
// on its own makes these for itself, keeping its start offset in its own
// directory.
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
  /** Makes a new log start offset durable before segment files go. */
  persistStartOffset(offset: number): Promise<void>;
  /** The store's cache mode, budget and totals; the log's own `cache` option must then be absent. */
  cache: CacheGroup;
}

/** A log opened on its own keeps its start offset in its directory and has its own scheduler. */
export async function standaloneContext(dir: string, cache: CacheConfig): Promise<LogContext> {
  const path = join(dir, LOG_START_OFFSET_FILE);
  let logStartOffset = 0;
  try {
    logStartOffset = Number((await readFile(path, 'utf8')).trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (!Number.isSafeInteger(logStartOffset) || logStartOffset < 0) {
    throw new SeglogError('ECORRUPT', `${path} does not hold an offset`, { path });
  }
  return {
    // Failures of its tasks (interval flushes) put the log in its failed state, where appends report them.
    scheduler: new Scheduler(() => undefined),
    recoveryPoint: 0,
    logStartOffset,
    persistStartOffset: (offset) => writeFileAtomic(path, `${offset}\n`),
    cache: await CacheGroup.open(cache, dir),
  };
}

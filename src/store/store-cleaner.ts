// A LogStore's cleaner (Kafka's LogCleaner with one thread): one compaction
// pass at a time for the whole store. Each run weighs its compacted logs
// (Log.compactionState) and cleans the filthiest of those that are due:
// dirty ratio above their minCleanableDirtyRatio, or a record older than
// maxCompactionLagMs, as Kafka's LogCleanerManager picks them.
import type { CompactResult, Log } from '../log/log.js';

export interface StoreCleanerLimits {
  memoryBytes: number;
  bytesPerSecond: number;
}

/** The log a run cleaned and what the pass did. */
export interface CleanerRun {
  name: string;
  result: CompactResult;
}

export class StoreCleaner {
  readonly #logs: () => Iterable<[string, Log]>;
  readonly #limits: StoreCleanerLimits;
  /** The run under way (or the last one), settled. */
  #running: Promise<unknown> = Promise.resolve();

  constructor(logs: () => Iterable<[string, Log]>, limits: StoreCleanerLimits) {
    this.#logs = logs;
    this.#limits = limits;
  }

  /** Cleans the filthiest due log at `now`, after any run under way; undefined when none is due. */
  run(now: number): Promise<CleanerRun | undefined> {
    const run = this.#running.then(() => this.#run(now));
    this.#running = run.catch(() => undefined);
    return run;
  }

  async #run(now: number): Promise<CleanerRun | undefined> {
    let filthiest: { name: string; log: Log; ratio: number } | undefined;
    for (const [name, log] of this.#logs()) {
      if (log.cleanupPolicy === 'delete' || log.closed || log.failure !== undefined) continue;
      const state = await log.compactionState(now);
      if (state.due && (filthiest === undefined || state.dirtyRatio > filthiest.ratio)) filthiest = { name, log, ratio: state.dirtyRatio };
    }
    if (filthiest === undefined || filthiest.log.closed) return undefined;
    const result = await filthiest.log.compact({ now, cleanerMemoryBytes: this.#limits.memoryBytes, cleanerBytesPerSecond: this.#limits.bytesPerSecond });
    return { name: filthiest.name, result };
  }
}

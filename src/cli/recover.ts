// `seglog recover <dir>`: runs a log's full recovery now, as an open after a
// crash would (every segment scanned, torn tails cut, indexes rebuilt; with
// --repair, corruption cut too), then closes it cleanly and reports what
// changed on disk. For a store, takes the store's lock first.
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { checkCacheOptions } from '../cache/options.js';
import { readOffsetCheckpoint, writeFileAtomic, writeOffsetCheckpoint } from '../common/durable-files.js';
import { SeglogError } from '../errors.js';
import { CLEAN_SHUTDOWN_FILE, LOCK_FILE, LOG_START_OFFSET_CHECKPOINT, LOG_SUFFIX } from '../layout.js';
import { decodeCleanShutdown } from '../log/clean-shutdown.js';
import { standaloneContext, type StartOffsetKeeper } from '../log/context.js';
import { Log } from '../log/log.js';
import { File, tryLockExclusive } from '../native.js';
import type { Printer } from './output.js';
import { findLogDirs } from './verify.js';

/** Size, and a digest of small files (a .log only ever shrinks in recovery: its size says it all). */
type Snapshot = Map<string, { size: number; digest?: string }>;

async function snapshot(dir: string): Promise<Snapshot> {
  const result: Snapshot = new Map();
  for (const name of await readdir(dir)) {
    if (name === CLEAN_SHUTDOWN_FILE) continue;
    const path = join(dir, name);
    const { size } = await stat(path);
    const digest = name.endsWith(LOG_SUFFIX) ? undefined : createHash('sha256').update(await readFile(path)).digest('hex');
    result.set(name, { size, ...(digest === undefined ? {} : { digest }) });
  }
  return result;
}

function changes(dir: string, before: Snapshot, after: Snapshot): string[] {
  const lines: string[] = [];
  for (const [name, was] of before) {
    const now = after.get(name);
    const path = join(dir, name);
    if (now === undefined) lines.push(`${path}: removed`);
    else if (name.endsWith(LOG_SUFFIX) && now.size !== was.size) lines.push(`${path}: cut from ${was.size} to ${now.size} bytes`);
    else if (now.digest !== was.digest) lines.push(`${path}: rebuilt (${was.size} -> ${now.size} bytes)`);
  }
  for (const [name, now] of after) if (!before.has(name)) lines.push(`${join(dir, name)}: created (${now.size} bytes)`);
  return lines;
}

/** Recovers every log `dir` stands for; returns false if one of them refused (ECORRUPT without repair). */
export async function recover(dir: string, options: { repair: boolean; indexIntervalBytes?: number }, out: Printer): Promise<boolean> {
  const { logs, store } = await findLogDirs(dir);
  const lock = store ? await lockStore(dir) : undefined;
  let ok = true;
  try {
    for (const logDir of logs) {
      const before = await snapshot(logDir);
      // The marker as found (a damaged one included), to put back if recovery refuses.
      const marker = await readFile(join(logDir, CLEAN_SHUTDOWN_FILE)).catch(() => undefined);
      const wasClean = marker !== undefined && decodeCleanShutdown(marker) !== undefined;
      // Without the marker, open scans every segment (a standalone open has no recovery point to skip to).
      await rm(join(logDir, CLEAN_SHUTDOWN_FILE), { force: true });
      // A store's log keeps its start offset in the store's checkpoint: repair moves it there.
      const context = await standaloneContext(logDir, checkCacheOptions('cache', undefined), store ? await storeStart(dir, basename(logDir)) : undefined);
      let log: Log;
      try {
        log = await Log.open(logDir, { repair: options.repair, indexIntervalBytes: options.indexIntervalBytes, minFreeBytes: 0 }, context);
      } catch (err) {
        context.scheduler.stop();
        if ((err as SeglogError).code !== 'ECORRUPT') throw err;
        // Refused: leave the log as it was found.
        if (marker !== undefined) await writeFileAtomic(join(logDir, CLEAN_SHUTDOWN_FILE), marker);
        await out.line(`${logDir}: refused: ${(err as Error).message}`);
        ok = false;
        continue;
      }
      const range = log.endOffset > log.startOffset ? `offsets ${log.startOffset}..${log.endOffset - 1}` : `empty at offset ${log.startOffset}`;
      const lost = log.missingRanges.map((r) => `${r.from}..${r.to}`);
      await log.close();
      context.scheduler.stop();
      if (lost.length > 0) await out.line(`${logDir}: segments were missing; repair gave up offsets ${lost.join(', ')}`);
      const lines = changes(logDir, before, await snapshot(logDir));
      await out.line(`${logDir}: ${wasClean ? 'was closed cleanly' : 'was not closed cleanly'}; ${range}; ${lines.length === 0 ? 'nothing changed' : `${lines.length} change${lines.length === 1 ? '' : 's'}:`}`);
      for (const line of lines) await out.line(`  ${line}`);
    }
  } finally {
    await lock?.close();
  }
  return ok;
}

/** One log's start offset as its store's checkpoint keeps it, and how to move it there. */
async function storeStart(storeDir: string, name: string): Promise<StartOffsetKeeper> {
  const path = join(storeDir, LOG_START_OFFSET_CHECKPOINT);
  return {
    offset: (await readOffsetCheckpoint(path)).get(name) ?? 0,
    persist: async (offset) => writeOffsetCheckpoint(path, (await readOffsetCheckpoint(path)).set(name, offset)),
  };
}

async function lockStore(dir: string): Promise<File> {
  const path = join(dir, LOCK_FILE);
  const lock = await File.open(path, { create: true });
  if (!(await tryLockExclusive(lock))) {
    await lock.close();
    throw new SeglogError('ELOCKED', `store ${dir} is open in another process (lock file ${path}); close it first`, { path });
  }
  return lock;
}

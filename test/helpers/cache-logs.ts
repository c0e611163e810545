// Logs for the cache-mode tests: records that name their offsets, appended
// in batches to several logs at once, pages dropped from the page cache,
// and whole-log reads.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { CacheOptions } from '../../src/cache/options.js';
import type { Log } from '../../src/log/log.js';
import { File } from '../../src/native.js';

export const own = (o: Partial<Extract<CacheOptions, { mode: 'own' }>> = {}): CacheOptions => ({ mode: 'own', ...o });

/** A record value that names its offset, so any mix-up shows. */
export const value = (offset: number, bytes: number) => Buffer.alloc(bytes, offset % 251).fill(`offset ${offset};`, 0, Math.min(bytes, 20));

/** Appends batches of `perBatch` records of `valueBytes` (the same records to every log given) until the first is `bytes` big. */
export async function fill(logs: Log[], bytes: number, perBatch = 4, valueBytes = 1000): Promise<void> {
  while (logs[0]!.size < bytes) await appendTo(logs, perBatch, valueBytes);
}

export async function appendTo(logs: Log[], perBatch: number, valueBytes: number): Promise<void> {
  const base = logs[0]!.endOffset;
  const records = Array.from({ length: perBatch }, (_, i) => ({ value: value(base + i, valueBytes), timestamp: 1_000_000 + base + i }));
  for (const log of logs) await log.append(records, { timestamp: 1_000_000 + base });
}

/** Drops the log's pages from the page cache: written back first, so that DONTNEED can drop them all. */
export async function evict(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.log')) continue;
    const f = await File.open(join(dir, name));
    await f.datasync();
    await f.advise(0, 0, 'dontneed');
    await f.close();
  }
}

/** Reads the whole log from its start, `maxBytes` at a time; returns the concatenated batches. */
export async function readAll(log: Log, maxBytes: number, from = log.startOffset): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let next = from; next < log.endOffset; ) {
    const r = await log.read(next, { maxBytes });
    parts.push(r.bytes);
    next = r.nextOffset;
  }
  return Buffer.concat(parts);
}

// A compacted log's workload and the views the compaction tests compare:
// keyed records with updates and deletes (tombstones), some batches gzip'd,
// some in transactions that commit or abort, with timestamps growing with
// the offsets; and what the log holds, read back record by record.
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Log } from '../../src/log/log.js';
import { encodeBatch } from '../../src/segment/batch.js';
import { random } from './random.js';

export const T0 = 1_700_000_000_000;

/** A data record the workload wrote; `aborted` when its transaction aborted. */
export interface WrittenRecord {
  offset: number;
  key: string;
  value: string | null;
  aborted: boolean;
}

/** A record as read back: data and markers alike (`control`). */
export interface ReadRecord {
  offset: number;
  key: string | null;
  value: string | null;
  timestamp: number;
  control: boolean;
}

/** Writes `batches` batches of 1-3 records over `keys` keys from `seed`; every 7th batch or so opens a transaction of producer `pid` that commits or aborts. */
export async function workload(log: Log, seed: number, batches: number, keys: number, pid = 77): Promise<WrittenRecord[]> {
  const rand = random(seed);
  const written: WrittenRecord[] = [];
  let sequence = 0;
  for (let b = 0; b < batches; b++) {
    const n = 1 + Math.floor(rand() * 3);
    const records = Array.from({ length: n }, () => {
      const key = `k${Math.floor(rand() * keys)}`;
      return { key, value: rand() < 0.15 ? null : `v${b}-${Math.floor(rand() * 1e6)}`, timestamp: T0 + log.endOffset };
    });
    const txn = rand() < 0.15;
    const compression = rand() < 0.3 ? 'gzip' : 'none';
    const options = txn ? { compression, producerId: pid, producerEpoch: 0, baseSequence: sequence, transactional: true } : { compression };
    const r = await log.appendBatches(encodeBatch(records, { ...options, now: T0 + log.endOffset }));
    const added = records.map((rec, i) => ({ offset: r.baseOffset + i, key: rec.key, value: rec.value, aborted: false }));
    written.push(...added);
    if (txn) {
      sequence += n;
      const abort = rand() < 0.5;
      if (abort) for (const a of added) a.aborted = true;
      await log.appendControl({ producerId: pid, producerEpoch: 0, type: abort ? 'abort' : 'commit', coordinatorEpoch: 0, timestamp: T0 + log.endOffset });
    }
  }
  return written;
}

/** The latest record of each key among `records` (in offset order) that are not aborted, as key -> [offset, value]. */
export function latestByKey(records: ReadonlyArray<{ offset: number; key: string | null; value: string | null; aborted?: boolean; control?: boolean }>): Map<string, [number, string | null]> {
  const latest = new Map<string, [number, string | null]>();
  for (const r of records) if (r.aborted !== true && r.control !== true && r.key !== null) latest.set(r.key, [r.offset, r.value]);
  return latest;
}

/** Every record of the log from its start, markers included, up to the bound of `isolation`. */
export async function readAll(log: Log, isolation: 'all' | 'committed' = 'all'): Promise<ReadRecord[]> {
  const out: ReadRecord[] = [];
  for await (const b of log.batches(log.startOffset, { isolation })) {
    for (const r of b.records) {
      out.push({ offset: r.offset, key: r.key?.toString() ?? null, value: r.value?.toString() ?? null, timestamp: r.timestamp, control: b.header.control });
    }
  }
  return out;
}

/** The offset `cleaner-offset-checkpoint` records for the log in `dir` (0 without one). */
export async function cleanedPoint(dir: string): Promise<number> {
  const text = await readFile(join(dir, 'cleaner-offset-checkpoint'), 'utf8').catch(() => '0\n1\nx 0\n');
  const [version, count, line] = text.trim().split('\n');
  if (version !== '0' || count !== '1') throw new Error(`cleaner-offset-checkpoint is not Kafka's layout: ${text}`);
  const [name, offset] = line!.split(' ');
  return name === basename(dir) || name === 'x' ? Number(offset) : Number.NaN;
}

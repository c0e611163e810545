// `seglog verify <dir>`: checks a log directory (or every log of a store)
// without changing anything: files are opened read-only and read with pread,
// never mapped, so a concurrent truncation cannot fault this process.
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { readOffsetCheckpoint } from '../common/durable-files.js';
import { readLeaderEpochCheckpoint } from '../log/leader-epochs.js';
import { isZeroEntry, offsetEntry, timeEntry } from '../index/entries.js';
import {
  CLEAN_SHUTDOWN_FILE,
  CLEANER_OFFSET_CHECKPOINT,
  DELETED_SUFFIX,
  isSegmentLog,
  LOCK_FILE,
  LOG_START_OFFSET_CHECKPOINT,
  LEADER_EPOCH_CHECKPOINT,
  LOG_START_OFFSET_FILE,
  LOG_SUFFIX,
  parseCleanerFileName,
  parseSegmentFileName,
  RECOVERY_POINT_CHECKPOINT,
  REPLICATION_OFFSET_CHECKPOINT,
  segmentBases,
  segmentPaths,
  snapshotOffsets,
} from '../layout.js';
import { decodeCleanShutdown } from '../log/clean-shutdown.js';
import { CleanedPoint } from '../log/cleaned-point.js';
import { File, tryLockExclusive } from '../native.js';
import { BatchReader } from '../segment/batch-reader.js';
import { walkBatches } from '../segment/batch-walk.js';
import { decodeBatch } from '../segment/batch.js';
import { scanLog } from '../segment/scan-log.js';
import type { Printer } from './output.js';

export interface Finding {
  /** 'problem': damage, or something the next open or `seglog recover` would change. 'note': worth knowing, harmless. */
  level: 'problem' | 'note';
  path: string;
  position?: number;
  message: string;
}

/** The log directories `dir` stands for: itself, or the logs of the store it holds. */
export async function findLogDirs(dir: string): Promise<{ logs: string[]; store: boolean }> {
  const entries = await readdir(dir, { withFileTypes: true });
  if (entries.some((e) => e.isFile() && (isSegmentLog(e.name) || e.name === LOG_START_OFFSET_FILE))) return { logs: [dir], store: false };
  const logs: string[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    if ((await readdir(join(dir, e.name))).some(isSegmentLog)) logs.push(join(dir, e.name));
  }
  const store = entries.some((e) => [LOCK_FILE, RECOVERY_POINT_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT].includes(e.name));
  if (logs.length === 0 && !store) throw new RangeError(`${dir} holds neither a seglog log nor a store`);
  return { logs: logs.sort(), store };
}

/** Verifies `dir` (a log or a store), printing what it finds; returns every finding. */
export async function verify(dir: string, out: Printer): Promise<Finding[]> {
  const { logs, store } = await findLogDirs(dir);
  const findings: Finding[] = [];
  if (store) findings.push(...(await verifyStore(dir)));
  // A store's logs keep their start offsets in its checkpoint; a standalone log in its own marker.
  const starts = store ? await readOffsetCheckpoint(join(dir, LOG_START_OFFSET_CHECKPOINT)).catch(() => new Map<string, number>()) : undefined;
  let segments = 0;
  for (const log of logs) {
    const r = await verifyLog(log, out, starts?.get(basename(log)) ?? (starts === undefined ? undefined : 0));
    segments += r.segments;
    findings.push(...r.findings);
  }
  for (const f of findings) {
    await out.line(`${f.level === 'problem' ? 'PROBLEM' : 'NOTE'} ${f.path}${f.position === undefined ? '' : ` at position ${f.position}`}: ${f.message}`);
  }
  const problems = findings.filter((f) => f.level === 'problem').length;
  await out.line(`verified ${logs.length} log${logs.length === 1 ? '' : 's'}, ${segments} segment${segments === 1 ? '' : 's'}: ${problems} problem${problems === 1 ? '' : 's'}`);
  return findings;
}

async function verifyStore(dir: string): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const name of [RECOVERY_POINT_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT]) {
    await readOffsetCheckpoint(join(dir, name)).catch((err: Error) => findings.push({ level: 'problem', path: join(dir, name), message: err.message }));
  }
  // A read-only descriptor can take the flock too: tells whether a LogStore has the store open.
  const lock = await File.open(join(dir, LOCK_FILE)).catch(() => undefined);
  if (lock !== undefined) {
    try {
      if (!(await tryLockExclusive(lock))) {
        findings.push({ level: 'note', path: lock.path, message: 'a LogStore has this store open: files may change while they are read' });
      }
    } finally {
      await lock.close();
    }
  }
  return findings;
}

/** A segment's valid batches, for checking index entries against. */
interface Batches {
  positions: number[];
  baseOffsets: number[];
  lastOffsets: number[];
}

/** Verifies one log; `storeStart` is its start offset from its store's checkpoint (undefined: a standalone log). */
async function verifyLog(dir: string, out: Printer, storeStart: number | undefined): Promise<{ segments: number; findings: Finding[] }> {
  const names = await readdir(dir);
  const findings: Finding[] = [];
  const bases = segmentBases(names);
  const marker = names.includes(CLEAN_SHUTDOWN_FILE) ? await readFile(join(dir, CLEAN_SHUTDOWN_FILE)) : undefined;
  if (marker === undefined) findings.push({ level: 'note', path: dir, message: 'not closed cleanly (or open now): the next open runs recovery' });
  else if (decodeCleanShutdown(marker) === undefined) {
    findings.push({ level: 'note', path: join(dir, CLEAN_SHUTDOWN_FILE), message: 'clean-shutdown marker is damaged: the next open runs recovery' });
  }
  findings.push(...(await strayFiles(dir, names, new Set(bases))));
  const start = storeStart ?? (await readStartOffset(dir, names, findings));
  // A compacted log: below its cleaned point batches may follow gaps, and each key should appear once.
  const cleaned = await CleanedPoint.read(dir).catch((err: Error) => {
    findings.push({ level: 'problem', path: join(dir, CLEANER_OFFSET_CHECKPOINT), message: `${err.message}: the log does not open` });
    return undefined;
  });
  const gapsBelow = cleaned?.offset ?? 0;
  const keysBelow = new Set<string>();
  let repeated = 0;
  let previousEnd: number | undefined;
  for (let i = 0; i < bases.length; i++) {
    const base = bases[i]!;
    const last = i === bases.length - 1;
    if (Number.isNaN(base)) {
      findings.push(...unsafeBases(dir, names));
      break;
    }
    const paths = segmentPaths(dir, base);
    const file = await File.open(paths.log);
    let batches: Batches;
    let nextOffset: number;
    try {
      const size = await file.size();
      batches = { positions: [], baseOffsets: [], lastOffsets: [] };
      const scan = await scanLog(
        BatchReader.ofFile(file, size, 1 << 20),
        base,
        (h, position) => {
          batches.positions.push(position);
          batches.baseOffsets.push(h.baseOffset);
          batches.lastOffsets.push(h.lastOffset);
        },
        gapsBelow,
      );
      if (base < gapsBelow) repeated += await countRepeatedKeys(file, scan.validBytes, base, gapsBelow, keysBelow);
      nextOffset = scan.nextOffset;
      const range = scan.batches === 0 ? 'no batches' : `${scan.batches} batches, offsets ${batches.baseOffsets[0]}..${nextOffset - 1}`;
      await out.line(`${paths.log}: ${range}, ${size} bytes`);
      if (scan.reason !== undefined) {
        const at = { path: paths.log, position: scan.validBytes };
        if (scan.corrupt) {
          findings.push({ level: 'problem', ...at, message: `corrupt batch (${scan.reason}) followed by valid data: opening fails unless repair is on, which cuts everything from here` });
        } else if (last) {
          findings.push({ level: 'problem', ...at, message: `torn tail: ${size - scan.validBytes} bytes (${scan.reason}) that recovery cuts` });
        } else {
          findings.push({ level: 'problem', ...at, message: `${size - scan.validBytes} invalid bytes (${scan.reason}) at the end of a segment that is not the last` });
        }
      }
    } finally {
      await file.close();
    }
    const lost = `are in no segment (a segment is missing): opening fails unless repair is on, which gives them up`;
    if (previousEnd !== undefined && previousEnd > base) {
      findings.push({ level: 'problem', path: paths.log, position: 0, message: `starts at ${base}, inside the previous segment, which ends at ${previousEnd - 1}` });
    } else if (previousEnd !== undefined && previousEnd < base) {
      findings.push({ level: 'problem', path: paths.log, message: `offsets ${previousEnd}..${base - 1} ${lost}` });
    } else if (previousEnd === undefined && start !== undefined && start < base) {
      findings.push({ level: 'problem', path: paths.log, message: `offsets ${start}..${base - 1}, from the log start offset to this first segment, ${lost}` });
    }
    previousEnd = nextOffset;
    // An active segment's indexes keep their preallocated room until a close trims them; a log reopened after a
    // clean shutdown keeps its marker until its first write, so the marker does not say the log is closed.
    const untrimmedOk = last;
    findings.push(...(await checkIndex(paths.index, 'index', base, batches, untrimmedOk)));
    findings.push(...(await checkIndex(paths.timeIndex, 'timeindex', base, batches, untrimmedOk)));
  }
  if (repeated > 0) {
    findings.push({
      level: 'note',
      path: join(dir, CLEANER_OFFSET_CHECKPOINT),
      message: `${repeated} records below the cleaned point ${gapsBelow} repeat a key seen before them: seglog's passes leave each key once there (a checkpoint written by another tool?); a pass removes them once a newer record of the key comes`,
    });
  }
  return { segments: bases.length, findings };
}

/** Of the data records below `point` in the first `size` bytes of `file`, those whose key is in `seen` already (and adds the others'). */
async function countRepeatedKeys(file: File, size: number, base: number, point: number, seen: Set<string>): Promise<number> {
  const reader = BatchReader.ofFile(file, size, 1 << 20);
  let repeated = 0;
  await walkBatches(reader, {
    baseOffset: base,
    checkCrc: false,
    gapsBelow: point,
    onBatch: async (h, position) => {
      if (h.control || h.lastOffset >= point) return;
      for (const r of decodeBatch(await reader.bytes(position, h.size))) {
        if (r.key === null) continue;
        const key = r.key.toString('hex');
        if (seen.has(key)) repeated++;
        else seen.add(key);
      }
    },
  });
  return repeated;
}

/** The segments whose base offset is beyond the safe integer range (segmentBases() puts them last, as NaN). */
function unsafeBases(dir: string, names: string[]): Finding[] {
  return names
    .filter((n) => isSegmentLog(n) && Number.isNaN(parseSegmentFileName(n)!.baseOffset))
    .map((n) => ({ level: 'problem', path: join(dir, n), message: 'base offset beyond the safe integer range' }));
}

async function strayFiles(dir: string, names: string[], bases: Set<number>): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const n of names) {
    const path = join(dir, n);
    // Producer snapshots are checked (CRC) by the next open, which falls back to an older one or to the batch headers.
    if (isSegmentLog(n) || n === CLEAN_SHUTDOWN_FILE || n === LOG_START_OFFSET_FILE || n === CLEANER_OFFSET_CHECKPOINT || snapshotOffsets([n]).length === 1) continue;
    const cleanerFile = parseCleanerFileName(n);
    if (cleanerFile !== undefined) {
      const swap = cleanerFile.stage === 'swap' && names.includes(`${n.slice(0, 20)}.log.swap`);
      findings.push({ level: 'problem', path, message: swap ? 'left by a compaction pass past its point of no return: the next open completes its swap' : 'left by a compaction pass that did not commit: the next open removes it' });
      continue;
    }
    if (n === LEADER_EPOCH_CHECKPOINT) {
      await readLeaderEpochCheckpoint(path).catch((err: Error) => findings.push({ level: 'note', path, message: `${err.message}: the next open rebuilds it from the batch headers` }));
      continue;
    }
    if (n.endsWith(DELETED_SUFFIX)) {
      findings.push({ level: 'note', path, message: 'left by retention; the next open removes it' });
      continue;
    }
    const segmentFile = parseSegmentFileName(n);
    if (segmentFile !== undefined) {
      if (!bases.has(segmentFile.baseOffset)) findings.push({ level: 'note', path, message: 'index without a .log: ignored' });
    } else if (n.endsWith(LOG_SUFFIX)) {
      findings.push({ level: 'problem', path, message: 'named like a segment but not as 20 digits + .log: seglog ignores it and any data in it' });
    } else {
      findings.push({ level: 'note', path, message: 'not a seglog file: ignored' });
    }
  }
  return findings;
}

/** A standalone log's start offset: its marker's, 0 without one, undefined (and a finding) when the marker is unreadable. */
async function readStartOffset(dir: string, names: string[], findings: Finding[]): Promise<number | undefined> {
  if (!names.includes(LOG_START_OFFSET_FILE)) return 0;
  const path = join(dir, LOG_START_OFFSET_FILE);
  const value = Number((await readFile(path, 'utf8')).trim());
  if (Number.isSafeInteger(value) && value >= 0) return value;
  findings.push({ level: 'problem', path, message: 'does not hold an offset: the log does not open' });
  return undefined;
}

/**
 * Checks an index against the batches of its .log: whole entries, increasing
 * keys, and each offset entry at the start of a batch that holds its offset.
 */
async function checkIndex(path: string, kind: 'index' | 'timeindex', base: number, batches: Batches, untrimmedOk: boolean): Promise<Finding[]> {
  const file = await File.open(path).catch((err: { code?: string }) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (file === undefined) {
    return batches.positions.length === 0 ? [] : [{ level: 'problem', path, message: 'missing: the next open rebuilds it' }];
  }
  let bytes: Buffer;
  try {
    bytes = Buffer.alloc(await file.size());
    await file.read(bytes, 0);
  } finally {
    await file.close();
  }
  const entrySize = kind === 'index' ? offsetEntry.bytes : timeEntry.bytes;
  const problem = (message: string, position?: number): Finding[] => [{ level: 'problem', path, ...(position === undefined ? {} : { position }), message }];
  if (bytes.length % entrySize !== 0) return problem(`size ${bytes.length} is not a multiple of the entry size ${entrySize}: the next open rebuilds it`);
  const entries = bytes.length / entrySize;
  let previousKey = -1;
  let previousOffset = base;
  for (let i = 0; i < entries; i++) {
    const at = i * entrySize;
    if (i > 0 && isZeroEntry(bytes, i, entrySize)) {
      if (untrimmedOk) return [];
      return problem(`${entries - i} zero entries from here: preallocated room that a clean close trims`, at);
    }
    if (kind === 'index') {
      const offset = base + offsetEntry.relativeOffset(bytes, i);
      const position = offsetEntry.position(bytes, i);
      if (offset <= previousKey) return problem(`offset ${offset} does not follow ${previousKey}`, at);
      const slot = batchAt(batches.positions, position);
      if (slot < 0 || batches.baseOffsets[slot]! > offset || batches.lastOffsets[slot]! < offset) {
        return problem(`entry (offset ${offset}, position ${position}) does not point at the batch holding that offset`, at);
      }
      previousKey = offset;
    } else {
      const timestamp = timeEntry.timestamp(bytes, i);
      const offset = base + timeEntry.relativeOffset(bytes, i);
      if (Number.isNaN(timestamp)) return problem('timestamp is not a safe integer', at);
      if (timestamp <= previousKey) return problem(`timestamp ${timestamp} does not follow ${previousKey}`, at);
      const end = batches.lastOffsets.length === 0 ? base : batches.lastOffsets[batches.lastOffsets.length - 1]! + 1;
      if (offset < previousOffset || offset >= end) return problem(`offset ${offset} is out of order or outside the segment's offsets`, at);
      previousKey = timestamp;
      previousOffset = offset;
    }
  }
  return [];
}

/** Index of the batch starting exactly at `position`, or -1. */
function batchAt(positions: number[], position: number): number {
  let lo = 0;
  let hi = positions.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (positions[mid] === position) return mid;
    if (positions[mid]! < position) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

// One cleaning pass of a compacted log (Kafka's Cleaner): the latest record
// of every key survives, offsets never change.
//
// What a pass may touch: the sealed segments wholly below the first
// uncleanable offset (the active segment's base, the last stable offset,
// and with minCompactionLagMs the first segment holding a record younger
// than that). Its dirty part starts at the cleaned point (cleaned-point.ts);
// a key map (key-map.ts) is built from there over whole segments as far as
// it holds, and every segment from the log start to where the map ends is
// rewritten against it, in groups that fit one segment (segmentBytes, index
// room, offsets an index can hold), each batch as clean-batch.ts says: a
// record goes when the map holds a later offset of its key; a tombstone
// (null value), and a transaction marker whose transaction has no record
// left, stays until the delete horizon the first pass to see it wrote into
// its batch (now + deleteRetentionMs, Kafka's KIP-534 horizon); records of
// aborted transactions go at once. A batch keeps its base offset, last
// offset delta, producer fields and codec; a batch left empty is dropped,
// unless it is its producer's last (producer state is rebuilt from headers)
// or the last of its group (the group's output then ends where its sources
// did: see cleaned-swap.ts), which stay as header-only batches, as Kafka
// keeps them.
//
// A pass reads and writes beside the log's appends (it touches only sealed
// segments), within a bytes-per-second budget; only each group's swap (with
// the cleaned point raised to the group's end) runs as the log's exclusive
// work, and only if
// nothing removed or cut the segments the pass read meanwhile (retention,
// truncateTo): otherwise the pass stops there, its unswapped output
// discarded. A swap replaces the sources in the segment set at once; a read
// under way on a source reads on from its open files. Passes of one log run
// one at a time; closing the log stops one under way at its next batch.
import { SeglogError } from '../errors.js';
import { BatchReader, HEADER_READ_BYTES } from '../segment/batch-reader.js';
import { recordSpans } from '../segment/batch-decode.js';
import type { BatchHeader } from '../segment/batch-header.js';
import { walkBatches } from '../segment/batch-walk.js';
import { Segment, type SegmentConfig } from '../segment/segment.js';
import type { AbortedTxn } from '../index/transaction-index.js';
import { cleanBatch, type CompactResult, type Pass, type Reading } from './clean-batch.js';
import { CleanedOutput, completeSwap } from './cleaned-swap.js';
import type { CleanedPoint } from './cleaned-point.js';
import type { BatchFilter } from './isolation.js';
import { groupsOf, type Cleanable } from './clean-groups.js';
import { KeyMap } from './key-map.js';
import { NEVER, type LogConfig } from './options.js';
import type { LogSegments } from './segments.js';
import { Throttle } from './throttle.js';
import type { TxnIndexes } from './transactions.js';

export type { CompactResult } from './clean-batch.js';

/** What the cleaner needs of the log. */
export interface CleanerParts {
  segments: LogSegments;
  point: CleanedPoint;
  txnIndexes: TxnIndexes;
  /** The log's last stable offset: nothing at or past it is cleaned. */
  lastStableOffset: () => number;
  /** For batches read in [from, to): true for control batches and those of aborted transactions (ReadIsolation.skipped). */
  skipped: (from: number, to: number) => BatchFilter;
  /** The offset of each known producer's last batch. */
  producerLastOffsets: () => number[];
  /** Puts the log in its failed state and returns the error that stopped it. */
  fail: (err: unknown) => unknown;
  /** Runs `work` as the log's exclusive work (between append groups); rejects when the log is closed or failed. */
  exclusive: <T>(work: () => Promise<T>) => Promise<T>;
  /** Own cache mode: the pass's reads and writes leave no pages in the page cache (it is for the log's readers). */
  dropPages: boolean;
}

/** What a pass may use. */
export interface PassLimits {
  /** The time minCompactionLagMs and delete horizons are judged at. */
  now: number;
  /** Most memory of the key map. */
  memoryBytes: number;
  /** Bytes read and written per second (Infinity: no limit). */
  bytesPerSecond: number;
}

/** How much of a compacted log a pass would clean now (what a store weighs, as Kafka's LogCleanerManager). */
export interface CompactionState {
  /** Bytes of cleanable segments not yet cleaned, and already cleaned. */
  dirtyBytes: number;
  cleanBytes: number;
  /** dirtyBytes / (cleanBytes + dirtyBytes); 0 when nothing is cleanable. */
  dirtyRatio: number;
  /** A cleanable record not yet cleaned is older than maxCompactionLagMs. */
  overdue: boolean;
  /** A pass is due: there is something to clean and the dirty ratio is above minCleanableDirtyRatio, or it is overdue. */
  due: boolean;
}


/** Why a pass stopped early without an error: the log is closing, or what it read changed under it. */
class PassCut extends Error {}

/** Bytes of cleaned batches gathered before each write. */
const WRITE_BYTES = 1 << 20;

export class Cleaner {
  readonly #dir: string;
  readonly #config: LogConfig;
  readonly #segmentConfig: SegmentConfig;
  readonly #parts: CleanerParts;

  constructor(dir: string, config: LogConfig, segmentConfig: SegmentConfig, parts: CleanerParts) {
    this.#dir = dir;
    this.#config = config;
    this.#segmentConfig = segmentConfig;
    this.#parts = parts;
  }

  /** The pass under way (or the last one), settled. */
  #running: Promise<unknown> = Promise.resolve();
  #stopping = false;

  /** One pass within `limits`; a pass asked for while one runs follows it. */
  compact(limits: PassLimits): Promise<CompactResult> {
    const run = this.#running.then(() => this.#pass(limits));
    this.#running = run.catch(() => undefined);
    return run;
  }

  /** The log is closing: a pass under way stops at its next batch (its unswapped output discarded); resolves once it has. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#running;
  }

  /** What a pass at `now` would find to clean. */
  async state(now: number): Promise<CompactionState> {
    const cleanable = this.#cleanable(now);
    const firstDirty = Math.max(this.#parts.point.offset, this.#parts.segments.startOffset);
    let cleanBytes = 0;
    let dirtyBytes = 0;
    for (const { segment, end } of cleanable) {
      if (end > firstDirty) dirtyBytes += segment.size;
      else cleanBytes += segment.size;
    }
    const firstDirtySegment = cleanable.find((c) => c.end > firstDirty && c.segment.size > 0)?.segment;
    let overdue = false;
    if (firstDirtySegment !== undefined && this.#config.maxCompactionLagMs !== NEVER) {
      await firstDirtySegment.load();
      const h = await BatchReader.ofFile(firstDirtySegment.log, firstDirtySegment.size, HEADER_READ_BYTES).header(0);
      const first = h === undefined ? -1 : h.baseTimestamp >= 0 && h.baseTimestamp <= h.maxTimestamp ? h.baseTimestamp : h.maxTimestamp;
      overdue = first >= 0 && now - first > this.#config.maxCompactionLagMs;
    }
    const dirtyRatio = dirtyBytes === 0 ? 0 : dirtyBytes / (cleanBytes + dirtyBytes);
    return { dirtyBytes, cleanBytes, dirtyRatio, overdue, due: dirtyBytes > 0 && (overdue || dirtyRatio > this.#config.minCleanableDirtyRatio) };
  }

  async #pass(limits: PassLimits): Promise<CompactResult> {
    const result: CompactResult = { segmentsCleaned: 0, bytesBefore: 0, bytesAfter: 0, recordsRemoved: 0, tombstonesRemoved: 0 };
    try {
      await this.#clean(limits, result);
    } catch (err) {
      if (!(err instanceof PassCut) && !this.#stopping) throw err;
    }
    return result;
  }

  async #clean({ now, memoryBytes, bytesPerSecond }: PassLimits, result: CompactResult): Promise<void> {
    const { segments, point } = this.#parts;
    const cleanable = this.#cleanable(now);
    const firstDirty = Math.max(point.offset, segments.startOffset);
    const dirty = cleanable.findIndex((c) => c.end > firstDirty);
    if (dirty < 0) return;
    const all = cleanable.map((c) => c.segment);
    for (const c of cleanable) await this.#read(all, () => c.segment.load());
    const throttle = new Throttle(bytesPerSecond);
    const skipped = this.#parts.skipped(cleanable[0]!.segment.baseOffset, cleanable.at(-1)!.end);
    const map = new KeyMap(memoryBytes, await this.#read(all, () => recordsIn(all.slice(dirty))));
    let mapped = dirty;
    const reading: Reading = { throttle, dropPages: this.#parts.dropPages };
    while (mapped < cleanable.length && (await this.#read(all, () => mapSegment(all[mapped]!, map, skipped, reading, () => this.#checkGoing())))) mapped++;
    if (mapped === dirty) {
      throw new SeglogError('EINVAL', `a key map of ${memoryBytes} bytes cannot hold the keys of segment ${cleanable[dirty]!.segment.logPath}: raise cleanerMemoryBytes`, {
        path: this.#dir,
      });
    }
    const cleaned = cleanable.slice(0, mapped);
    const pass: Pass = {
      now,
      horizon: now + this.#config.deleteRetentionMs,
      reading,
      map,
      skipped,
      producerLast: new Set(this.#parts.producerLastOffsets()),
      txnKept: new Map(),
      result,
    };
    const groups = groupsOf(cleaned, this.#config.segmentBytes, this.#config.segmentIndexBytes);
    for (const [g, group] of groups.entries()) {
      // The map's offsets came from this group's segments and those after it: a swap needs them all as read.
      await this.#cleanGroup(group, groups.slice(g).flat(), pass);
      result.segmentsCleaned += group.length;
    }
  }

  /** Throws PassCut once the log is closing. */
  #checkGoing(): void {
    if (this.#stopping) throw new PassCut('the log is closing');
  }

  /** Reads of `segments`, which retention or truncateTo may take out and close meanwhile: a failure once one is gone cuts the pass short. */
  async #read<T>(segments: readonly Segment[], work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (segments.some((s) => s.closed || !this.#parts.segments.includes(s))) throw new PassCut('a segment the pass read was removed');
      throw err;
    }
  }

  /** PassCut unless `sources` are still consecutive segments of the log ending at `end` (retention and truncateTo take segments out). */
  #checkIntact(sources: readonly Segment[], end: number): void {
    const { segments } = this.#parts;
    const intact = sources.every((s) => segments.includes(s) && !s.closed) && segments.higher(sources.at(-1)!)?.baseOffset === end;
    if (!intact) throw new PassCut('segments the pass read were removed or cut');
  }

  /** The sealed segments wholly below the first uncleanable offset, oldest first, each with where it ends (the next one's base) as of now. */
  #cleanable(now: number): Cleanable[] {
    const { segments } = this.#parts;
    const all = segments.all;
    const sealed = all.slice(0, -1);
    let limit = Math.min(segments.active.baseOffset, this.#parts.lastStableOffset());
    if (this.#config.minCompactionLagMs > 0) {
      const young = sealed.find((s) => s.maxTimestamp > now - this.#config.minCompactionLagMs);
      if (young !== undefined) limit = Math.min(limit, young.baseOffset);
    }
    return sealed.map((segment, i) => ({ segment, end: all[i + 1]!.baseOffset })).filter((c) => c.end <= limit);
  }

  /**
   * Writes the cleaned form of `group` and swaps it in for the group (as
   * exclusive work), if `unswapped` (the group and the mapped segments after
   * it) are still as read: a truncateTo that removed a key's later record
   * from them would otherwise have the group drop the record that survives.
   */
  async #cleanGroup(cleanables: readonly Cleanable[], unswapped: readonly Cleanable[], pass: Pass): Promise<void> {
    const { segments, txnIndexes, point } = this.#parts;
    const group = cleanables.map((c) => c.segment);
    const base = group[0]!.baseOffset;
    const end = cleanables.at(-1)!.end;
    const out = await CleanedOutput.create(this.#dir, base, this.#parts.dropPages);
    let committed = false;
    try {
      const txns: AbortedTxn[] = [];
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      let pendingEnd = base;
      for (const [i, s] of group.entries()) {
        const markers = txnIndexes.entriesOf(s);
        await this.#read(group, () =>
          forEachBatch(s, pass.reading, async (raw, h, last) => {
            this.#checkGoing();
            const keepEmpty = (last && i === group.length - 1) || (h.producerId >= 0 && pass.producerLast.has(h.lastOffset));
            const batch = cleanBatch(raw, h, keepEmpty, pass);
            if (batch === undefined) return;
            if (h.control) txns.push(...markers.filter((t) => t.lastOffset === h.baseOffset));
            pending.push(batch);
            pendingBytes += batch.length;
            pendingEnd = h.lastOffset + 1;
            if (pendingBytes < WRITE_BYTES) return;
            await out.append(pending, pendingEnd);
            await pass.reading.throttle.moved(pendingBytes);
            pending = [];
            pendingBytes = 0;
          }),
        );
      }
      await out.append(pending, pendingEnd);
      await this.#parts.exclusive(async () => {
        this.#checkIntact(
          unswapped.map((c) => c.segment),
          unswapped.at(-1)!.end,
        );
        // Group by group, just before its gaps can reach the disk: every walk must allow them (a crash then finds
        // no gap it calls damage), and a pass cut short leaves the point where its last swap ended, so the next
        // pass maps again what this one did not swap in.
        if (point.offset < end) await point.set(end);
        await out.commit(txns);
        committed = true;
        // Past the point of no return: a failure leaves files half swapped, which only open completes.
        try {
          await completeSwap(
            this.#dir,
            base,
            end,
            group.map((s) => s.baseOffset),
          );
          const cleaned = await Segment.open(this.#dir, base, this.#segmentConfig, true);
          await cleaned.seal();
          // Its indexes were just rebuilt by reading it.
          if (this.#parts.dropPages) await cleaned.log.advise(0, cleaned.size, 'dontneed');
          segments.replaceSealed(group, cleaned);
          await txnIndexes.swapped(group, cleaned);
        } catch (err) {
          throw this.#parts.fail(err);
        }
      });
    } catch (err) {
      if (!committed) await out.discard().catch(() => undefined);
      throw err;
    }
    pass.result.bytesBefore += group.reduce((n, s) => n + s.size, 0);
    pass.result.bytesAfter += out.size;
    // Not awaited: a slow reader of a source must not hold up the pass.
    for (const s of group) void s.close().catch(() => undefined);
  }
}

/** Records in `segments` by their batch headers: what the key map is sized for. */
async function recordsIn(segments: readonly Segment[]): Promise<number> {
  let records = 0;
  for (const s of segments) {
    await walkBatches(BatchReader.ofFile(s.log, s.size, HEADER_READ_BYTES), {
      baseOffset: s.baseOffset,
      checkCrc: false,
      gapsBelow: s.gapsBelow,
      onBatch: (h) => void (records += h.recordsCount),
    });
  }
  return records;
}

/** Puts the offset of every keyed record of `s` in `map`, leaving out markers and aborted transactions; false when the map filled first. */
async function mapSegment(s: Segment, map: KeyMap, skipped: BatchFilter, reading: Reading, going: () => void): Promise<boolean> {
  let fits = true;
  await forEachBatch(s, reading, (raw, h) => {
    going();
    if (!fits || skipped(h)) return;
    for (const r of recordSpans(raw, h)) {
      if (r.key !== null && !map.put(r.key, r.offset)) {
        fits = false;
        return;
      }
    }
  });
  return fits;
}

/** Bytes of batches a pass works through between two turns it gives the event loop (appends and reads wait for them). */
const YIELD_BYTES = 64 * 1024;
/** With dropPages, bytes read between two drops of their pages (the reader's buffer). */
const DROP_BYTES = 1 << 20;

/**
 * Calls `visit` with each batch of `s` in order (its own copy, CRC checked)
 * and whether it is the last; damage is ECORRUPT. Reads count against the
 * throttle and, with dropPages, leave no pages behind.
 */
async function forEachBatch(s: Segment, { throttle, dropPages }: Reading, visit: (raw: Buffer, h: BatchHeader, last: boolean) => void | Promise<void>): Promise<void> {
  const reader = BatchReader.ofFile(s.log, s.size, 1 << 20);
  let sinceYield = 0;
  let dropFrom = 0;
  for (let position = 0; position < s.size; ) {
    if (sinceYield >= YIELD_BYTES) {
      sinceYield = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (dropPages && position - dropFrom >= DROP_BYTES) {
      await s.log.advise(dropFrom, position - dropFrom, 'dontneed');
      dropFrom = position;
    }
    const c = await reader.check(position);
    if (!c.ok) throw new SeglogError('ECORRUPT', `the cleaner found a damaged batch in ${s.logPath} at position ${position} (${c.reason})`, { path: s.logPath, position });
    const raw = Buffer.from(await reader.bytes(position, c.header.size));
    position += c.header.size;
    sinceYield += raw.length;
    await throttle.moved(raw.length);
    const pending = visit(raw, c.header, position >= s.size);
    if (pending !== undefined) await pending;
  }
  if (dropPages) await s.log.advise(dropFrom, 0, 'dontneed');
}

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
// room, offsets an index can hold). A record goes when the map holds a later
// offset of its key; a tombstone (null value), and a transaction marker whose
// transaction has no record left, stays until the delete horizon the first
// pass to see it wrote into its batch (now + deleteRetentionMs, Kafka's
// KIP-534 horizon, batch-filter.ts); records of aborted transactions go at
// once. A batch keeps its base offset, last offset delta, producer fields and
// codec; a batch left empty is dropped, unless it is its producer's last
// (producer state is rebuilt from headers) or the last of its group (the
// group's output then ends where its sources did: see cleaned-swap.ts),
// which stay as header-only batches, as Kafka keeps them.
//
// The pass runs as the log's exclusive work: appends wait for it, reads do
// not (each swap replaces the sources in the segment set at once; a read
// under way on a source reads on from its open files).
import { SeglogError } from '../errors.js';
import { BatchReader, HEADER_READ_BYTES } from '../segment/batch-reader.js';
import { recordSpans, type RecordSpan } from '../segment/batch-decode.js';
import { deleteHorizonOf, filterBatch } from '../segment/batch-filter.js';
import type { BatchHeader } from '../segment/batch-header.js';
import { walkBatches } from '../segment/batch-walk.js';
import { parseControlBatch } from '../segment/control-record.js';
import { Segment, type SegmentConfig } from '../segment/segment.js';
import type { AbortedTxn } from '../index/transaction-index.js';
import { CleanedOutput, completeSwap } from './cleaned-swap.js';
import type { CleanedPoint } from './cleaned-point.js';
import type { BatchFilter } from './isolation.js';
import { KeyMap } from './key-map.js';
import { INT32_MAX, type LogConfig } from './options.js';
import type { LogSegments } from './segments.js';
import type { TxnIndexes } from './transactions.js';

/** What a pass did (Log.compact()'s result). */
export interface CompactResult {
  /** Source segments rewritten (grouped into fewer where they fit). */
  segmentsCleaned: number;
  /** Bytes of those segments before, and of what replaced them after. */
  bytesBefore: number;
  bytesAfter: number;
  /** Records removed, tombstones and transaction markers included. */
  recordsRemoved: number;
  /** Tombstones among them (not counting those of aborted transactions). */
  tombstonesRemoved: number;
}

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
}

/** Bytes of cleaned batches gathered before each write. */
const WRITE_BYTES = 1 << 20;

/** The state of one pass: its clock, map, and what it learned on its way through the groups. */
interface Pass {
  now: number;
  map: KeyMap;
  aborted: BatchFilter;
  producerLast: Set<number>;
  /** Per producer, whether its transaction now being read kept a record. */
  txnKept: Map<number, boolean>;
  result: CompactResult;
}

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

  /** One pass at `now` with a key map of at most `memoryBytes`. */
  async compact(now: number, memoryBytes: number): Promise<CompactResult> {
    const result: CompactResult = { segmentsCleaned: 0, bytesBefore: 0, bytesAfter: 0, recordsRemoved: 0, tombstonesRemoved: 0 };
    const { segments, point } = this.#parts;
    const cleanable = this.#cleanable(now);
    const firstDirty = Math.max(point.offset, segments.startOffset);
    const dirty = cleanable.findIndex((s) => this.#nextBase(s) > firstDirty);
    if (dirty < 0) return result;
    for (const s of cleanable) await s.load();
    const to = this.#nextBase(cleanable.at(-1)!);
    const aborted = this.#parts.skipped(cleanable[0]!.baseOffset, to);
    const map = new KeyMap(memoryBytes, await recordsIn(cleanable.slice(dirty)));
    let mapped = dirty;
    while (mapped < cleanable.length && (await mapSegment(cleanable[mapped]!, map, aborted))) mapped++;
    if (mapped === dirty) {
      throw new SeglogError('EINVAL', `a key map of ${memoryBytes} bytes cannot hold the keys of segment ${cleanable[dirty]!.logPath}: raise cleanerMemoryBytes`, {
        path: this.#dir,
      });
    }
    const cleaned = cleanable.slice(0, mapped);
    // Before any gap reaches the disk: every walk must allow gaps below it (a crash then finds no gap it calls damage).
    await point.set(this.#nextBase(cleaned.at(-1)!));
    const pass: Pass = { now, map, aborted, producerLast: new Set(this.#parts.producerLastOffsets()), txnKept: new Map(), result };
    for (const group of this.#groups(cleaned)) await this.#cleanGroup(group, pass);
    result.segmentsCleaned = cleaned.length;
    return result;
  }

  /** The base offset of the segment after `s`. */
  #nextBase(s: Segment): number {
    return this.#parts.segments.higher(s)!.baseOffset;
  }

  /** The sealed segments wholly below the first uncleanable offset, oldest first. */
  #cleanable(now: number): Segment[] {
    const { segments } = this.#parts;
    const sealed = segments.all.slice(0, -1);
    let limit = Math.min(segments.active.baseOffset, this.#parts.lastStableOffset());
    if (this.#config.minCompactionLagMs > 0) {
      const young = sealed.find((s) => s.maxTimestamp > now - this.#config.minCompactionLagMs);
      if (young !== undefined) limit = Math.min(limit, young.baseOffset);
    }
    return sealed.filter((s) => this.#nextBase(s) <= limit);
  }

  /** Consecutive segments in groups that one segment can hold: segmentBytes, room in its indexes, offsets relative to its base. */
  #groups(cleaned: readonly Segment[]): Segment[][] {
    const maxOffsetEntries = Math.floor(this.#config.segmentIndexBytes / 8);
    const maxTimeEntries = Math.floor(this.#config.segmentIndexBytes / 12);
    const groups: Segment[][] = [];
    let group: Segment[] = [];
    let bytes = 0;
    let offsetEntries = 0;
    let timeEntries = 0;
    for (const s of cleaned) {
      const fits =
        bytes + s.size <= this.#config.segmentBytes &&
        offsetEntries + s.offsetIndex.entries <= maxOffsetEntries &&
        timeEntries + s.timeIndex.entries <= maxTimeEntries &&
        (group.length === 0 || this.#nextBase(s) - 1 - group[0]!.baseOffset <= INT32_MAX);
      if (!fits && group.length > 0) {
        groups.push(group);
        group = [];
        bytes = offsetEntries = timeEntries = 0;
      }
      group.push(s);
      bytes += s.size;
      offsetEntries += s.offsetIndex.entries;
      timeEntries += s.timeIndex.entries;
    }
    if (group.length > 0) groups.push(group);
    return groups;
  }

  /** Writes the cleaned form of `group` and swaps it in for the group. */
  async #cleanGroup(group: readonly Segment[], pass: Pass): Promise<void> {
    const { segments, txnIndexes } = this.#parts;
    const base = group[0]!.baseOffset;
    const end = this.#nextBase(group.at(-1)!);
    const out = await CleanedOutput.create(this.#dir, base);
    try {
      const txns: AbortedTxn[] = [];
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      let pendingEnd = base;
      for (const [i, s] of group.entries()) {
        const markers = txnIndexes.entriesOf(s);
        await forEachBatch(s, async (raw, h, last) => {
          const keepEmpty = (last && i === group.length - 1) || (h.producerId >= 0 && pass.producerLast.has(h.lastOffset));
          const batch = this.#cleanBatch(raw, h, keepEmpty, pass);
          if (batch === undefined) return;
          if (h.control) txns.push(...markers.filter((t) => t.lastOffset === h.baseOffset));
          pending.push(batch);
          pendingBytes += batch.length;
          pendingEnd = h.lastOffset + 1;
          if (pendingBytes < WRITE_BYTES) return;
          await out.append(pending, pendingEnd);
          pending = [];
          pendingBytes = 0;
        });
        pass.result.bytesBefore += s.size;
      }
      await out.append(pending, pendingEnd);
      await out.commit(txns);
    } catch (err) {
      await out.discard().catch(() => undefined);
      throw err;
    }
    pass.result.bytesAfter += out.size;
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
      segments.replaceSealed(group, cleaned);
      await txnIndexes.swapped(group, cleaned);
    } catch (err) {
      throw this.#parts.fail(err);
    }
    // Not awaited: a slow reader of a source must not hold up the pass.
    for (const s of group) void s.close().catch(() => undefined);
  }

  /** The batch as cleaned (the same bytes when nothing changes), or undefined when it goes. */
  #cleanBatch(raw: Buffer, h: BatchHeader, keepEmpty: boolean, pass: Pass): Buffer | undefined {
    const { result, now } = pass;
    const horizon = now + this.#config.deleteRetentionMs;
    if (h.control) {
      const kept = pass.txnKept.get(h.producerId) === true;
      pass.txnKept.delete(h.producerId);
      if (kept || typeof parseControlBatch(raw, h) === 'string') return raw;
      const set = deleteHorizonOf(h);
      if (set === undefined) return filterBatch(raw, h, recordSpans(raw, h), horizon);
      if (now < set || keepEmpty) return raw;
      result.recordsRemoved += h.recordsCount;
      return undefined;
    }
    if (pass.aborted(h)) {
      result.recordsRemoved += h.recordsCount;
      return keepEmpty ? filterBatch(raw, h, []) : undefined;
    }
    const spans = recordSpans(raw, h);
    const set = deleteHorizonOf(h);
    const kept: RecordSpan[] = [];
    let needsHorizon = false;
    for (const r of spans) {
      const latest = r.key === null ? undefined : pass.map.get(r.key);
      const expired = r.tombstone && set !== undefined && now >= set;
      if ((latest !== undefined && latest > r.offset) || expired) {
        result.recordsRemoved++;
        if (r.tombstone) result.tombstonesRemoved++;
        continue;
      }
      if (r.tombstone && set === undefined) needsHorizon = true;
      kept.push(r);
    }
    if (h.transactional && kept.length > 0) pass.txnKept.set(h.producerId, true);
    if (kept.length === spans.length && !needsHorizon) return raw;
    if (kept.length === 0 && !keepEmpty) return undefined;
    return filterBatch(raw, h, kept, needsHorizon ? horizon : undefined);
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
async function mapSegment(s: Segment, map: KeyMap, aborted: BatchFilter): Promise<boolean> {
  let fits = true;
  await forEachBatch(s, (raw, h) => {
    if (!fits || aborted(h)) return;
    for (const r of recordSpans(raw, h)) {
      if (r.key !== null && !map.put(r.key, r.offset)) {
        fits = false;
        return;
      }
    }
  });
  return fits;
}

/** Calls `visit` with each batch of `s` in order (its own copy, CRC checked) and whether it is the last; damage is ECORRUPT. */
async function forEachBatch(s: Segment, visit: (raw: Buffer, h: BatchHeader, last: boolean) => void | Promise<void>): Promise<void> {
  const reader = BatchReader.ofFile(s.log, s.size, 1 << 20);
  for (let position = 0; position < s.size; ) {
    const c = await reader.check(position);
    if (!c.ok) throw new SeglogError('ECORRUPT', `the cleaner found a damaged batch in ${s.logPath} at position ${position} (${c.reason})`, { path: s.logPath, position });
    const raw = Buffer.from(await reader.bytes(position, c.header.size));
    position += c.header.size;
    const pending = visit(raw, c.header, position >= s.size);
    if (pending !== undefined) await pending;
  }
}

// What a compaction pass does to one batch (Kafka's Cleaner.filterInto and
// its RecordFilter): a record goes when the pass's key map holds a later
// offset of its key; a tombstone goes once past the delete horizon its batch
// carries, and the first pass to see it writes that horizon (now +
// deleteRetentionMs, Kafka's KIP-534); records of aborted transactions go at
// once; a transaction marker stays while its transaction kept a record, then
// gets a horizon too and goes past it. What is left keeps its offsets
// (batch-filter.ts).
import { recordSpans, type RecordSpan } from '../segment/batch-decode.js';
import { deleteHorizonOf, filterBatch } from '../segment/batch-filter.js';
import type { BatchHeader } from '../segment/batch-header.js';
import { parseControlBatch } from '../segment/control-record.js';
import type { BatchFilter } from './isolation.js';
import type { KeyMap } from './key-map.js';
import type { Throttle } from './throttle.js';

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

/** How a pass reads segments: within its throttle, and in own cache mode dropping the pages it read. */
export interface Reading {
  throttle: Throttle;
  dropPages: boolean;
}

/** The state of one pass: its clock, map, and what it learned on its way through the groups. */
export interface Pass {
  now: number;
  /** The delete horizon this pass writes into batches that need one. */
  horizon: number;
  reading: Reading;
  map: KeyMap;
  /** Control batches and those of aborted transactions. */
  skipped: BatchFilter;
  /** The offset of each producer's last batch: kept, empty if need be. */
  producerLast: Set<number>;
  /** Per producer, whether its transaction now being read kept a record. */
  txnKept: Map<number, boolean>;
  result: CompactResult;
}

/** The batch as `pass` cleans it (the same bytes when nothing changes), or undefined when it goes; `keepEmpty` keeps it as a header-only batch rather than dropping it. */
export function cleanBatch(raw: Buffer, h: BatchHeader, keepEmpty: boolean, pass: Pass): Buffer | undefined {
  const { result, now, horizon } = pass;
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
  if (pass.skipped(h)) {
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

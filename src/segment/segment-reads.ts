// How readers find and check batches in a segment: index entries are
// trusted only as far as the headers they point at agree, ranges are whole
// batches, and what is served passes its CRC with offsets inside the segment.
import { SeglogError } from '../errors.js';
import { HEADER_READ_BYTES, type BatchReader } from './batch-reader.js';
import { checkBatch, type BatchHeader } from './batch.js';
import type { File } from '../native.js';
import type { OffsetIndex } from '../index/offset-index.js';
import type { TimeIndex } from '../index/time-index.js';

/** A batch located in a segment. */
export interface BatchLocation {
  position: number;
  header: BatchHeader;
}

/** What these reads need of a Segment (which calls them with itself). */
export interface ReadableSegment {
  readonly baseOffset: number;
  readonly nextOffset: number;
  readonly size: number;
  readonly maxTimestamp: number;
  readonly log: File;
  readonly offsetIndex: OffsetIndex;
  readonly timeIndex: TimeIndex;
  /** [start, end) of the .log as a view when it is in memory, unchecked (Segment.view). */
  view(start: number, end: number): Buffer | undefined;
  /** A BatchReader of the .log up to size (Segment.reader). */
  reader(bufferBytes?: number): BatchReader;
}

/** Position of the batch holding `offset` (or the first batch after it), or undefined past the end. */
export async function locate(s: ReadableSegment, offset: number, reader = s.reader()): Promise<BatchLocation | undefined> {
  if (offset >= s.nextOffset) return undefined;
  const entry = offset <= s.baseOffset ? undefined : s.offsetIndex.lookup(offset);
  if (entry !== undefined && entry.position > 0) {
    // Entries that passed the sanity check can still be wrong (a flipped bit may keep them in order): walk from the start instead.
    const found = await walkTo(s, offset, entry.position, reader, entry.offset).catch((err: SeglogError) => {
      if (err.code !== 'ECORRUPT') throw err;
      return null;
    });
    if (found !== null) return found;
  }
  return walkTo(s, offset, 0, reader);
}

/**
 * locate() for a point read: the batch named by the offset index's first
 * entry at or past `offset`, when it holds `offset` (one header read; with
 * an entry per batch it always does), else what locate() finds.
 */
export async function locatePoint(s: ReadableSegment, offset: number, reader = s.reader()): Promise<BatchLocation | undefined> {
  if (offset >= s.nextOffset) return undefined;
  const entry = offset < s.baseOffset ? undefined : s.offsetIndex.ceiling(offset);
  if (entry !== undefined) {
    const found = await walkTo(s, offset, entry.position, reader, entry.offset).catch((err: SeglogError) => {
      if (err.code !== 'ECORRUPT') throw err;
      return undefined;
    });
    if (found !== undefined && found.header.baseOffset <= offset) return found;
  }
  return locate(s, offset, reader);
}

/**
 * Walks batch headers from `position` to the batch holding `offset` (or the
 * first after it). With `indexed`, the first batch must hold that offset,
 * as the index entry that gave `position` claims (ECORRUPT otherwise).
 */
async function walkTo(s: ReadableSegment, offset: number, position: number, reader: BatchReader, indexed?: number): Promise<BatchLocation | undefined> {
  let lowest = s.baseOffset;
  for (let first = true; ; first = false) {
    const header = await reader.header(position);
    if (header === undefined) return undefined;
    // After an index jump the batches before the first are not known, so it is held to the segment's
    // bounds only: a damaged header (the base offset lies outside the CRC) must not pass for the log's end.
    checkOffsets(s, header, position, lowest);
    lowest = header.lastOffset + 1;
    if (first && indexed !== undefined && (header.baseOffset > indexed || header.lastOffset < indexed)) {
      throw new SeglogError('ECORRUPT', `${s.offsetIndex.path}: the entry for offset ${indexed} points at position ${position}, which does not hold it`, {
        path: s.offsetIndex.path,
        position,
      });
    }
    if (header.lastOffset >= offset) return { position, header };
    position += header.size;
  }
}

/**
 * The byte range of whole batches starting at `from` that fits in `maxBytes`
 * (at least one batch, however large) and holds no offset >= `maxOffset`.
 */
export async function rangeFrom(s: ReadableSegment, from: BatchLocation, maxBytes: number, maxOffset: number, reader = s.reader()): Promise<{ end: number; nextOffset: number }> {
  checkOffsets(s, from.header, from.position, s.baseOffset);
  let end = from.position;
  let nextOffset = from.header.baseOffset;
  let header: BatchHeader | undefined = from.header;
  // Jump to the last indexed batch start within reach instead of reading every header on the way:
  // the batches before it are whole and hold only offsets below its base offset.
  const entry = s.offsetIndex.lookupByPosition(from.position + maxBytes);
  if (entry.position > from.position) {
    // Only to the batch the entry claims: an entry that passed the sanity check can still be wrong.
    const jumped = await reader.headerOrEnd(entry.position);
    if (
      jumped !== undefined &&
      jumped.baseOffset <= entry.offset &&
      entry.offset <= jumped.lastOffset &&
      jumped.baseOffset > from.header.lastOffset &&
      jumped.baseOffset <= maxOffset
    ) {
      end = entry.position;
      nextOffset = jumped.baseOffset;
      header = jumped;
    }
  }
  while (header !== undefined && header.lastOffset < maxOffset) {
    if (end > from.position && end + header.size - from.position > maxBytes) break;
    end += header.size;
    nextOffset = header.lastOffset + 1;
    if (end - from.position >= maxBytes) break;
    header = await reader.header(end);
    if (header !== undefined) checkOffsets(s, header, end, nextOffset);
  }
  return { end, nextOffset };
}

/**
 * A batch's base offset is outside its CRC: a flipped bit there passes every
 * other check of a segment trusted without a scan. Offsets served must rise
 * and stay within the segment.
 */
function checkOffsets(s: ReadableSegment, header: BatchHeader, position: number, lowest: number): void {
  // lastOffsetDelta is inside the CRC but read here before it is checked: a negative one must not pass either.
  if (header.baseOffset >= lowest && header.lastOffset >= header.baseOffset && header.lastOffset < s.nextOffset) return;
  if (position + header.size > s.size) {
    throw new SeglogError('EOFFSETRANGE', `${s.log.path} was truncated to ${s.size} bytes during a read at ${position}`, { path: s.log.path });
  }
  throw new SeglogError(
    'ECORRUPT',
    `batch in ${s.log.path} at position ${position} claims offsets ${header.baseOffset}..${header.lastOffset}, outside ${lowest}..${s.nextOffset - 1}`,
    { path: s.log.path, position },
  );
}

/**
 * Reads the whole batches in [start, end) into a new Buffer, or the start
 * of `into` when given (which must hold end - start bytes). Each batch's
 * CRC is checked first: segments trusted without a scan (clean shutdown)
 * may still hold damage, and a damaged batch is never served (ECORRUPT
 * naming file and position). EOFFSETRANGE when truncateTo cut the range
 * meanwhile.
 */
export async function readRange(s: ReadableSegment, start: number, end: number, into?: Buffer): Promise<Buffer> {
  const out = into === undefined ? Buffer.allocUnsafe(end - start) : into.subarray(0, end - start);
  const n = await s.log.readHot(out, start);
  checkRead(s, out.subarray(0, n), start, end);
  return out;
}

/**
 * The whole batches in [start, end) as a view of the segment's mapping (no
 * copy), checked as readRange() checks them, when every page of them is in
 * memory; undefined when not (readRange() them). Valid while the segment is
 * open: for use within a read, never to keep (see Segment.view).
 */
export function mapRange(s: ReadableSegment, start: number, end: number): Buffer | undefined {
  const bytes = s.view(start, end);
  if (bytes !== undefined) checkRead(s, bytes, start, end);
  return bytes;
}

/**
 * readRange()'s checks of `bytes`, read for [start, end) of the .log, for
 * reads that came another way (own cache mode): whole batches, each passing
 * its CRC, with offsets rising inside the segment.
 */
export function checkRead(s: ReadableSegment, bytes: Buffer, start: number, end: number): void {
  const n = bytes.length;
  if (n !== end - start && end > s.size) {
    // Not damage: truncateTo cut the segment while this read was under way. Read again.
    throw new SeglogError('EOFFSETRANGE', `${s.log.path} was truncated to ${s.size} bytes during a read up to ${end}`, { path: s.log.path });
  }
  if (n !== end - start) {
    throw new SeglogError('ECORRUPT', `${s.log.path} ended at ${start + n}, before the ${end} its batches promise`, { path: s.log.path, position: start + n });
  }
  let lowest = s.baseOffset;
  for (let p = 0; p < n; ) {
    const c = checkBatch(bytes, p, n);
    if (!c.ok) {
      throw new SeglogError('ECORRUPT', `invalid batch in ${s.log.path} at position ${start + p} (${c.reason})`, { path: s.log.path, position: start + p });
    }
    checkOffsets(s, c.header, start + p, lowest);
    lowest = c.header.lastOffset + 1;
    p += c.header.size;
  }
}

/** First batch whose max timestamp is >= `timestamp`, or undefined if none. */
export async function findByTimestamp(s: ReadableSegment, timestamp: number): Promise<BatchLocation | undefined> {
  if (s.maxTimestamp < timestamp) return undefined;
  const entry = s.timeIndex.lookup(timestamp);
  const reader = s.reader(HEADER_READ_BYTES);
  let at = await locate(s, entry.offset, reader);
  // From the located batch on, whose header locate() already read.
  while (at !== undefined && at.header.maxTimestamp < timestamp) {
    const position = at.position + at.header.size;
    const header = await reader.header(position);
    at = header === undefined ? undefined : { position, header };
  }
  return at;
}

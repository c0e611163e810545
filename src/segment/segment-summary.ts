// A sealed segment as a clean shutdown recorded it, and the checks of its
// files against that record when they are first opened (Segment.load).
import type { File } from '../native.js';
import { BatchReader } from './batch-reader.js';
import { scanLog } from './scan-log.js';

/**
 * What a sealed segment's files held when the log was last closed cleanly:
 * enough to list, size, hole-check and age the segment without opening it.
 */
export interface SegmentSummary {
  baseOffset: number;
  /** Bytes of the .log. */
  size: number;
  nextOffset: number;
  maxTimestamp: number;
}

/** What the check needs of a Segment just opened (which passes itself). */
export interface OpenedSegment {
  readonly baseOffset: number;
  readonly size: number;
  readonly nextOffset: number;
  readonly wellFormed: boolean;
  readonly gapsBelow: number;
  readonly log: File;
}

/** Whether a segment opened without a scan agrees with its summary: same size, same end, well formed (Segment.wellFormed). */
export function agrees(segment: OpenedSegment, summary: SegmentSummary): boolean {
  return segment.size === summary.size && segment.nextOffset === summary.nextOffset && segment.wellFormed;
}

/**
 * For a segment that does not agree with its summary: whether its .log is
 * whole (every batch passes every check, CRC included) and ends where the
 * summary says, so that only its indexes were wrong.
 */
export async function logAgrees(segment: OpenedSegment, summary: SegmentSummary): Promise<boolean> {
  const scan = await scanLog(BatchReader.ofFile(segment.log, segment.size, 1 << 20), segment.baseOffset, undefined, segment.gapsBelow);
  return scan.reason === undefined && segment.size === summary.size && scan.nextOffset === summary.nextOffset;
}

// How a compaction pass groups the segments it cleans (Kafka's
// groupSegmentsBySize): consecutive segments whose cleaned output one
// segment can hold, by segmentBytes, the room in its indexes, and offsets
// relative to its base.
import { OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES } from '../layout.js';
import type { Segment } from '../segment/segment.js';
import { INT32_MAX } from './options.js';

/** A segment a pass may clean, and the offset it ends at (the next segment's base when the pass began). */
export interface Cleanable {
  segment: Segment;
  end: number;
}

/** `cleaned`, in order, cut into groups that one segment of `segmentBytes` with indexes of `segmentIndexBytes` can hold. */
export function groupsOf(cleaned: readonly Cleanable[], segmentBytes: number, segmentIndexBytes: number): Cleanable[][] {
  const maxOffsetEntries = Math.floor(segmentIndexBytes / OFFSET_INDEX_ENTRY_BYTES);
  const maxTimeEntries = Math.floor(segmentIndexBytes / TIME_INDEX_ENTRY_BYTES);
  const groups: Cleanable[][] = [];
  let group: Cleanable[] = [];
  let bytes = 0;
  let offsetEntries = 0;
  let timeEntries = 0;
  for (const c of cleaned) {
    const s = c.segment;
    const fits =
      bytes + s.size <= segmentBytes &&
      offsetEntries + s.offsetIndex.entries <= maxOffsetEntries &&
      timeEntries + s.timeIndex.entries <= maxTimeEntries &&
      (group.length === 0 || c.end - 1 - group[0]!.segment.baseOffset <= INT32_MAX);
    if (!fits && group.length > 0) {
      groups.push(group);
      group = [];
      bytes = offsetEntries = timeEntries = 0;
    }
    group.push(c);
    bytes += s.size;
    offsetEntries += s.offsetIndex.entries;
    timeEntries += s.timeIndex.entries;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

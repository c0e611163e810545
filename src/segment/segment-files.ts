// The three files of a segment: its .log and its two indexes, opened side
// by side (a third of the threadpool round trips in a row) and closed
// together, leaving nothing open when one of them fails.
import { OffsetIndex } from '../index/offset-index.js';
import { TimeIndex } from '../index/time-index.js';
import { segmentPaths } from '../layout.js';
import { File } from '../native.js';

export interface SegmentIndexes {
  offsetIndex: OffsetIndex;
  timeIndex: TimeIndex;
}

export interface SegmentFiles extends SegmentIndexes {
  log: File;
}

/** A segment's .log, opened for writing, and its size. */
export async function openLogSized(path: string): Promise<{ log: File; size: number }> {
  const { file, size } = await File.openSized(path, { write: true });
  return { log: file, size };
}

/** Both indexes of the segment at `baseOffset`; writable (and mapped) for the active segment. */
export async function openIndexes(dir: string, baseOffset: number, options: { maxIndexBytes: number; writable: boolean }): Promise<SegmentIndexes> {
  const p = segmentPaths(dir, baseOffset);
  const [offsetIndex, timeIndex] = await Promise.allSettled([OffsetIndex.open(p.index, baseOffset, options), TimeIndex.open(p.timeIndex, baseOffset, options)]);
  if (offsetIndex.status === 'fulfilled' && timeIndex.status === 'fulfilled') return { offsetIndex: offsetIndex.value, timeIndex: timeIndex.value };
  await Promise.all([offsetIndex, timeIndex].map((r) => (r.status === 'fulfilled' ? r.value.close().catch(() => undefined) : undefined)));
  throw offsetIndex.status === 'rejected' ? offsetIndex.reason : (timeIndex as PromiseRejectedResult).reason;
}

export async function closeIndexes(files: SegmentIndexes): Promise<void> {
  await Promise.all([files.offsetIndex.close(), files.timeIndex.close()]);
}

export async function closeFiles(files: SegmentFiles): Promise<void> {
  await Promise.all([files.log.close(), closeIndexes(files)]);
}

// The one walk over the batches of a .log: from a batch boundary, batch by
// batch, while each is one a segment could hold next. Opening (the tail
// after the last index entry), index rebuilds, recovery, `seglog verify`
// and `seglog dump` all walk with it, so they agree on what "valid" means.
import type { BatchReader } from './batch-reader.js';
import type { BatchHeader } from './batch.js';

const INT32_MAX = 0x7fffffff;

export interface WalkOptions {
  /** Position of the first batch (a batch boundary); default 0. */
  from?: number;
  /** The segment's base offset: its indexes store offsets as i32 from it. */
  baseOffset: number;
  /**
   * Offset the first batch must start at when walked from position 0, and
   * must not start below when walked from elsewhere (a position the offset
   * index gave, which knows the batch's last offset, not its first); default
   * `baseOffset`.
   */
  nextOffset?: number;
  /**
   * Check each batch whole (size, magic, CRC, header fields), as recovery
   * does. Without it only what a walk by size needs (a header that parses, a
   * size that fits): what an open of a trusted segment can afford.
   */
  checkCrc: boolean;
  /**
   * Batches ending below this offset may follow a gap (default 0: none may):
   * a compacted log's cleaned batches keep their offsets while the records
   * between them go. A damaged baseOffset still shows as a batch that ends
   * at or past it, or that goes back.
   */
  gapsBelow?: number;
  /** Called for each batch walked over, in order; a returned promise is awaited. */
  onBatch?: (header: BatchHeader, position: number) => void | Promise<void>;
}

/** Where a walk stopped. */
export interface WalkEnd {
  /** The end of the reader's bytes, or the first bytes that are not the next batch. */
  position: number;
  /** Batches walked over. */
  batches: number;
  /** Offset after the last batch walked over (the `nextOffset` given when none). */
  nextOffset: number;
  /** Why the bytes at `position` are not the next batch; undefined at the end. */
  reason?: string;
  /**
   * Set when the batch at `position` passed its checks but its offsets are
   * out of place: damage or a misnamed file, never a torn write.
   */
  misplaced?: BatchHeader;
}

/** Walks the batches of `reader` from `options.from` while each passes its checks and follows the one before. */
export async function walkBatches(reader: BatchReader, options: WalkOptions): Promise<WalkEnd> {
  const { baseOffset, checkCrc, onBatch } = options;
  const gapsBelow = options.gapsBelow ?? 0;
  let position = options.from ?? 0;
  let nextOffset = options.nextOffset ?? baseOffset;
  let batches = 0;
  while (position < reader.end) {
    const c = checkCrc ? await reader.check(position) : await reader.checkHeader(position);
    if (!c.ok) return { position, batches, nextOffset, reason: c.reason };
    const h = c.header;
    // Offsets in a segment run on without gaps: seglog gives every batch the log end as it writes it. A batch
    // that passes its CRC yet leaves a gap has a damaged baseOffset (outside the CRC), e.g. one flipped bit.
    // Only the cleaner leaves gaps, below the offset it cleaned to.
    const exact = (batches > 0 || position === 0) && h.lastOffset >= gapsBelow;
    const reason =
      h.baseOffset < nextOffset
        ? `offset ${h.baseOffset} is not after ${nextOffset - 1}`
        : exact && h.baseOffset > nextOffset
          ? `offset ${h.baseOffset} leaves a gap after ${nextOffset - 1}`
          : h.lastOffset - baseOffset > INT32_MAX
            ? `offset ${h.lastOffset} is beyond what a segment at ${baseOffset} can index`
            : undefined;
    if (reason !== undefined) return { position, batches, nextOffset, reason, misplaced: h };
    const pending = onBatch?.(h, position);
    if (pending !== undefined) await pending;
    batches++;
    nextOffset = h.lastOffset + 1;
    position += h.size;
  }
  return { position, batches, nextOffset };
}

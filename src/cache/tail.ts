// The tail cache: a write-through copy of the bytes most recently appended to
// each log, kept per segment as one contiguous window of whole batches that
// ends where the segment's visible data ends. All windows of a store share
// one budget of fixed-size blocks; when it is exceeded the oldest blocks go
// first, whichever log they belong to, so a log that stopped growing loses
// its tail before a busy one does.
//
// Blocks are append-only: bytes once copied into a block never change (a
// truncation drops the window instead of rewriting it), so a reader may keep
// views of them, and of blocks evicted meanwhile, for as long as it likes.
// A block no reader ever took a view of is reused once evicted: fresh memory
// for every block costs its page faults, ten times the copy itself.
import type { File } from '../native.js';
import type { ByteSource } from '../segment/batch-reader.js';
import type { BatchHeader } from '../segment/batch.js';
import type { Segment } from '../segment/segment.js';

interface Block {
  bytes: Buffer;
  window: TailWindow;
  /** False once evicted or dropped with its window. */
  live: boolean;
  /** A reader was given views of it: its memory is never reused. */
  shared: boolean;
}

const EMPTY = Buffer.alloc(0);
/** Most freed, never-shared blocks kept for reuse (beyond the budget), per budget. */
const SPARE_BLOCKS = 8;

export class TailBudget {
  readonly limit: number;
  readonly blockBytes: number;
  #used = 0;
  /** Live blocks in allocation order, plus dropped ones not yet passed over. */
  #queue: Array<Block | undefined> = [];
  #head = 0;
  #dropped = 0;
  /** Memory of freed blocks that no reader saw, for the next allocations. */
  readonly #spare: Buffer[] = [];

  constructor(limit: number) {
    this.limit = limit;
    // About 256 blocks in the budget: small enough that many logs each hold some, big enough to copy in few steps.
    const target = 2 ** Math.floor(Math.log2(Math.max(1, limit / 256)));
    this.blockBytes = Math.min(256 * 1024, Math.max(4096, target));
  }

  /** Memory the blocks hold. */
  get used(): number {
    return this.#used;
  }

  allocate(window: TailWindow): Block {
    const block = { bytes: this.#spare.pop() ?? Buffer.allocUnsafeSlow(this.blockBytes), window, live: true, shared: false };
    this.#queue.push(block);
    this.#used += this.blockBytes;
    return block;
  }

  /** Frees a block its window let go of (eviction or a dropped window). */
  free(block: Block): void {
    if (!block.live) return;
    block.live = false;
    if (!block.shared && this.#spare.length < SPARE_BLOCKS) this.#spare.push(block.bytes);
    block.bytes = EMPTY;
    this.#used -= this.blockBytes;
    this.#dropped++;
  }

  /** Evicts the oldest blocks until the budget holds. */
  trim(): void {
    while (this.#used > this.limit && this.#head < this.#queue.length) {
      const block = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined;
      if (block.live) block.window.evictFirst();
      this.#dropped--;
    }
    // Passed-over and dropped entries are swept once they outnumber the live ones.
    const pending = this.#queue.length - this.#head;
    if (this.#head > 1024 || this.#dropped > 1024 + pending - this.#dropped) {
      this.#queue = this.#queue.slice(this.#head).filter((b) => b!.live);
      this.#head = 0;
      this.#dropped = 0;
    }
  }
}

/**
 * The cached part of one segment: bytes [start, end) of its .log, starting
 * at a batch boundary, with the position and offsets of every batch in it
 * so that lookups need no header reads.
 */
export class TailWindow {
  readonly segment: Segment;
  readonly #budget: TailBudget;
  #blocks: Block[] = [];
  /** File position of the first byte of #blocks[0]. */
  #base: number;
  #end: number;
  // The batches, from #first on: parallel arrays keep them compact.
  #positions: number[] = [];
  #baseOffsets: number[] = [];
  #lastOffsets: number[] = [];
  #first = 0;

  constructor(segment: Segment, budget: TailBudget, position: number) {
    this.segment = segment;
    this.#budget = budget;
    this.#base = position;
    this.#end = position;
  }

  /** End of the cached bytes: where the next append to this segment must start for the window to grow. */
  get end(): number {
    return this.#end;
  }

  /** Position of the first cached batch (end when none is). */
  get start(): number {
    return this.#positions[this.#first] ?? this.#end;
  }

  /** Memory its blocks hold. */
  get bytesHeld(): number {
    return this.#blocks.length * this.#budget.blockBytes;
  }

  get batches(): number {
    return this.#positions.length - this.#first;
  }

  /**
   * Copies a group of batches written at `position` (== end). May exceed
   * the budget until the caller trims it.
   */
  add(chunks: readonly Uint8Array[], headers: readonly BatchHeader[]): void {
    const size = this.#budget.blockBytes;
    let at = this.#end;
    for (const chunk of chunks) {
      for (let done = 0; done < chunk.length; ) {
        const index = Math.floor((at - this.#base) / size);
        if (index === this.#blocks.length) this.#blocks.push(this.#budget.allocate(this));
        const into = at - this.#base - index * size;
        const n = Math.min(chunk.length - done, size - into);
        this.#blocks[index]!.bytes.set(chunk.subarray(done, done + n), into);
        done += n;
        at += n;
      }
    }
    for (const h of headers) {
      this.#positions.push(this.#end);
      this.#baseOffsets.push(h.baseOffset);
      this.#lastOffsets.push(h.lastOffset);
      this.#end += h.size;
    }
  }

  /** Whether the batch holding `offset` (if the segment has it) is cached. */
  holds(offset: number): boolean {
    return this.batches > 0 && offset >= this.#baseOffsets[this.#first]!;
  }

  /** Position of the cached batch holding `offset` or the first after it; undefined past the cached end. */
  positionOf(offset: number): number | undefined {
    let lo = this.#first;
    let hi = this.#lastOffsets.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#lastOffsets[mid]! < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.#lastOffsets.length ? undefined : this.#positions[lo];
  }

  /** The cached bytes from `position` (inside the window) to its end, as a snapshot. */
  bytesFrom(file: File, position: number): TailBytes {
    const size = this.#budget.blockBytes;
    const from = Math.floor((position - this.#base) / size);
    return new TailBytes(
      file.path,
      this.#blocks.slice(from).map((b) => {
        b.shared = true;
        return b.bytes;
      }),
      this.#base + from * size,
      size,
      this.#end,
    );
  }

  /** Drops the oldest block, and with it every batch that starts in it. */
  evictFirst(): void {
    this.#budget.free(this.#blocks.shift()!);
    this.#base += this.#budget.blockBytes;
    while (this.#first < this.#positions.length && this.#positions[this.#first]! < this.#base) this.#first++;
    if (this.batches === 0) {
      // What is left is the end of a batch whose start is gone: nothing a read could use.
      this.drop();
      return;
    }
    if (this.#first > 1024 && this.#first > this.#positions.length / 2) {
      this.#positions = this.#positions.slice(this.#first);
      this.#baseOffsets = this.#baseOffsets.slice(this.#first);
      this.#lastOffsets = this.#lastOffsets.slice(this.#first);
      this.#first = 0;
    }
  }

  /** Frees every block; the window stays usable, empty, at its end. */
  drop(): void {
    for (const b of this.#blocks) this.#budget.free(b);
    this.#blocks = [];
    this.#base = this.#end;
    this.#positions = [];
    this.#baseOffsets = [];
    this.#lastOffsets = [];
    this.#first = 0;
  }
}

/**
 * A snapshot of a window's blocks as the byte source that Segment.locate and
 * rangeFrom walk, with no system call.
 */
export class TailBytes implements ByteSource {
  readonly path: string;
  readonly end: number;
  readonly #blocks: Buffer[];
  readonly #base: number;
  readonly #blockBytes: number;

  constructor(path: string, blocks: Buffer[], base: number, blockBytes: number, end: number) {
    this.path = path;
    this.#blocks = blocks;
    this.#base = base;
    this.#blockBytes = blockBytes;
    this.end = end;
  }

  async bytes(position: number, length: number): Promise<Buffer> {
    const parts = this.parts(position, Math.min(position + length, this.end));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Views of [start, end) (within the snapshot), one per block it spans. */
  parts(start: number, end: number): Buffer[] {
    const out: Buffer[] = [];
    for (let at = Math.max(start, this.#base); at < end; ) {
      const index = Math.floor((at - this.#base) / this.#blockBytes);
      const into = at - this.#base - index * this.#blockBytes;
      const n = Math.min(end - at, this.#blockBytes - into);
      out.push(this.#blocks[index]!.subarray(into, into + n));
      at += n;
    }
    return out;
  }
}

// The tail cache: the bytes most recently appended to each log, kept per
// segment as one window of whole batches that ends where the segment's
// visible data ends. Its memory is the memory the appends were encoded into:
// a log's appends take their bytes from its TailArena, which carves them out
// of blocks, and once written the window keeps views of them. The bytes go
// into memory once (the encode) and to the file once (the write), where a
// copy into the cache would write them into memory a second time. Bytes that
// did not come from the arena (a caller's own buffer) are copied into it.
//
// All arenas of a store share one budget of blocks; when it is exceeded the
// oldest blocks go first, whichever log they belong to, so a log that stopped
// growing loses its tail before a busy one does. A window that loses a block
// drops every batch up to the last one in it: what it keeps stays a run of
// whole batches up to the segment's end.
//
// Blocks are append-only: bytes once written into a block never change (a
// truncation drops the window instead of rewriting it), so a reader may keep
// views of them, and of blocks evicted meanwhile, for as long as it likes.
// A block's memory is reused once evicted only if no reader ever took a view
// of it and no append that took memory from it is still under way: fresh
// memory for every block costs its page faults, more than the encode itself.
import type { File } from '../native.js';
import type { ByteSource } from '../segment/batch-reader.js';
import type { BatchHeader } from '../segment/batch.js';
import type { Segment } from '../segment/segment.js';
import type { AppendMemory } from './log-cache.js';

interface Block {
  bytes: Buffer;
  /** Where the arena carves its next bytes. */
  used: number;
  /** Windows that hold batches in it (the same window may appear once per add; a roll adds the next segment's). */
  windows: TailWindow[];
  /** False once evicted or let go of by its arena. */
  live: boolean;
  /** A reader was given views of it: its memory is never reused. */
  shared: boolean;
  /** Bytes handed out for appends that have not settled yet: they may still be written. */
  pending: number;
}

const EMPTY = Buffer.alloc(0);
/** Most memory of freed, never-shared blocks kept for reuse (beyond the budget), per budget, in blocks' worth. */
const SPARE_BLOCKS = 8;

export class TailBudget {
  readonly limit: number;
  /** Size of a block; an append larger than that gets a block of its own, rounded up to a multiple of it. */
  readonly blockBytes: number;
  #used = 0;
  /** Live blocks in allocation order, plus dropped ones not yet passed over. */
  #queue: Array<Block | undefined> = [];
  #head = 0;
  #dropped = 0;
  /** Memory of freed blocks that no reader saw, for the next allocations, oldest first. */
  readonly #spare: Buffer[] = [];
  #spareBytes = 0;

  constructor(limit: number) {
    this.limit = limit;
    // About 256 blocks in the budget: small enough that many logs each hold some, big enough for a few batches each.
    const target = 2 ** Math.floor(Math.log2(Math.max(1, limit / 256)));
    this.blockBytes = Math.min(256 * 1024, Math.max(4096, target));
  }

  /** Memory the blocks hold. */
  get used(): number {
    return this.#used;
  }

  /** A block with room for `size` bytes. */
  allocate(size: number): Block {
    const length = Math.ceil(Math.max(size, 1) / this.blockBytes) * this.blockBytes;
    const at = this.#spare.findIndex((b) => b.length === length);
    const bytes = at >= 0 ? this.#spare.splice(at, 1)[0]! : Buffer.allocUnsafeSlow(length);
    if (at >= 0) this.#spareBytes -= length;
    const block: Block = { bytes, used: 0, windows: [], live: true, shared: false, pending: 0 };
    this.#queue.push(block);
    this.#used += length;
    return block;
  }

  /** Frees a block: evicted, or no window and no append needs it any more. */
  free(block: Block): void {
    if (!block.live) return;
    block.live = false;
    this.#used -= block.bytes.length;
    this.#dropped++;
    this.#recycle(block);
  }

  /**
   * A freed block lets go of its memory once no append can still write it:
   * to the spares if no reader saw it, within SPARE_BLOCKS blocks' worth
   * (large appends' blocks are larger), else to the garbage collector.
   */
  #recycle(block: Block): void {
    if (block.live || block.pending > 0 || block.bytes === EMPTY) return;
    const most = SPARE_BLOCKS * this.blockBytes;
    if (!block.shared && block.bytes.length <= most) {
      this.#spare.push(block.bytes);
      this.#spareBytes += block.bytes.length;
      // The oldest go first: blocks freed last are sized like the appends of now.
      while (this.#spareBytes > most) this.#spareBytes -= this.#spare.shift()!.length;
    }
    block.bytes = EMPTY;
  }

  /** An append that took `size` bytes of `block` settled. */
  settled(block: Block, size: number): void {
    block.pending -= size;
    this.#recycle(block);
  }

  /** Evicts the oldest blocks until the budget holds. */
  trim(): void {
    while (this.#used > this.limit && this.#head < this.#queue.length) {
      const block = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined;
      if (block.live) {
        for (const w of block.windows) w.evict(block);
        this.free(block);
      }
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
 * One log's append memory (see the top of this file), from its store's
 * budget: an append's bytes are carved out of the current block, or out of a
 * new one when they do not fit in what is left of it.
 */
export class TailArena implements AppendMemory {
  readonly #budget: TailBudget;
  /** Most bytes appends may hold at once (the log's maxPendingBytes). */
  readonly #maxPending: number;
  #pending = 0;
  #block: Block | undefined;
  /** The block each region handed out and not yet given back came from. */
  readonly #regions = new WeakMap<Buffer, Block>();
  /** Live blocks this arena took (and some freed since), for bytesHeld and close. */
  #blocks: Block[] = [];

  constructor(budget: TailBudget, maxPendingBytes: number) {
    this.#budget = budget;
    this.#maxPending = maxPendingBytes;
  }

  /** Memory its live blocks hold. */
  get bytesHeld(): number {
    return this.#liveBlocks().reduce((n, b) => n + b.bytes.length, 0);
  }

  /** #blocks without the ones freed since (pruned as blocks are taken too: a log whose stats are never read must not keep every block it ever took). */
  #liveBlocks(): Block[] {
    this.#blocks = this.#blocks.filter((b) => b.live);
    return this.#blocks;
  }

  /**
   * `size` bytes to encode an append into; give them back with release() once it settled. A bound function:
   * encodeBatch takes it as its allocator. Past maxPendingBytes (appends waiting for room) memory comes from a
   * fresh Buffer, copied into the cache once written: appends not yet written never take more of the budget.
   */
  readonly allocate = (size: number): Buffer => {
    if (this.#pending + size > this.#maxPending) return Buffer.allocUnsafe(size);
    const { block, bytes } = this.#carve(size);
    block.pending += size;
    this.#pending += size;
    this.#regions.set(bytes, block);
    return bytes;
  };

  copy(bytes: Uint8Array): Buffer {
    const out = this.allocate(bytes.length);
    out.set(bytes);
    return out;
  }

  /** The append that took `buffer` settled (written, or refused). Idempotent; a no-op for memory not from here. */
  release(buffer: Buffer): void {
    const b = this.#regions.get(buffer);
    if (b === undefined) return;
    this.#regions.delete(buffer);
    this.#pending -= buffer.length;
    this.#budget.settled(b, buffer.length);
  }

  /** The block `chunk` was carved out of, while it is live; undefined for other memory. */
  blockOf(chunk: Uint8Array): Block | undefined {
    const b = chunk instanceof Buffer ? this.#regions.get(chunk) : undefined;
    return b?.live === true ? b : undefined;
  }

  /** `chunk` copied into the cache's own memory: no append holds it, whatever maxPendingBytes says. */
  keep(chunk: Uint8Array): { block: Block; bytes: Buffer } {
    const carved = this.#carve(chunk.length);
    carved.bytes.set(chunk);
    return carved;
  }

  /** `size` bytes carved out of the current block if they fit in what is left of it, else out of a new one. */
  #carve(size: number): { block: Block; bytes: Buffer } {
    let block = this.#block;
    if (block === undefined || !block.live || block.bytes.length - block.used < size) {
      block = this.#block = this.#budget.allocate(size);
      this.#liveBlocks().push(block);
    }
    const bytes = block.bytes.subarray(block.used, block.used + size);
    block.used += size;
    return { block, bytes };
  }

  /** A window let go of its batches in `block`: the block is freed once no window holds any and no append will take more of it. */
  unheld(block: Block): void {
    block.windows = block.windows.filter((w) => w.holdsBlock(block));
    if (block.windows.length === 0 && block !== this.#block) this.#budget.free(block);
  }

  /**
   * The log closes (its windows dropped): every block goes, also those no
   * window held (appends refused, or batches a window dropped with a later
   * block), which would otherwise stay in the budget until evicted.
   */
  close(): void {
    for (const b of this.#blocks) this.#budget.free(b);
    this.#blocks = [];
    this.#block = undefined;
  }
}

/**
 * The cached part of one segment: bytes [start, end) of its .log, starting
 * at a batch boundary, as one view per batch, with the position and offsets
 * of every batch so that lookups need no header reads.
 */
export class TailWindow {
  readonly segment: Segment;
  readonly #arena: TailArena;
  #end: number;
  // The batches, from #first on: parallel arrays keep them compact.
  #positions: number[] = [];
  #baseOffsets: number[] = [];
  #lastOffsets: number[] = [];
  #views: Buffer[] = [];
  #blocks: Block[] = [];
  #first = 0;

  constructor(segment: Segment, arena: TailArena, position: number) {
    this.segment = segment;
    this.#arena = arena;
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

  get batches(): number {
    return this.#positions.length - this.#first;
  }

  /**
   * Takes a group of batches written at `position` (== end): views of the
   * chunks the arena gave out, copies into the arena of any other. May
   * exceed the budget until the caller trims it.
   */
  add(chunks: readonly Uint8Array[], headers: readonly BatchHeader[]): void {
    let h = 0;
    for (const chunk of chunks) {
      const block = this.#arena.blockOf(chunk);
      const { block: held, bytes } = block === undefined ? this.#arena.keep(chunk) : { block, bytes: chunk as Buffer };
      if (held.windows.at(-1) !== this) held.windows.push(this);
      for (let at = 0; at < bytes.length; h++) {
        const size = headers[h]!.size;
        this.#positions.push(this.#end);
        this.#baseOffsets.push(headers[h]!.baseOffset);
        this.#lastOffsets.push(headers[h]!.lastOffset);
        this.#views.push(bytes.subarray(at, at + size));
        this.#blocks.push(held);
        this.#end += size;
        at += size;
      }
    }
  }

  /** Whether the batch holding `offset` (if the segment has it) is cached. */
  holds(offset: number): boolean {
    return this.batches > 0 && offset >= this.#baseOffsets[this.#first]!;
  }

  /** Position of the cached batch holding `offset` or the first after it; undefined past the cached end. */
  positionOf(offset: number): number | undefined {
    const i = firstAtOrAbove(this.#lastOffsets, offset, this.#first);
    return i === this.#lastOffsets.length ? undefined : this.#positions[i];
  }

  /** The cached bytes from `position` (a batch start inside the window) to its end, as a snapshot. */
  bytesFrom(file: File, position: number): TailBytes {
    const from = firstAtOrAbove(this.#positions, position, this.#first);
    for (let i = from; i < this.#blocks.length; i++) this.#blocks[i]!.shared = true;
    return new TailBytes(file.path, this.#positions.slice(from), this.#views.slice(from), this.#end);
  }

  /** Whether a batch it holds lies in `block`. */
  holdsBlock(block: Block): boolean {
    return this.#blocks.indexOf(block, this.#first) >= 0;
  }

  /** `block` was evicted: every batch up to the last one in it goes. */
  evict(block: Block): void {
    const last = this.#blocks.lastIndexOf(block);
    if (last < this.#first) return;
    // Views of dropped batches would keep freed blocks' memory reachable, outside the budget, until the arrays are cut.
    this.#views.fill(EMPTY, this.#first, last + 1);
    this.#first = last + 1;
    if (this.batches === 0) {
      this.drop();
      return;
    }
    if (this.#first > 1024 && this.#first > this.#positions.length / 2) {
      this.#positions = this.#positions.slice(this.#first);
      this.#baseOffsets = this.#baseOffsets.slice(this.#first);
      this.#lastOffsets = this.#lastOffsets.slice(this.#first);
      this.#views = this.#views.slice(this.#first);
      this.#blocks = this.#blocks.slice(this.#first);
      this.#first = 0;
    }
  }

  /** Lets go of every batch; the window stays usable, empty, at its end. Blocks no one else holds are freed. */
  drop(): void {
    const blocks = new Set(this.#blocks.slice(this.#first));
    this.#positions = [];
    this.#baseOffsets = [];
    this.#lastOffsets = [];
    this.#views = [];
    this.#blocks = [];
    this.#first = 0;
    for (const b of blocks) this.#arena.unheld(b);
  }
}

/**
 * A snapshot of a window's batches as the byte source that Segment.locate
 * and rangeFrom walk, with no system call.
 */
export class TailBytes implements ByteSource {
  readonly path: string;
  readonly end: number;
  /** Each batch's position and bytes, in order, back to back. */
  readonly #positions: number[];
  readonly #views: Buffer[];

  constructor(path: string, positions: number[], views: Buffer[], end: number) {
    this.path = path;
    this.#positions = positions;
    this.#views = views;
    this.end = end;
  }

  async bytes(position: number, length: number): Promise<Buffer> {
    const parts = this.parts(position, Math.min(position + length, this.end));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Views of [start, end) (within the snapshot), one per batch it spans. */
  parts(start: number, end: number): Buffer[] {
    const out: Buffer[] = [];
    const from = Math.max(start, this.#positions[0] ?? end);
    // The batch holding `from`: the last one starting at or before it.
    let i = firstAtOrAbove(this.#positions, from + 1, 0) - 1;
    for (let at = from; at < end; i++) {
      const view = this.#views[i]!;
      const into = at - this.#positions[i]!;
      const n = Math.min(end - at, view.length - into);
      out.push(view.subarray(into, into + n));
      at += n;
    }
    return out;
  }
}

/** The first index, from `from` on, whose entry in `keys` (rising) is >= `key`; keys.length when none is. */
function firstAtOrAbove(keys: readonly number[], key: number, from: number): number {
  let lo = from;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

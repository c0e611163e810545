// Reused memory for the batches a log is about to write: appends encode into
// (or copy into) a ring instead of a fresh Buffer each, which saves the
// allocation, its page faults and its garbage. A region comes back once its
// append settled (written, or rejected), never before: bytes the write has
// still to read are never overwritten. Regions come back in about the order
// they were taken; the ring reuses memory from its oldest live region on.
// When the ring has no room (or a batch is larger than it), memory comes from
// a fresh Buffer as before, so the ring bounds memory, never appends.

import type { AppendMemory } from '../cache/log-cache.js';

interface Region {
  start: number;
  end: number;
  released: boolean;
}

export class EncodeRing implements AppendMemory {
  readonly #capacity: number;
  /**
   * Allocated by the first append: a log opened only to read holds none (an
   * 8 MiB allocation per open made the garbage collector run after a few
   * reopens). Not touched until used: a log that appends little holds little.
   */
  #memory: Buffer | undefined;
  /** Live regions in the order they were taken (oldest first). */
  #live: Region[] = [];

  constructor(bytes: number) {
    this.#capacity = bytes;
  }

  /** Bytes taken and not yet given back. */
  get used(): number {
    return this.#live.reduce((n, r) => n + r.end - r.start, 0);
  }

  /**
   * `size` bytes of ring memory, or a fresh Buffer when the ring has no room. Give it back with release().
   * A bound function: encodeBatch takes it as its allocator.
   */
  readonly allocate = (size: number): Buffer => {
    const start = this.#room(size);
    if (start < 0) return Buffer.allocUnsafe(size);
    this.#live.push({ start, end: start + size, released: false });
    this.#memory ??= Buffer.allocUnsafeSlow(this.#capacity);
    return this.#memory.subarray(start, start + size);
  };

  /** `bytes` copied into memory allocate() gives. */
  copy(bytes: Uint8Array): Buffer {
    const out = this.allocate(bytes.length);
    out.set(bytes);
    return out;
  }

  /** Gives back memory allocate() returned (a no-op for a fresh Buffer). Idempotent. */
  release(buffer: Buffer): void {
    if (this.#memory === undefined || buffer.buffer !== this.#memory.buffer || buffer.length === 0) return;
    const start = buffer.byteOffset - this.#memory.byteOffset;
    const region = this.#live.find((r) => r.start === start && !r.released);
    if (region === undefined) return;
    region.released = true;
    let gone = 0;
    while (gone < this.#live.length && this.#live[gone]!.released) gone++;
    if (gone > 0) this.#live.splice(0, gone);
  }

  /** Where `size` contiguous free bytes start, or -1. Free space is after the newest region and before the oldest. */
  #room(size: number): number {
    const capacity = this.#capacity;
    if (size === 0 || size > capacity) return -1;
    const oldest = this.#live[0];
    if (oldest === undefined) return 0;
    const newest = this.#live[this.#live.length - 1]!;
    if (newest.start >= oldest.start) {
      // Not wrapped: free at the end, then at the start up to the oldest region.
      if (capacity - newest.end >= size) return newest.end;
      return oldest.start >= size ? 0 : -1;
    }
    return oldest.start - newest.end >= size ? newest.end : -1;
  }
}

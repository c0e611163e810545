// Memory the addon hands to JS: mmap'd file ranges and aligned buffers for
// O_DIRECT, each detached when freed so no view outlives it.
import { errnoError, SeglogError } from '../errors.js';
import { checkBytes, checkInteger, checkOneOf } from '../validate.js';
import { addon, C, check, INT32_MAX, PAGE_SIZE } from './load.js';

export type MemoryAdvice = 'normal' | 'random' | 'sequential' | 'willneed' | 'dontneed';
const MEMORY_ADVICE: Record<MemoryAdvice, number> = {
  normal: C.MADV_NORMAL,
  random: C.MADV_RANDOM,
  sequential: C.MADV_SEQUENTIAL,
  willneed: C.MADV_WILLNEED,
  dontneed: C.MADV_DONTNEED,
};


/**
 * A file range mapped into memory. `buffer` views the mapping; unmap()
 * detaches it (and every view of it reads as length 0); if never unmapped,
 * the mapping goes when the buffer is garbage collected.
 */
export class MappedRegion {
  readonly path: string;
  readonly length: number;
  readonly buffer: Buffer;
  #region: ArrayBuffer;

  /** @internal */
  constructor(region: ArrayBuffer, path: string) {
    this.#region = region;
    this.path = path;
    this.length = region.byteLength;
    this.buffer = Buffer.from(region);
  }

  get unmapped(): boolean {
    return this.#region.byteLength === 0;
  }

  #live(): ArrayBuffer {
    if (this.unmapped) throw new SeglogError('ECLOSED', `mapping is unmapped: ${this.path}`, { path: this.path });
    return this.#region;
  }

  #range(offset: number, length: number): void {
    checkInteger('offset', offset, 0, this.length);
    checkInteger('length', length, 0, this.length - offset);
  }

  /** msync(MS_SYNC) of [offset, offset+length), off the event loop. */
  async sync(offset = 0, length = this.length - offset): Promise<void> {
    this.#range(offset, length);
    check(await addon.msync(this.#live(), offset, length), 'msync', this.path);
  }

  advise(offset: number, length: number, advice: MemoryAdvice): void {
    this.#range(offset, length);
    const a = MEMORY_ADVICE[checkOneOf('advice', advice, Object.keys(MEMORY_ADVICE) as MemoryAdvice[])];
    check(addon.madvise(this.#live(), offset, length, a), 'madvise', this.path);
  }

  /** Whether every page of [offset, offset+length) is in memory now (mincore): touching them will not wait for the disk. */
  resident(offset: number, length: number): boolean {
    this.#range(offset, length);
    return check(addon.resident(this.#live(), offset, length), 'mincore', this.path) === 1;
  }

  /** Unmaps now. Idempotent. */
  unmap(): void {
    if (this.unmapped) return;
    check(addon.munmap(this.#region), 'munmap', this.path);
  }
}

/** A zeroed buffer whose address is a multiple of `alignment` (a power of two), for O_DIRECT. */
export function allocAligned(length: number, alignment: number = PAGE_SIZE): Buffer {
  checkInteger('length', length, 1, INT32_MAX);
  checkInteger('alignment', alignment, 1, 1 << 30);
  if ((alignment & (alignment - 1)) !== 0) throw new RangeError(`alignment must be a power of two, got ${alignment}`);
  const result = addon.allocAligned(length, alignment);
  if (typeof result === 'number') throw errnoError(result, 'posix_memalign');
  return Buffer.from(result);
}

/** Frees a buffer from allocAligned() now; it and every view of it read as length 0 afterwards. */
export function freeAligned(buffer: Buffer): void {
  checkBytes('buffer', buffer);
  if (buffer.buffer.byteLength === 0) return;
  check(addon.freeAligned(buffer.buffer as ArrayBuffer), 'free');
}

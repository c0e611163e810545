// Mechanics shared by the offset and time indexes (Kafka's AbstractIndex): a
// file of fixed-width big-endian entries, mmap'd whole. An active segment's
// index is preallocated and mapped read-write; once the segment stops being
// active the file is trimmed to its entries and mapped read-only only while
// lookups need it, so thousands of old segments do not pin thousands of mappings.
import { SeglogError } from '../errors.js';
import { File, type MappedRegion } from '../native.js';
import { checkBoolean, checkInteger, checkOptions, checkString } from '../validate.js';

export interface IndexOptions {
  /**
   * Bytes a writable index preallocates, rounded down to whole entries; a full
   * index is the segment's cue to roll. Default 10 MiB (Kafka's segment.index.bytes).
   */
  maxIndexBytes?: number;
  /**
   * True for the active segment: mapped read-write at once and appendable.
   * False: read-only, mapped on first lookup and unmappable with release().
   */
  writable: boolean;
}

/** Reads the search key of entry `slot` from the mapped entries. */
export type KeyReader = (entries: Buffer, slot: number) => number;

/** @internal What open() hands a subclass constructor. */
export interface IndexState {
  path: string;
  baseOffset: number;
  entrySize: number;
  file: File;
  writable: boolean;
  sizeAtOpen: number;
  entries: number;
  length: number;
  region: MappedRegion | undefined;
}

const DEFAULT_MAX_INDEX_BYTES = 10 * 1024 * 1024;
const INT32_MAX = 0x7fffffff;
// Kafka's warm section: consumers mostly look up recent offsets, so a target
// in the last 8 KiB of entries is searched there alone, touching only pages
// that recent appends keep in memory instead of the cold head of the file.
const WARM_BYTES = 8192;
const EMPTY = Buffer.alloc(0);

export abstract class MappedIndex {
  readonly path: string;
  /** The segment's base offset; entries store offsets relative to it. */
  readonly baseOffset: number;
  readonly #entrySize: number;
  readonly #warmEntries: number;
  readonly #file: File;
  // The fd was opened for writing, so close() trims the file to its entries.
  readonly #fileWritable: boolean;
  readonly #sizeAtOpen: number;
  #writable: boolean;
  // Bytes mapped (writable) or to map on first lookup (read-only).
  #length: number;
  #entries: number;
  #region: MappedRegion | undefined;
  #closing: Promise<void> | undefined;
  // Bytes the file had while writable (its preallocation), to go back to in untrim().
  readonly #preallocated: number;
  // msyncs and trims under way: nothing unmaps until they settle, so an msync
  // never runs on an address range that was unmapped (or reused) meanwhile.
  #pending: Promise<unknown> = Promise.resolve();

  /** Search key of an entry's offset relative to baseOffset; truncateTo() searches by it. */
  protected abstract readonly offsetKey: KeyReader;

  protected constructor(state: IndexState) {
    this.path = state.path;
    this.baseOffset = state.baseOffset;
    this.#entrySize = state.entrySize;
    this.#warmEntries = Math.floor(WARM_BYTES / state.entrySize);
    this.#file = state.file;
    this.#fileWritable = state.writable;
    this.#writable = state.writable;
    this.#sizeAtOpen = state.sizeAtOpen;
    this.#entries = state.entries;
    this.#length = state.length;
    this.#preallocated = state.length;
    this.#region = state.region;
  }

  /**
   * Opens the index file. Entries on open = file length / entry size, as in
   * Kafka: a cleanly closed index was trimmed to exactly its entries. A
   * writable index then grows (ftruncate) to maxIndexBytes and is mapped; the
   * zeroed tail is free space, not entries.
   */
  protected static async load(path: string, baseOffset: number, options: IndexOptions, entrySize: number): Promise<IndexState> {
    checkString('path', path);
    checkInteger('baseOffset', baseOffset);
    const o = checkOptions<IndexOptions>('options', options);
    const writable = checkBoolean('options.writable', o.writable);
    const maxBytes =
      o.maxIndexBytes === undefined ? DEFAULT_MAX_INDEX_BYTES : checkInteger('options.maxIndexBytes', o.maxIndexBytes, entrySize, INT32_MAX);
    const { file, size: sizeAtOpen } = await File.openSized(path, writable ? { create: true } : {});
    try {
      // Entries hold i32 positions and offsets and maxIndexBytes is an i32: a bigger file is no index (and too big to map).
      if (sizeAtOpen > INT32_MAX) {
        throw new SeglogError('ECORRUPT', `corrupt index ${path}: ${sizeAtOpen} bytes, more than an index can hold`, { path, position: INT32_MAX });
      }
      const entries = Math.floor(sizeAtOpen / entrySize);
      let length = entries * entrySize;
      let region: MappedRegion | undefined;
      if (writable) {
        // Never below the existing entries: a smaller maxIndexBytes leaves the index full, not truncated.
        length = Math.max(length, maxBytes - (maxBytes % entrySize));
        if (sizeAtOpen !== length) await file.truncate(length);
        region = file.map(0, length, { writable: true });
      }
      return { path, baseOffset, entrySize, file, writable, sizeAtOpen, entries, length, region };
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  get entries(): number {
    return this.#entries;
  }

  /** Entries the file has room for: the preallocation while writable, the entries themselves once trimmed. */
  get maxEntries(): number {
    return this.#length / this.#entrySize;
  }

  /** No room for another entry; a read-only index is always full. */
  get isFull(): boolean {
    return !this.writable || this.#entries >= this.maxEntries;
  }

  /** Appendable: opened writable and not yet trimmed or closed. */
  get writable(): boolean {
    return this.#writable && this.#closing === undefined;
  }

  get isMapped(): boolean {
    return this.#region !== undefined;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The mapped entries, mapping a read-only index on first use. */
  protected view(): Buffer {
    this.#checkOpen();
    if (this.#region !== undefined) return this.#region.buffer;
    if (this.#length === 0) return EMPTY;
    this.#region = this.#file.map(0, this.#length, { writable: false });
    return this.#region.buffer;
  }

  /** The mapped entries of an index that may be written. */
  protected writableView(): Buffer {
    this.#checkOpen();
    if (!this.#writable) throw new SeglogError('EREADONLY', `index is read-only: ${this.path}`, { path: this.path });
    return this.#region!.buffer;
  }

  /** `offset` relative to baseOffset, as an entry stores it (i32). */
  protected relativeOffset(offset: number): number {
    return checkInteger('offset', offset, this.baseOffset, this.baseOffset + INT32_MAX) - this.baseOffset;
  }

  /** Slot the next entry goes to; the caller writes it, then calls commitSlot(). */
  protected nextSlot(): number {
    if (this.isFull) {
      throw new SeglogError('EINDEXFULL', `index is full (${this.#entries} entries): ${this.path}`, { path: this.path });
    }
    return this.#entries;
  }

  protected commitSlot(): void {
    this.#entries++;
  }

  protected checkSlot(slot: number): number {
    return checkInteger('n', slot, 0, this.#entries - 1);
  }

  protected corrupt(message: string, slot: number): SeglogError {
    const position = slot * this.#entrySize;
    return new SeglogError('ECORRUPT', `corrupt index ${this.path} at byte ${position}: ${message}`, { path: this.path, position });
  }

  /**
   * Slot of the last entry whose key is <= target, or -1. Keys must not
   * decrease. A target at or past the warm section's first key is searched
   * in the warm section only.
   */
  protected floorSlot(b: Buffer, target: number, key: KeyReader): number {
    const n = this.#entries;
    if (n === 0) return -1;
    const firstWarm = Math.max(0, n - this.#warmEntries);
    let lo: number;
    let hi: number;
    if (key(b, firstWarm) <= target) {
      lo = firstWarm;
      hi = n - 1;
    } else if (firstWarm === 0 || key(b, 0) > target) {
      return -1;
    } else {
      lo = 0;
      hi = firstWarm - 1;
    }
    // key(lo) <= target holds throughout; the answer lies in [lo, hi].
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (key(b, mid) <= target) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * Checks the file size, then lets `scan` check the entries; an index that
   * was not mapped before is unmapped again afterwards.
   */
  protected sanityScan(scan: (b: Buffer, entries: number) => void): void {
    this.#checkOpen();
    if (this.#sizeAtOpen % this.#entrySize !== 0) {
      throw this.corrupt(
        `file size ${this.#sizeAtOpen} is not a multiple of the entry size ${this.#entrySize}`,
        Math.floor(this.#sizeAtOpen / this.#entrySize),
      );
    }
    const wasMapped = this.isMapped;
    try {
      scan(this.view(), this.#entries);
    } finally {
      if (!wasMapped) this.release();
    }
  }

  // An active segment whose seal failed may keep a read-only index; truncating it must work all the same.
  #truncatableView(): Buffer {
    return this.#fileWritable ? this.view() : this.writableView();
  }

  /**
   * Drops the entries whose offset is >= `offset`. Indexes whose file is open
   * for writing only (close() trims the file to the entries left).
   */
  truncateTo(offset: number): void {
    checkInteger('offset', offset);
    const b = this.#truncatableView();
    this.#entries = offset <= this.baseOffset ? 0 : this.floorSlot(b, offset - this.baseOffset - 1, this.offsetKey) + 1;
  }

  /** Unmaps a read-only index until its next lookup. A writable index stays mapped: no-op. */
  release(): void {
    if (this.#writable || this.#region === undefined) return;
    this.#region.unmap();
    this.#region = undefined;
  }

  /** msync of the entries of a writable index; nothing to do for a read-only one. */
  async flush(): Promise<void> {
    this.#checkOpen();
    if (!this.#writable || this.#entries === 0) return;
    const done = this.#region!.sync(0, this.#entries * this.#entrySize);
    this.#track(done);
    await done;
  }

  /**
   * For when the segment stops being active: shrinks the file to its entries
   * and turns the index read-only, mapped lazily from then on. No-op if
   * already read-only.
   */
  async trim(): Promise<void> {
    this.#checkOpen();
    if (!this.#writable) return;
    // Switches over only once pending msyncs settled; entries appended meanwhile are kept.
    const done = this.#pending.then(async () => {
      if (!this.#writable) return;
      this.#writable = false;
      this.#unmap();
      this.#length = this.#entries * this.#entrySize;
      try {
        await this.#file.truncate(this.#length);
      } catch (err) {
        // The file kept its size: writable again, as the segment stays active when its roll fails.
        this.#remapWritable();
        throw err;
      }
    });
    this.#track(done);
    await done;
  }

  /**
   * Undoes a trim() when the segment stays active after all (its seal failed
   * later): grows the file back and maps it writable. If that fails too the
   * index stays read-only and full, which makes the next append roll again.
   */
  async untrim(): Promise<void> {
    this.#checkOpen();
    if (this.#writable || !this.#fileWritable) return;
    const done = this.#pending.then(async () => {
      await this.#file.truncate(this.#preallocated);
      this.#remapWritable();
    });
    this.#track(done);
    await done;
  }

  #remapWritable(): void {
    this.#unmap();
    try {
      this.#region = this.#file.map(0, this.#preallocated, { writable: true });
    } catch {
      // Read-only it stays, mapped on lookups; full, so the segment rolls at the next append.
      return;
    }
    this.#length = this.#preallocated;
    this.#writable = true;
  }

  /**
   * Unmaps and closes; an index opened writable is trimmed to its entries
   * first, as Kafka does, so a clean reopen sees exactly them. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#pending;
      this.#unmap();
      try {
        if (this.#fileWritable) await this.#file.truncate(this.#entries * this.#entrySize);
      } finally {
        await this.#file.close();
      }
    })();
    return this.#closing;
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw new SeglogError('ECLOSED', `index is closed: ${this.path}`, { path: this.path });
  }

  #unmap(): void {
    this.#region?.unmap();
    this.#region = undefined;
  }

  #track(work: Promise<unknown>): void {
    this.#pending = Promise.allSettled([this.#pending, work]);
  }
}

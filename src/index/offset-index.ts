// The `.index` file: sparse map from offset to the byte position of the batch
// holding it in the segment's `.log`. Entries as in Kafka (see entries.ts):
// offset - baseOffset (i32), file position (i32).
import { checkInteger } from '../validate.js';
import { offsetEntry } from './entries.js';
import { MappedIndex, type IndexOptions, type IndexState } from './mapped-index.js';

export interface OffsetPosition {
  offset: number;
  position: number;
}

const { relativeOffset: relativeOffsetAt, position: positionAt } = offsetEntry;

export class OffsetIndex extends MappedIndex {
  static readonly ENTRY_SIZE = offsetEntry.bytes;

  protected readonly offsetKey = relativeOffsetAt;

  private constructor(state: IndexState) {
    super(state);
  }

  /** Opens (creating if writable) the `.index` of the segment starting at `baseOffset`. */
  static async open(path: string, baseOffset: number, options: IndexOptions): Promise<OffsetIndex> {
    return new OffsetIndex(await MappedIndex.load(path, baseOffset, options, offsetEntry.bytes));
  }

  /**
   * Adds an entry. `offset` must exceed the last entry's and `position` must
   * not go below its position (RangeError otherwise). Throws SeglogError
   * EINDEXFULL when the index is full: check isFull and roll first. Throws
   * EREADONLY on a read-only (or trimmed) index.
   */
  append(offset: number, position: number): void {
    const relative = this.relativeOffset(offset);
    checkInteger('position', position, 0, 0x7fffffff);
    const b = this.writableView();
    const n = this.entries;
    if (n > 0) {
      if (relative <= relativeOffsetAt(b, n - 1)) {
        throw new RangeError(`offset must be greater than the last indexed offset ${this.baseOffset + relativeOffsetAt(b, n - 1)}, got ${offset}`);
      }
      if (position < positionAt(b, n - 1)) {
        throw new RangeError(`position must not be below the last indexed position ${positionAt(b, n - 1)}, got ${position}`);
      }
    }
    offsetEntry.write(b, this.nextSlot(), relative, position);
    this.commitSlot();
  }

  /**
   * The last entry with offset <= `targetOffset`: where a scan of the log for
   * that offset starts. `{ offset: baseOffset, position: 0 }` if there is none.
   */
  lookup(targetOffset: number): OffsetPosition {
    checkInteger('targetOffset', targetOffset);
    const b = this.view();
    return this.#entry(b, this.floorSlot(b, targetOffset - this.baseOffset, relativeOffsetAt));
  }

  /**
   * The first entry with offset >= `targetOffset` (the first indexed batch
   * that ends at or past it) and the position of the entry after it, where
   * that batch ends at the latest; undefined if no entry is that far.
   */
  ceiling(targetOffset: number): (OffsetPosition & { nextPosition: number | undefined }) | undefined {
    checkInteger('targetOffset', targetOffset);
    const b = this.view();
    const slot = this.floorSlot(b, targetOffset - this.baseOffset - 1, relativeOffsetAt) + 1;
    if (slot >= this.entries) return undefined;
    return { ...this.#entry(b, slot), nextPosition: slot + 1 < this.entries ? positionAt(b, slot + 1) : undefined };
  }

  /**
   * The last entry whose position is <= `position` (positions never
   * decrease): a batch boundary a range can jump to without reading every
   * header before it. `{ offset: baseOffset, position: 0 }` if there is none.
   */
  lookupByPosition(position: number): OffsetPosition {
    checkInteger('position', position);
    const b = this.view();
    return this.#entry(b, this.floorSlot(b, position, positionAt));
  }

  /** Entry number `n` (0-based). */
  entryAt(n: number): OffsetPosition {
    this.checkSlot(n);
    return this.#entry(this.view(), n);
  }

  /** The last entry, or `{ offset: baseOffset, position: 0 }` when empty. */
  get lastEntry(): OffsetPosition {
    return this.#entry(this.view(), this.entries - 1);
  }

  /**
   * Throws ECORRUPT (with path and the entry's byte position) unless the file
   * holds whole entries, offsets strictly increase from baseOffset, positions
   * do not decrease and, given the `.log` size, every position lies inside it.
   */
  sanityCheck(logSize?: number): void {
    if (logSize !== undefined) checkInteger('logSize', logSize);
    this.sanityScan((b, n) => {
      let previousOffset = -1;
      let previousPosition = 0;
      for (let slot = 0; slot < n; slot++) {
        const relative = relativeOffsetAt(b, slot);
        const position = positionAt(b, slot);
        if (relative <= previousOffset) {
          throw this.corrupt(
            relative < 0 ? `relative offset ${relative} is negative` : `offset ${this.baseOffset + relative} does not follow ${this.baseOffset + previousOffset}`,
            slot,
          );
        }
        if (position < previousPosition) {
          throw this.corrupt(position < 0 ? `position ${position} is negative` : `position ${position} is below the previous ${previousPosition}`, slot);
        }
        if (logSize !== undefined && position >= logSize) {
          throw this.corrupt(`position ${position} is not inside the log of ${logSize} bytes`, slot);
        }
        previousOffset = relative;
        previousPosition = position;
      }
    });
  }

  #entry(b: Buffer, slot: number): OffsetPosition {
    if (slot < 0) return { offset: this.baseOffset, position: 0 };
    return { offset: this.baseOffset + relativeOffsetAt(b, slot), position: positionAt(b, slot) };
  }
}

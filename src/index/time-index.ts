// The `.timeindex` file: sparse map from timestamp to the offset of the batch
// that first reached it. Entries as in Kafka (see entries.ts): timestamp
// (i64), offset - baseOffset (i32). An entry is added only when the segment's
// max timestamp grows, so timestamps strictly increase and lookups can
// binary search although record timestamps themselves may go backwards.
import { checkInteger } from '../validate.js';
import { timeEntry } from './entries.js';
import { MappedIndex, type IndexOptions, type IndexState, type KeyReader } from './mapped-index.js';

export interface TimestampOffset {
  timestamp: number;
  offset: number;
}

/** Kafka's RecordBatch.NO_TIMESTAMP: what an empty index reports. */
const NO_TIMESTAMP = -1;

export class TimeIndex extends MappedIndex {
  static readonly ENTRY_SIZE = timeEntry.bytes;

  protected readonly offsetKey: KeyReader = timeEntry.relativeOffset;
  readonly #timestampKey: KeyReader = (b, slot) => this.#timestampAt(b, slot);

  private constructor(state: IndexState) {
    super(state);
  }

  /** Opens (creating if writable) the `.timeindex` of the segment starting at `baseOffset`. */
  static async open(path: string, baseOffset: number, options: IndexOptions): Promise<TimeIndex> {
    return new TimeIndex(await MappedIndex.load(path, baseOffset, options, timeEntry.bytes));
  }

  /**
   * Adds an entry if `timestamp` is greater than the last entry's (the first
   * entry needs a timestamp >= 0); otherwise does nothing. Returns whether it
   * added one. `offset` must not be below the last entry's (RangeError).
   * Throws SeglogError EINDEXFULL when an entry is due but the index is full,
   * EREADONLY on a read-only (or trimmed) index.
   */
  append(timestamp: number, offset: number): boolean {
    checkInteger('timestamp', timestamp, Number.MIN_SAFE_INTEGER);
    const relative = this.relativeOffset(offset);
    const b = this.writableView();
    const n = this.entries;
    if (n > 0 && relative < this.offsetKey(b, n - 1)) {
      throw new RangeError(`offset must not be below the last indexed offset ${this.baseOffset + this.offsetKey(b, n - 1)}, got ${offset}`);
    }
    if (timestamp <= (n === 0 ? NO_TIMESTAMP : this.#timestampAt(b, n - 1))) return false;
    timeEntry.write(b, this.nextSlot(), timestamp, relative);
    this.commitSlot();
    return true;
  }

  /**
   * The last entry with timestamp <= `targetTimestamp`, or
   * `{ timestamp: -1, offset: baseOffset }` if there is none.
   */
  lookup(targetTimestamp: number): TimestampOffset {
    checkInteger('targetTimestamp', targetTimestamp, Number.MIN_SAFE_INTEGER);
    const b = this.view();
    return this.#entry(b, this.floorSlot(b, targetTimestamp, this.#timestampKey));
  }

  /** Entry number `n` (0-based). */
  entryAt(n: number): TimestampOffset {
    this.checkSlot(n);
    return this.#entry(this.view(), n);
  }

  /** The last entry, or `{ timestamp: -1, offset: baseOffset }` when empty. */
  get lastEntry(): TimestampOffset {
    return this.#entry(this.view(), this.entries - 1);
  }

  /**
   * Throws ECORRUPT (with path and the entry's byte position) unless the file
   * holds whole entries, timestamps are safe integers strictly increasing
   * from 0 or above, and offsets do not decrease from baseOffset.
   */
  sanityCheck(): void {
    this.sanityScan((b, n) => {
      let previousTimestamp = NO_TIMESTAMP;
      let previousOffset = 0;
      for (let slot = 0; slot < n; slot++) {
        const timestamp = this.#timestampAt(b, slot);
        const relative = this.offsetKey(b, slot);
        if (timestamp <= previousTimestamp) {
          throw this.corrupt(`timestamp ${timestamp} does not follow ${previousTimestamp}`, slot);
        }
        if (relative < previousOffset) {
          throw this.corrupt(
            relative < 0 ? `relative offset ${relative} is negative` : `offset ${this.baseOffset + relative} is below ${this.baseOffset + previousOffset}`,
            slot,
          );
        }
        previousTimestamp = timestamp;
        previousOffset = relative;
      }
    });
  }

  #timestampAt(b: Buffer, slot: number): number {
    const timestamp = timeEntry.timestamp(b, slot);
    if (Number.isNaN(timestamp)) throw this.corrupt('timestamp is not a safe integer', slot);
    return timestamp;
  }

  #entry(b: Buffer, slot: number): TimestampOffset {
    if (slot < 0) return { timestamp: NO_TIMESTAMP, offset: this.baseOffset };
    return { timestamp: this.#timestampAt(b, slot), offset: this.baseOffset + this.offsetKey(b, slot) };
  }
}

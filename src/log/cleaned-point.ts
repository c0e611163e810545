// How far a compacted log was cleaned: below this offset batches may follow
// gaps (every walk of the log's segments asks, see WalkOptions.gapsBelow),
// and from it on lies what the cleaner has not mapped yet (its next pass
// starts its key map there). Kept in `cleaner-offset-checkpoint`, in Kafka's
// offset checkpoint layout, and raised to each group's end just before the
// pass swaps that group in, so that a crash never leaves a gap the walks
// would call damage, nor a group it did not swap in below the point.
import { basename, join } from 'node:path';
import { readOffsetCheckpoint, writeOffsetCheckpoint } from '../common/durable-files.js';
import { CLEANER_OFFSET_CHECKPOINT } from '../layout.js';

export class CleanedPoint {
  readonly #dir: string;
  #offset: number;

  private constructor(dir: string, offset: number) {
    this.#dir = dir;
    this.#offset = offset;
  }

  /** The point `dir`'s checkpoint records; 0 (nothing cleaned) without one. */
  static async read(dir: string): Promise<CleanedPoint> {
    const offsets = await readOffsetCheckpoint(join(dir, CLEANER_OFFSET_CHECKPOINT));
    return new CleanedPoint(dir, offsets.get(basename(dir)) ?? 0);
  }

  get offset(): number {
    return this.#offset;
  }

  /** Moves the point to `offset` and makes it durable. */
  async set(offset: number): Promise<void> {
    if (offset === this.#offset) return;
    await writeOffsetCheckpoint(join(this.#dir, CLEANER_OFFSET_CHECKPOINT), new Map([[basename(this.#dir), offset]]));
    this.#offset = offset;
  }
}

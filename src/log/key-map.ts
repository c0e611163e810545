// The cleaner's map from key to the offset of its latest record, in bounded
// memory (Kafka's SkimpyOffsetMap): each key is kept as a 16-byte MD5
// digest beside an 8-byte offset, in one flat table probed linearly. Two
// keys whose digests collide share a slot; as in Kafka the chance is
// negligible (2^-128 per pair), and the cost would be an older record of one
// key removed for the other's newer one.
import { hash } from 'node:crypto';

const DIGEST_BYTES = 16;
/** Bytes per slot: a digest and an offset. */
export const SLOT_BYTES = DIGEST_BYTES + 8;
/** Filled beyond this share, probes get long: the map counts as full (Kafka's dupBufferLoadFactor). */
const LOAD_FACTOR = 0.9;

/** The key's MD5 digest (crypto.hash: one call, no Hash object, 1.7x createHash's speed for short keys here). */
function md5(key: Uint8Array): Buffer {
  return hash('md5', key, 'buffer') as unknown as Buffer;
}

function slotsFor(memoryBytes: number, expectedKeys: number): number {
  return Math.max(1, Math.min(Math.floor(memoryBytes / SLOT_BYTES), Math.ceil(expectedKeys / LOAD_FACTOR) + 1));
}

/** The bytes of the table a KeyMap allocates for these arguments. */
export function keyMapBytes(memoryBytes: number, expectedKeys: number): number {
  return slotsFor(memoryBytes, expectedKeys) * SLOT_BYTES;
}

export class KeyMap {
  readonly #table: Buffer;
  readonly #slots: number;
  #entries = 0;

  /** A map in at most `memoryBytes`, sized for `expectedKeys` when that needs less (keyMapBytes). */
  constructor(memoryBytes: number, expectedKeys: number) {
    this.#slots = slotsFor(memoryBytes, expectedKeys);
    // Zeroed: an offset field of 0 marks a free slot (offsets are stored + 1, as doubles: exact to 2^53).
    this.#table = Buffer.alloc(this.#slots * SLOT_BYTES);
  }

  /** Keys the map can take before it counts as full. */
  get capacity(): number {
    return Math.floor(this.#slots * LOAD_FACTOR);
  }

  get size(): number {
    return this.#entries;
  }

  get full(): boolean {
    return this.#entries >= this.capacity;
  }

  /** Records `offset` as the latest of `key` (offsets come in increasing order). False, changing nothing, when the map is full and the key new. */
  put(key: Uint8Array, offset: number): boolean {
    const digest = md5(key);
    const slot = this.#find(digest);
    const at = slot * SLOT_BYTES;
    if (this.#table.readDoubleBE(at + DIGEST_BYTES) === 0) {
      if (this.full) return false;
      digest.copy(this.#table, at);
      this.#entries++;
    }
    this.#table.writeDoubleBE(offset + 1, at + DIGEST_BYTES);
    return true;
  }

  /** The latest offset recorded for `key`, or undefined. */
  get(key: Uint8Array): number | undefined {
    const at = this.#find(md5(key)) * SLOT_BYTES;
    const stored = this.#table.readDoubleBE(at + DIGEST_BYTES);
    return stored === 0 ? undefined : stored - 1;
  }

  /** The slot holding `digest`, or the free slot where it would go. */
  #find(digest: Buffer): number {
    const table = this.#table;
    for (let slot = digest.readUInt32BE(0) % this.#slots; ; slot = (slot + 1) % this.#slots) {
      const at = slot * SLOT_BYTES;
      if (table.readDoubleBE(at + DIGEST_BYTES) === 0 || table.compare(digest, 0, DIGEST_BYTES, at, at + DIGEST_BYTES) === 0) return slot;
    }
  }
}

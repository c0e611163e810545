// Which row of the producer table (producer-table.ts) holds a producer:
// producerId -> row, in an open-addressed hash table of one Int32Array
// (linear probing, kept at most half full, deletion by shifting the run
// back instead of leaving tombstones). A slot holds the low 32 bits of the
// id and the row, 8 bytes: the row itself holds the whole id, which a
// lookup compares there (the row is read next anyway). With many producers
// taking turns, the slots are the part of a lookup that can stay in the
// CPU's caches between a producer's appends, and the smaller they are the
// better they do (16-byte slots, the whole id beside the row, were twice
// the memory; see docs/ARCHITECTURE.md for what the lookup costs). A
// JavaScript Map reads its bucket and then its entry, apart from each other,
// and a Map's deleted entries make it rehash.

const INITIAL_SLOTS = 128;
/** A slot's row when the slot is free. */
const EMPTY = -1;

/** Where the whole id of a row is read (the producer table). */
export interface RowIds {
  producerId(row: number): number;
}

export class ProducerRows {
  readonly #ids: RowIds;
  /** Slot s: [2s] the id's low 32 bits (as an int32), [2s + 1] its row (EMPTY: free). */
  #slots: Int32Array;
  #mask: number;
  #size = 0;

  constructor(ids: RowIds) {
    this.#ids = ids;
    this.#slots = emptySlots(INITIAL_SLOTS);
    this.#mask = INITIAL_SLOTS - 1;
  }

  get size(): number {
    return this.#size;
  }

  /** The slot a search for `producerId` starts at: the id's two 32-bit halves mixed (ids are often consecutive). */
  #home(producerId: number): number {
    const low = producerId >>> 0;
    const high = (producerId / 4294967296) >>> 0;
    const h = Math.imul(low ^ Math.imul(high, 0x9e3779b1), 0x85ebca6b);
    return (h ^ (h >>> 15)) & this.#mask;
  }

  /** The slot holding `producerId`'s row, or the free slot that ends its run. */
  #find(producerId: number): number {
    const slots = this.#slots;
    const low = producerId | 0;
    for (let s = this.#home(producerId); ; s = (s + 1) & this.#mask) {
      const row = slots[2 * s + 1]!;
      // Ids 2^32 apart share their low half: the row has the whole id.
      if (row === EMPTY || (slots[2 * s] === low && this.#ids.producerId(row) === producerId)) return s;
    }
  }

  /** The producer's row; -1: none. */
  get(producerId: number): number {
    return this.#slots[2 * this.#find(producerId) + 1]!;
  }

  /** Records the producer's row (one not recorded yet, whose id the row already holds). */
  add(producerId: number, row: number): void {
    if ((this.#size + 1) * 2 > this.#mask + 1) this.#resize((this.#mask + 1) * 2);
    this.#place(producerId, row);
    this.#size++;
  }

  #place(producerId: number, row: number): void {
    let s = this.#home(producerId);
    while (this.#slots[2 * s + 1] !== EMPTY) s = (s + 1) & this.#mask;
    this.#slots[2 * s] = producerId | 0;
    this.#slots[2 * s + 1] = row;
  }

  /** Forgets the producer (its row must still hold its id, as must the rows of every producer recorded). */
  delete(producerId: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    const s = this.#find(producerId);
    if (slots[2 * s + 1] === EMPTY) return;
    this.#size--;
    // Later ids of the run move into the hole unless their home lies (cyclically) after the hole, up to them.
    let hole = s;
    for (let t = (s + 1) & mask; slots[2 * t + 1] !== EMPTY; t = (t + 1) & mask) {
      const home = this.#home(this.#ids.producerId(slots[2 * t + 1]!));
      const stays = hole <= t ? hole < home && home <= t : hole < home || home <= t;
      if (stays) continue;
      slots[2 * hole] = slots[2 * t]!;
      slots[2 * hole + 1] = slots[2 * t + 1]!;
      hole = t;
    }
    slots[2 * hole + 1] = EMPTY;
  }

  #resize(count: number): void {
    const old = this.#slots;
    this.#slots = emptySlots(count);
    this.#mask = count - 1;
    for (let s = 1; s < old.length; s += 2) if (old[s] !== EMPTY) this.#place(this.#ids.producerId(old[s]!), old[s]!);
  }

  clear(): void {
    this.#slots = emptySlots(INITIAL_SLOTS);
    this.#mask = INITIAL_SLOTS - 1;
    this.#size = 0;
  }
}

function emptySlots(count: number): Int32Array {
  const slots = new Int32Array(2 * count);
  for (let s = 1; s < slots.length; s += 2) slots[s] = EMPTY;
  return slots;
}

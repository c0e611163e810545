// Which row of the producer table (producer-table.ts) holds a producer:
// producerId -> row, in an open-addressed hash table of one typed array
// (linear probing, kept at most half full, deletion by shifting the run
// back instead of leaving tombstones). A slot holds the id and its row side
// by side, so a lookup among many producers usually reads one cache line; a
// JavaScript Map reads its bucket and then its entry, apart from each other,
// and a Map's deleted entries make it rehash.

const INITIAL_SLOTS = 128;
/** A slot's row when the slot is free. */
const EMPTY = -1;

export class ProducerRows {
  /** Slot s: [2s] the id, [2s + 1] its row (EMPTY: free). */
  #slots: Float64Array;
  #mask: number;
  #size = 0;

  constructor() {
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

  /** The producer's row; -1: none. */
  get(producerId: number): number {
    const slots = this.#slots;
    for (let s = this.#home(producerId); ; s = (s + 1) & this.#mask) {
      const row = slots[2 * s + 1]!;
      if (row === EMPTY || slots[2 * s] === producerId) return row;
    }
  }

  /** Records the producer's row (one not recorded yet). */
  add(producerId: number, row: number): void {
    if ((this.#size + 1) * 2 > this.#mask + 1) this.#resize((this.#mask + 1) * 2);
    this.#place(producerId, row);
    this.#size++;
  }

  #place(producerId: number, row: number): void {
    let s = this.#home(producerId);
    while (this.#slots[2 * s + 1] !== EMPTY) s = (s + 1) & this.#mask;
    this.#slots[2 * s] = producerId;
    this.#slots[2 * s + 1] = row;
  }

  delete(producerId: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let s = this.#home(producerId);
    while (slots[2 * s + 1] !== EMPTY && slots[2 * s] !== producerId) s = (s + 1) & mask;
    if (slots[2 * s + 1] === EMPTY) return;
    this.#size--;
    // Later ids of the run move into the hole unless their home lies (cyclically) after the hole, up to them.
    let hole = s;
    for (let t = (s + 1) & mask; slots[2 * t + 1] !== EMPTY; t = (t + 1) & mask) {
      const home = this.#home(slots[2 * t]!);
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
    for (let s = 0; s < old.length; s += 2) if (old[s + 1] !== EMPTY) this.#place(old[s]!, old[s + 1]!);
  }

  clear(): void {
    this.#slots = emptySlots(INITIAL_SLOTS);
    this.#mask = INITIAL_SLOTS - 1;
    this.#size = 0;
  }
}

function emptySlots(count: number): Float64Array {
  const slots = new Float64Array(2 * count);
  for (let s = 1; s < slots.length; s += 2) slots[s] = EMPTY;
  return slots;
}

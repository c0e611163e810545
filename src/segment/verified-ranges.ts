// Which byte ranges of a segment's .log had their batches CRC-checked since the
// segment was opened: sorted, disjoint, merged where they touch. A consumer
// reading from the start gathers one range; point reads at random positions
// gather many until they meet, so lookups and inserts are binary searches.

export class VerifiedRanges {
  /** start0, end0, start1, end1, ...: [start, end) pairs, ascending, neither overlapping nor touching. */
  #bounds: number[] = [];

  /** Index (even) of the first pair whose end is >= `position`: the only pair that can hold or touch it from there on. */
  #firstEndingAtOrAfter(position: number): number {
    const b = this.#bounds;
    let lo = 0;
    let hi = b.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (b[2 * mid + 1]! < position) lo = mid + 1;
      else hi = mid;
    }
    return 2 * lo;
  }

  /** Whether every byte of [start, end) was checked. */
  covers(start: number, end: number): boolean {
    const i = this.#firstEndingAtOrAfter(end);
    return i < this.#bounds.length && this.#bounds[i]! <= start;
  }

  /** Records [start, end) as checked. */
  add(start: number, end: number): void {
    if (end <= start) return;
    const b = this.#bounds;
    // The pairs that overlap or touch [start, end) merge with it.
    const first = this.#firstEndingAtOrAfter(start);
    let last = first;
    while (last < b.length && b[last]! <= end) last += 2;
    const merged = last > first ? [Math.min(start, b[first]!), Math.max(end, b[last - 1]!)] : [start, end];
    b.splice(first, last - first, ...merged);
  }

  /** Forgets everything at or past `size` (the file was cut there). */
  cut(size: number): void {
    const b = this.#bounds;
    while (b.length > 0 && b[b.length - 2]! >= size) b.length -= 2;
    if (b.length > 0 && b[b.length - 1]! > size) b[b.length - 1] = size;
  }
}

// Which byte ranges of a segment's .log had their batches CRC-checked since the
// segment was opened: sorted, disjoint, merged where they touch. Readers serve
// whole batches from an offset on, so a segment's checked bytes gather into a
// few ranges (one, for a consumer reading from the start).

export class VerifiedRanges {
  /** start0, end0, start1, end1, ...: [start, end) pairs, ascending, neither overlapping nor touching. */
  #bounds: number[] = [];

  /** Whether every byte of [start, end) was checked. */
  covers(start: number, end: number): boolean {
    const b = this.#bounds;
    for (let i = 0; i < b.length; i += 2) {
      if (b[i]! > start) return false;
      if (end <= b[i + 1]!) return true;
    }
    return false;
  }

  /** Records [start, end) as checked. */
  add(start: number, end: number): void {
    if (end <= start) return;
    const b = this.#bounds;
    // The pairs that overlap or touch [start, end) merge with it.
    let first = 0;
    while (first < b.length && b[first + 1]! < start) first += 2;
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

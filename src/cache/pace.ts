// Bounds the bandwidth of catch-up reads (cache.catchUpBytesPerSecond), so
// that a replay leaves the disk time for appends and their writeback. Each
// read books its bytes on a timeline running at the allowed rate; a read
// that books ahead of the clock waits until its slot. Idle time banks at
// most BURST_MS of credit, so a pause does not buy a burst of full speed.
const BURST_MS = 50;

export class Pace {
  readonly #bytesPerMs: number;
  readonly #now: () => number;
  /** When the bytes booked so far will have been read at the allowed rate. */
  #booked = -Infinity;

  /** `now`: a clock in ms (tests pass their own). */
  constructor(bytesPerSecond: number, now: () => number = () => performance.now()) {
    this.#bytesPerMs = bytesPerSecond / 1000;
    this.#now = now;
  }

  /** Books `bytes`: ms to wait before reading them (0: at once). */
  book(bytes: number): number {
    const now = this.#now();
    const start = Math.max(this.#booked, now - BURST_MS);
    this.#booked = start + bytes / this.#bytesPerMs;
    return Math.max(0, start - now);
  }

  /** Waits for the slot of `bytes`. */
  async take(bytes: number): Promise<void> {
    const wait = this.book(bytes);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

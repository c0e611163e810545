// A bytes-per-second budget for background work (Kafka's cleaner Throttler):
// the work reports what it moved and is held back until the rate since it
// began is within the budget.
import { setTimeout as sleep } from 'node:timers/promises';

export class Throttle {
  readonly #bytesPerSecond: number;
  readonly #start = performance.now();
  #bytes = 0;

  /** `bytesPerSecond` Infinity: never waits. */
  constructor(bytesPerSecond: number) {
    this.#bytesPerSecond = bytesPerSecond;
  }

  /** Counts `bytes` moved, and waits as long as the rate would otherwise be over budget. */
  async moved(bytes: number): Promise<void> {
    this.#bytes += bytes;
    if (this.#bytesPerSecond === Infinity) return;
    const due = (this.#bytes / this.#bytesPerSecond) * 1000 - (performance.now() - this.#start);
    if (due > 1) await sleep(due);
  }
}

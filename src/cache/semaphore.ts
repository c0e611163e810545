// Bounds how many catch-up reads hit the disk at once, so that appends and
// tail reads keep their share of it. Waiters are served in arrival order.
export class Semaphore {
  #free: number;
  readonly #waiters: Array<() => void> = [];

  constructor(permits: number) {
    this.#free = permits;
  }

  /** Runs `work` once a permit is free, holding it until `work` settles. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiters.push(resolve));
    try {
      return await work();
    } finally {
      // The permit passes straight to the next waiter, so a newcomer cannot overtake it.
      const next = this.#waiters.shift();
      if (next === undefined) this.#free++;
      else next();
    }
  }
}

// One timer for a store's periodic work (interval flushes, checkpoints,
// retention, delayed deletes): never keeps the process alive, never runs a
// task twice at once, and a failing task does not stop the others.

interface Task {
  everyMs: number;
  dueAt: number;
  run: () => Promise<void>;
  running: boolean;
}

export class Scheduler {
  #tasks = new Set<Task>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #onError: (err: unknown) => void;

  /** `onError` receives what a task threw; the task keeps its schedule. */
  constructor(onError: (err: unknown) => void) {
    this.#onError = onError;
  }

  /** Runs `run` every `everyMs` ms until the returned function is called. */
  every(everyMs: number, run: () => Promise<void>): () => void {
    const task: Task = { everyMs, dueAt: Date.now() + everyMs, run, running: false };
    this.#tasks.add(task);
    this.#arm();
    return () => {
      this.#tasks.delete(task);
      this.#arm();
    };
  }

  /** Runs `run` once after `delayMs` ms (unless stopped first). */
  once(delayMs: number, run: () => Promise<void>): void {
    const cancel = this.every(delayMs, async () => {
      cancel();
      await run();
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#tasks.clear();
    clearTimeout(this.#timer);
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#stopped || this.#tasks.size === 0) return;
    let next = Infinity;
    for (const t of this.#tasks) next = Math.min(next, t.dueAt);
    this.#timer = setTimeout(() => this.#tick(), Math.max(0, next - Date.now()));
    this.#timer.unref();
  }

  #tick(): void {
    const now = Date.now();
    for (const t of this.#tasks) {
      if (t.dueAt > now || t.running) continue;
      t.running = true;
      t.dueAt = now + t.everyMs;
      t.run()
        .catch(this.#onError)
        .finally(() => (t.running = false));
    }
    this.#arm();
  }
}

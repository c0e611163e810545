// The order of a log's writes: appends and exclusive work (roll, truncation,
// retention) run one at a time, in call order; consecutive appends are handed
// out as groups for one commit; appends beyond maxPendingBytes wait for room
// (backpressure), in call order too. An append's memory goes back to its
// owner (the encode ring) once the append settled.
import type { checkBatch } from '../segment/batch.js';

export type CheckedBatch = Extract<ReturnType<typeof checkBatch>, { ok: true }>;

export interface AppendResult {
  baseOffset: number;
  lastOffset: number;
  /** Bytes written to the log (0 for a duplicate). */
  bytes: number;
  /** The batches' timestamp when LogAppendTime was applied, else -1. */
  logAppendTime: number;
  /** The append repeated batches of a producer that the log holds: nothing was written, the offsets are the original's. */
  duplicate: boolean;
}

/** An append checked and ready to queue: its batches (in ring memory) and their checked headers. */
export interface PreparedAppend {
  data: Buffer;
  checks: CheckedBatch[];
  /** LogAppendTime stamped on its batches; -1: none. */
  logAppendTime: number;
  /** Whether a batch has a producerId (the producer rules apply, see producer-append.ts). */
  producers: boolean;
  /** A follower's append (origin 'replication'): producer state is recorded, not checked. */
  replication: boolean;
}

/** One append waiting for its turn. */
export interface PendingAppend extends PreparedAppend {
  resolve(result: AppendResult): void;
  reject(err: unknown): void;
}

/** Work that must run alone between append groups. */
interface ExclusiveWork {
  work(): Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** Commits the appends that `take` hands out (at least one), settling each. */
export type Commit = (take: (room: number) => PendingAppend[]) => Promise<void>;

export class AppendQueue {
  readonly #maxPendingBytes: number;
  readonly #commit: Commit;
  /** Gives an append's memory back once nothing reads it any more. */
  readonly #release: (data: Buffer) => void;
  readonly #items: Array<PendingAppend | ExclusiveWork> = [];
  #pendingBytes = 0;
  #running: Promise<void> | undefined;
  /** Appends waiting for room (backpressure), in call order. */
  #roomWaiters: Array<() => void> = [];

  constructor(maxPendingBytes: number, commit: Commit, release: (data: Buffer) => void) {
    this.#maxPendingBytes = maxPendingBytes;
    this.#commit = commit;
    this.#release = release;
  }

  /** The drain under way, if any: close waits for it. */
  get running(): Promise<void> | undefined {
    return this.#running;
  }

  /**
   * Queues an append once there is room for it; `stillWritable` runs after
   * a wait for room and throws if the log can no longer take it.
   */
  append(prepared: PreparedAppend, stillWritable: () => void): Promise<AppendResult> {
    if (this.#roomWaiters.length > 0 || (this.#pendingBytes > 0 && this.#pendingBytes + prepared.data.length > this.#maxPendingBytes)) {
      return this.#appendWhenRoom(prepared, stillWritable);
    }
    return this.#queued(prepared);
  }

  async #appendWhenRoom(prepared: PreparedAppend, stillWritable: () => void): Promise<AppendResult> {
    await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
    try {
      stillWritable();
    } catch (err) {
      this.#release(prepared.data);
      throw err;
    }
    return this.#queued(prepared);
  }

  #queued(prepared: PreparedAppend): Promise<AppendResult> {
    this.#pendingBytes += prepared.data.length;
    return new Promise<AppendResult>((resolve, reject) => {
      const { data, checks, logAppendTime, producers, replication } = prepared;
      this.#items.push({ data, checks, logAppendTime, producers, replication, resolve, reject });
      void this.#pump();
    });
  }

  /** Runs `work` alone, after every append queued before it. */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#items.push({ work, resolve: resolve as (v: unknown) => void, reject });
      void this.#pump();
    });
  }

  /** Settled appends leave the queue (their memory goes back): appends waiting for room may go. */
  settled(appends: readonly PendingAppend[]): void {
    for (const a of appends) {
      this.#pendingBytes -= a.data.length;
      this.#release(a.data);
    }
    while (this.#roomWaiters.length > 0 && (this.#pendingBytes === 0 || this.#pendingBytes < this.#maxPendingBytes)) {
      this.#roomWaiters.shift()!();
      // The woken append adds its bytes in a later microtask; let one through at a time past the bound.
      if (this.#pendingBytes >= this.#maxPendingBytes) break;
    }
  }

  /** Rejects every queued append with `err` (the log failed); exclusive work stays queued. */
  rejectAppends(err: unknown): void {
    for (const item of this.#items.splice(0)) {
      if ('data' in item) {
        this.settled([item]);
        item.reject(err);
      } else {
        this.#items.push(item);
      }
    }
  }

  #pump(): Promise<void> {
    this.#running ??= this.#drain();
    return this.#running;
  }

  async #drain(): Promise<void> {
    // Appenders woken by one group's acknowledgements run in the microtasks queued behind the one
    // that started this drain: waiting for them first puts them all in one group.
    await undefined;
    try {
      while (this.#items.length > 0) {
        const head = this.#items[0]!;
        if ('work' in head) {
          this.#items.shift();
          try {
            head.resolve(await head.work());
          } catch (err) {
            head.reject(err);
          }
          continue;
        }
        await this.#commit((room) => this.#take(room));
      }
    } finally {
      this.#running = undefined;
    }
  }

  /** The appends at the head of the queue whose bytes fit in `room`; the first always goes. */
  #take(room: number): PendingAppend[] {
    const group: PendingAppend[] = [];
    let bytes = 0;
    while (this.#items.length > 0) {
      const next = this.#items[0]!;
      if (!('data' in next)) break;
      if (group.length > 0 && bytes + next.data.length > room) break;
      bytes += next.data.length;
      group.push(next);
      this.#items.shift();
    }
    return group;
  }
}

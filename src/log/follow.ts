// Following the end of a log: decoded records from an offset on, and with
// `follow`, waiting for new appends at the end until the log closes or the
// caller aborts. Followers are woken by the segment set's append and
// truncation events.
import { decodeBatch, type LogRecord } from '../segment/batch.js';
import type { ReadResult } from './reader.js';
import type { LogSegments, SegmentEvents } from './segments.js';

/** What records() needs of its log. */
export interface FollowSource {
  endOffset(): number;
  closed(): boolean;
  read(offset: number, maxBytes: number): Promise<ReadResult>;
}

export class Followers implements SegmentEvents {
  readonly #segments: LogSegments;
  #waiters: Array<() => void> = [];

  constructor(segments: LogSegments) {
    this.#segments = segments;
  }

  appended(): void {
    this.wakeAll();
  }

  /** Wakes every waiter: the log grew, or closes. */
  wakeAll(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once the log holds `offset` or `closed()` says it closed; rejects if `signal` aborts first. */
  wait(offset: number, closed: () => boolean, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#segments.endOffset > offset || closed()) return resolve();
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== wake);
        reject(signal!.reason);
      };
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(wake);
    });
  }
}

/** Decoded records of `log` from `fromOffset` on; with `follow`, waits at the end instead of finishing. */
export async function* records(
  log: FollowSource,
  followers: Followers,
  fromOffset: number,
  options: { follow: boolean; signal: AbortSignal | undefined; maxBytes: number },
): AsyncGenerator<LogRecord> {
  const { follow, signal, maxBytes } = options;
  let next = fromOffset;
  for (;;) {
    signal?.throwIfAborted();
    if (log.closed()) return;
    if (next >= log.endOffset()) {
      if (!follow) return;
      await followers.wait(next, log.closed, signal);
      continue;
    }
    const { bytes, nextOffset } = await log.read(next, maxBytes);
    // Nothing before the end: a truncation is under way (its segments are gone, the end not yet moved).
    // Reads that need no I/O would spin on microtasks and starve it: let it finish.
    if (bytes.length === 0) await new Promise((resolve) => setImmediate(resolve));
    for (let p = 0; p < bytes.length; ) {
      const size = bytes.readInt32BE(p + 8) + 12;
      for (const r of decodeBatch(bytes.subarray(p, p + size))) if (r.offset >= next) yield r;
      p += size;
    }
    next = nextOffset;
  }
}

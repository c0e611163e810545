// Runs work at a point in a Writable's write order.
//
// A broker writes a response header, hands the body to sendfile(2), then
// writes the next header, often without waiting in between. The body never
// passes through write(), yet must reach the wire between the two headers.
// So each piece of such work is queued as a zero-length marker chunk written
// with the stream's own write(): the stream's buffer keeps it in order with
// every other write, cork()/uncork() included. The stream's _write/_writev,
// wrapped on first use, run the work when the marker's turn comes, which is
// after every earlier chunk was handed to the OS (their write callbacks ran).
// Chunks written meanwhile wait in the stream's buffer and count toward its
// highWaterMark, so write() keeps reporting backpressure and end() waits.
import { Writable } from 'node:stream';
import { SeglogError } from '../errors.js';

type WriteCallback = (err?: Error | null) => void;
type BufferedChunks = Array<{ chunk: unknown; encoding: string }> & { allBuffers?: boolean };

interface WritableInternals {
  _write(chunk: unknown, encoding: string, cb: WriteCallback): void;
  _writev?: ((chunks: BufferedChunks, cb: WriteCallback) => void) | null;
}

/** What a job may do while it holds the stream. */
export interface Slot {
  /** Aborted when the stream closes meanwhile; the reason is the stream's error (or ERR_STREAM_DESTROYED). */
  readonly signal: AbortSignal;
  /** Writes `chunk` now, ahead of the stream's buffer; resolves once the stream took it (its write callback). */
  write(chunk: Uint8Array): Promise<void>;
}

export type Job = (slot: Slot) => Promise<void>;

const jobs = new WeakMap<object, Job>();
const wrapped = new WeakSet<Writable>();

/**
 * Runs `job` at this call's place in `stream`'s write order: after every chunk
 * written before (handed to the OS), before every chunk written after. The
 * promise settles with the job. A job that fails errors and destroys the
 * stream like a failed write(); one that never ran (the stream was destroyed
 * first) rejects with the stream's error or ERR_STREAM_DESTROYED.
 */
export function inWriteOrder(stream: Writable, job: Job): Promise<void> {
  // Writable.write() would also destroy the stream for these; the caller only needs to know.
  if (stream.destroyed) return Promise.reject(stream.errored ?? destroyedError());
  if (stream.writableEnded) return Promise.reject(new SeglogError('ERR_STREAM_WRITE_AFTER_END', 'write after end'));
  wrap(stream);
  const marker = Buffer.alloc(0);
  jobs.set(marker, job);
  return new Promise((resolve, reject) => {
    stream.write(marker, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * A promise that `start` settles, or that rejects with the signal's reason if
 * it aborts first (what `start` waits for may then never come).
 */
export function unlessAborted<T>(signal: AbortSignal, start: (resolve: (value: T) => void, reject: (err: unknown) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    start(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function destroyedError(): SeglogError {
  return new SeglogError('ERR_STREAM_DESTROYED', 'the stream was destroyed before the transfer ended');
}

function wrap(stream: Writable): void {
  if (wrapped.has(stream)) return;
  wrapped.add(stream);
  const s = stream as unknown as WritableInternals;
  const write = s._write;
  const writev = s._writev;
  const direct = (chunk: Uint8Array, cb: WriteCallback) => write.call(stream, Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), 'buffer', cb);
  // One slot for all the stream's jobs (they run one at a time): 'close' comes once the stream's
  // resources are gone, and every job, running or yet to run, must let go of them then.
  const ac = new AbortController();
  stream.once('close', () => ac.abort(stream.errored ?? destroyedError()));
  const slot: Slot = {
    signal: ac.signal,
    write: (chunk) => unlessAborted(ac.signal, (resolve, reject) => direct(chunk, (err) => (err ? reject(err) : resolve()))),
  };
  s._write = function (chunk, encoding, cb) {
    // A WeakMap answers undefined for strings, so any chunk can be looked up.
    const job = jobs.get(chunk as object);
    if (job === undefined) write.call(this, chunk, encoding, cb);
    else run(slot, [job], cb);
  };
  // Streams without _writev get none: Writable would start batching into it.
  if (typeof writev !== 'function') return;
  s._writev = function (chunks, cb) {
    if (!chunks.some((c) => jobs.has(c.chunk as object))) return writev.call(this, chunks, cb);
    // Ordinary chunks between markers still go out batched, through the original _writev.
    const steps: Job[] = [];
    let batch: BufferedChunks = [];
    const flush = () => {
      if (batch.length === 0) return;
      const chunksOfBatch = Object.assign(batch, { allBuffers: chunks.allBuffers });
      steps.push((slot) => unlessAborted(slot.signal, (resolve, reject) => writev.call(stream, chunksOfBatch, (err) => (err ? reject(err) : resolve()))));
      batch = [];
    };
    for (const c of chunks) {
      const job = jobs.get(c.chunk as object);
      if (job === undefined) {
        batch.push(c);
      } else {
        flush();
        steps.push(job);
      }
    }
    flush();
    run(slot, steps, cb);
  };
}

/** Runs `steps` one after another on behalf of one write, then calls its callback. */
function run(slot: Slot, steps: Job[], cb: WriteCallback): void {
  (async () => {
    for (const step of steps) await step(slot);
  })().then(
    () => cb(),
    // Whatever a job reports after an abort (e.g. ECANCELED) is a consequence; the cause is the stream's.
    (err: unknown) => cb(slot.signal.aborted ? (slot.signal.reason as Error) : (err as Error)),
  );
}

// Own mode for one log: tail hits are served from the tail cache without a
// system call, and point reads of batches kept in the read cache from there;
// everything else is a catch-up read through a read-ahead stream, with
// O_DIRECT where the filesystem takes it, else pread followed by fadvise
// DONTNEED, so it leaves nothing in the page cache and never enters the tail
// cache. A point read's catch-up read reads just the batch's blocks and
// keeps the batch in the read cache. Written pages are dropped once on disk
// (see write-behind.ts).
import type { SeglogError } from '../errors.js';
import { File } from '../native.js';
import type { BatchHeader } from '../segment/batch.js';
import type { Segment } from '../segment/segment.js';
import type { Pace } from './pace.js';
import type { Semaphore } from './semaphore.js';
import type { LogCache, SegmentSource, SyncPolicy } from './log-cache.js';
import { CachedSource, CatchUpSource, TailSource, type CatchUpOwner } from './own-sources.js';
import { ReadAheadStream } from './read-ahead.js';
import type { ReadCache } from './read-cache.js';
import type { CacheCounters } from './stats.js';
import { TailArena, TailWindow, type TailBudget } from './tail.js';
import { WriteBehind } from './write-behind.js';

/** What the logs of one store share in own mode (CacheGroup provides it). */
export interface OwnCacheShared {
  readonly directIO: boolean;
  /** The tail cache's memory; undefined with tailBytes 0. */
  readonly budget: TailBudget | undefined;
  /** Batches point reads fetched; undefined with readCacheBytes 0. */
  readonly readCache: ReadCache | undefined;
  readonly readAheadBytes: number;
  /** Of read-ahead buffers, file positions and lengths. */
  readonly alignment: number;
  readonly catchUpSlots: Semaphore;
  readonly catchUpPace: Pace | undefined;
  /** A read-ahead stream's read is done: it keeps its buffer unless that makes too many kept. */
  parked(stream: ReadAheadStream): void;
  /** A stream is in use again, or gone. */
  taken(stream: ReadAheadStream): void;
}

/** Read-ahead streams a log keeps between reads (the store frees the buffers of all but a few idle ones). */
const MAX_STREAMS = 4;

export class OwnLog implements LogCache, CatchUpOwner {
  readonly mode = 'own';
  readonly counters: CacheCounters;
  readonly #group: OwnCacheShared;
  readonly #windows = new Map<Segment, TailWindow>();
  /** Where this log's appends are encoded: the tail cache's memory (undefined with tailBytes 0). */
  readonly #arena: TailArena | undefined;
  #streams: ReadAheadStream[] = [];
  readonly #writeBehind: WriteBehind;
  /** O_DIRECT descriptors for catch-up reads, opened on first use; undefined where that failed. */
  readonly #direct = new Map<Segment, Promise<File | undefined>>();
  /** Segments whose descriptor was told not to read ahead (FADV_RANDOM), for the buffered path. */
  readonly #noReadAhead = new WeakSet<Segment>();
  /** Segments that left the log: no new O_DIRECT descriptor for them. */
  readonly #gone = new WeakSet<Segment>();
  #uses = 0;
  /** Counts truncations: what a stream read before one may be stale. */
  #generation = 0;
  #closed = false;

  /** `onError` gets failures of background writeback, which must stop the log like a failed fsync; appends not yet settled hold at most `maxPendingBytes` of the tail cache. */
  constructor(group: OwnCacheShared, counters: CacheCounters, onError: (err: unknown) => void, syncs: SyncPolicy, maxPendingBytes: number) {
    this.#group = group;
    this.counters = counters;
    this.#writeBehind = new WriteBehind(onError, syncs);
    this.#arena = group.budget === undefined ? undefined : new TailArena(group.budget, maxPendingBytes);
  }

  get appendMemory(): TailArena | undefined {
    return this.#arena;
  }

  get directIO(): boolean {
    return this.#group.directIO;
  }

  get cacheBytes(): number {
    let n = this.#arena?.bytesHeld ?? 0;
    for (const s of this.#streams) n += s.bytesHeld;
    return n + (this.#group.readCache?.bytesHeld(this) ?? 0);
  }

  source(segment: Segment, offset: number, point: boolean): SegmentSource {
    const window = this.#windows.get(segment);
    if (window?.holds(offset)) return new TailSource(segment, window, this.counters);
    const cached = point ? this.#group.readCache?.find(segment, offset) : undefined;
    if (cached !== undefined) return new CachedSource(cached, this.counters);
    return new CatchUpSource(segment, this.#stream(segment, offset, point), this, point ? this.#generation : undefined);
  }

  /** @internal For CatchUpSource: a point read's checked batch goes to the read cache, unless the log was cut or the segment left it since the read began (`generation`). */
  keep(segment: Segment, position: number, header: BatchHeader, bytes: Buffer, generation: number): void {
    if (generation !== this.#generation || this.#gone.has(segment) || this.#closed) return;
    this.#group.readCache?.add({ segment, position, header, bytes, owner: this });
  }

  /**
   * The stream a sequential reader used last (it reads on at `offset`), else
   * a free one, else a new one. A point read takes no stream a sequential
   * reader goes on with while the log may have more streams: its fill would
   * replace the bytes that reader reads next.
   */
  #stream(segment: Segment, offset: number, point: boolean): ReadAheadStream {
    const spare = point && this.#streams.length < MAX_STREAMS;
    const free = this.#streams.filter((s) => !s.busy && !(spare && s.nextPosition >= 0));
    let stream =
      free.find((s) => s.nextOffset === offset) ??
      free.find((s) => s.segment === segment) ??
      free.sort((a, b) => a.lastUsed - b.lastUsed)[0] ??
      new ReadAheadStream(this.#group.readAheadBytes, this.#group.alignment);
    if (!this.#streams.includes(stream)) this.#streams.push(stream);
    this.#group.taken(stream);
    stream.busy = true;
    stream.lastUsed = ++this.#uses;
    stream.use(segment, this.#generation);
    return stream;
  }

  /** @internal For CatchUpSource. */
  readAheadEnd(segment: Segment): number {
    return Math.min(segment.size, this.#windows.get(segment)?.start ?? Infinity);
  }

  /** @internal For CatchUpSource. */
  releaseStream(stream: ReadAheadStream): void {
    stream.busy = false;
    if (this.#closed) {
      stream.free();
      return;
    }
    this.#group.parked(stream);
    if (this.#streams.length <= MAX_STREAMS) return;
    // Over the number kept: the least recently used free one goes.
    const idle = this.#streams.filter((s) => !s.busy).sort((a, b) => a.lastUsed - b.lastUsed)[0]!;
    this.#group.taken(idle);
    idle.free();
    this.#streams = this.#streams.filter((s) => s !== idle);
  }

  /** @internal Reads into `into` from `position` of `segment`, leaving no pages in the page cache; at most a few such reads run at once per store, within its bandwidth bound. */
  async fill(segment: Segment, into: Buffer, position: number): Promise<number> {
    // Booked before a slot is taken: a read waiting for its turn holds no slot.
    await this.#group.catchUpPace?.take(into.length);
    return this.#group.catchUpSlots.run(async () => {
      const direct = await this.#directFile(segment);
      let n: number | undefined;
      if (direct !== undefined) {
        n = await direct.read(into, position).catch((err: SeglogError) => {
          // Closed under us (the segment left the log): the buffered path below still has the pinned file.
          if (err.code === 'ECLOSED' && direct.closed) return undefined;
          // A read that met the end of the file came back short, the addon's read loop went on from that
          // unaligned position, and the file had grown meanwhile: the buffered path reads it again.
          if (err.code === 'EINVAL') return undefined;
          throw err;
        });
      }
      const buffered = n === undefined;
      if (n === undefined) {
        // No kernel read-ahead past what is read here (read_ahead_kb may be MiBs): DONTNEED below would miss it.
        if (!this.#noReadAhead.has(segment)) {
          await segment.log.advise(0, 0, 'random');
          this.#noReadAhead.add(segment);
        }
        n = await segment.log.read(into, position);
      }
      // The addon's read loop ends a short read with one more pread that finds the end of the file.
      this.counters.add('readSyscalls', n > 0 && n < into.length ? 2 : 1);
      this.counters.add('catchUpBytesFromDisk', n);
      if (buffered && n > 0) await segment.log.advise(position, n, 'dontneed');
      return n;
    });
  }

  #directFile(segment: Segment): Promise<File | undefined> {
    if (!this.#group.directIO || this.#gone.has(segment)) return Promise.resolve(undefined);
    let file = this.#direct.get(segment);
    if (file === undefined) {
      // Reopened through the descriptor rather than the path: retention may have renamed the file and a
      // new segment taken its name. Where O_DIRECT cannot be had, the buffered path does the job.
      file = File.open(`/proc/self/fd/${segment.log.fd}`, { direct: true }).catch(() => undefined);
      this.#direct.set(segment, file);
    }
    return file;
  }

  sending(): void {}

  appended(segment: Segment, position: number, chunks: readonly Uint8Array[], headers: readonly BatchHeader[]): void {
    this.#writeBehind.appended(segment, position + headers.reduce((n, h) => n + h.size, 0));
    const arena = this.#arena;
    if (arena === undefined) return;
    let window = this.#windows.get(segment);
    if (window?.end !== position) {
      // A new segment, or bytes missed (a window must end where the segment's data does).
      window?.drop();
      window = new TailWindow(segment, arena, position);
      this.#windows.set(segment, window);
    }
    window.add(chunks, headers);
    this.#group.budget!.trim();
  }

  synced(segment: Segment, end: number): void {
    this.#writeBehind.synced(segment, end);
  }

  sealed(segment: Segment): void {
    this.#writeBehind.sealed(segment);
  }

  removed(segments: readonly Segment[]): void {
    this.#writeBehind.forget(segments);
    for (const s of segments) {
      this.#gone.add(s);
      this.#group.readCache?.drop(s);
      this.#windows.get(s)?.drop();
      this.#windows.delete(s);
      // Not a stream a reader is using: its read holds the segment's file open, and forgetting what the stream
      // holds under it would drop the fill under way (the reader then saw no batch where one is).
      for (const stream of this.#streams) if (stream.segment === s && !stream.busy) stream.use(undefined, this.#generation);
      const direct = this.#direct.get(s);
      this.#direct.delete(s);
      // Waits for reads under way on it; a failed close of a read-only descriptor loses nothing.
      void direct?.then((f) => f?.close()).catch(() => undefined);
    }
  }

  replacing(segment: Segment): void {
    this.removed([segment]);
  }

  truncated(): void {
    this.#writeBehind.clear();
    for (const w of this.#windows.values()) w.drop();
    this.#windows.clear();
    // Streams in use now are reset when next taken.
    this.#generation++;
  }

  async close(): Promise<void> {
    await this.#writeBehind.drain();
    const direct = [...this.#direct.values()];
    this.removed([...new Set([...this.#windows.keys(), ...this.#direct.keys()])]);
    this.#arena?.close();
    this.#group.readCache?.dropOwner(this);
    await Promise.all(direct.map((f) => f.then((file) => file?.close()).catch(() => undefined)));
    this.#closed = true;
    // Streams in use are freed when their reads are done.
    for (const s of this.#streams) {
      this.#group.taken(s);
      if (!s.busy) s.free();
    }
    this.#streams = [];
  }
}

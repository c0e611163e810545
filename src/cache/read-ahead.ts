// Catch-up reads in own mode: each sequential reader gets a read-ahead
// buffer that slides along the segment it reads, so reading a cold backlog
// costs one large read per buffer rather than one small read per batch.
// Fills start small and grow while the reader reads on, so a random read
// does not drag a whole buffer (a point read's fill reads just the blocks it
// asks for). Once a reader reads on, the next fill runs while it consumes
// the bytes held (double buffering in one buffer: the held bytes move to
// its front, the fill lands behind them). The buffer is aligned for O_DIRECT.
import { allocAligned, freeAligned, type File } from '../native.js';
import type { ByteSource } from '../segment/batch-reader.js';
import type { Segment } from '../segment/segment.js';

/** Reads into `into` from `position` of the stream's segment; returns the bytes read (fewer at the end of the file). */
export type Fill = (into: Buffer, position: number) => Promise<number>;

const EMPTY = Buffer.alloc(0);
/** A fill's size for a reader not (yet) seen reading on: a random read costs this, not a whole buffer. */
const MIN_WINDOW = 128 * 1024;

export class ReadAheadStream {
  readonly #capacity: number;
  readonly #alignment: number;
  readonly #minWindow: number;
  /**
   * Bytes a fill reads at least: the minimum after a jump, doubled by each
   * fill that goes on where the held bytes end, up to the capacity
   * (small for random readers, growing for sequential ones).
   */
  #window: number;
  #buf: Buffer | undefined;
  /** File position of #buf[0]; a multiple of the alignment. */
  #start = 0;
  #filled = 0;
  #segment: Segment | undefined;
  #generation = 0;
  /** The fill under way, if any (it never rejects): nothing else touches the buffer until it settles. */
  #filling: Promise<void> | undefined;
  /** Bumped when what the buffer holds stops counting: a fill under way then lands nowhere. */
  #epoch = 0;
  /** free() waits for a fill to settle before it frees the buffer. */
  #freeing = false;
  /** Offset its last reader reads next, and where that batch starts: how a sequential reader finds its stream and its place again. */
  nextOffset = -1;
  nextPosition = -1;
  busy = false;
  lastUsed = 0;

  /** `alignment`: of file positions, lengths and memory, a power of two (O_DIRECT's needs, at least a page). */
  constructor(capacity: number, alignment: number) {
    this.#alignment = alignment;
    this.#capacity = Math.ceil(capacity / alignment) * alignment;
    this.#minWindow = Math.min(this.#capacity, Math.ceil(MIN_WINDOW / alignment) * alignment);
    this.#window = this.#minWindow;
  }

  get segment(): Segment | undefined {
    return this.#segment;
  }

  /** Memory held. */
  get bytesHeld(): number {
    return this.#buf?.length ?? 0;
  }

  /**
   * Points the stream at `segment` (undefined: none), forgetting what it
   * held of another one, or of this one before the log was truncated
   * (`generation` changed): those bytes may have been rewritten since.
   */
  use(segment: Segment | undefined, generation: number): void {
    if (segment === this.#segment && generation === this.#generation) return;
    this.#segment = segment;
    this.#generation = generation;
    this.nextPosition = -1;
    this.#window = this.#minWindow;
    this.#forget();
  }

  #forget(): void {
    this.#epoch++;
    this.#filled = 0;
  }

  /**
   * Makes bytes [position, position+length), clipped to `end` (the segment's
   * size: nothing past it is trusted), available to view(). Bytes already
   * held from there on are kept and only the rest is read, in one fill of
   * the whole buffer; a read longer than the buffer gets a bigger one until
   * the next. `exact`: a point read, which reads just the blocks asked for.
   */
  async ensure(position: number, length: number, end: number, fill: Fill, exact = false): Promise<void> {
    this.#freeing = false;
    const want = Math.min(position + length, end);
    // Bytes held are served while a fill under way writes past them (double buffering: see readAhead()).
    for (;;) {
      if (position >= this.#start && want <= this.#start + this.#filled) return;
      if (this.#filling === undefined) break;
      await this.#filling;
    }
    const a = this.#alignment;
    const from = Math.floor(position / a) * a;
    const capacity = Math.max(this.#capacity, Math.ceil((want - from) / a) * a);
    // A partly filled last block is read again: the fill must start aligned.
    const heldEnd = Math.floor((this.#start + this.#filled) / a) * a;
    const keep = this.#buf !== undefined && from >= this.#start && from < heldEnd ? heldEnd - from : 0;
    const onward = this.#filled > 0 && position >= this.#start && position <= this.#start + this.#filled;
    this.#window = onward && !exact ? Math.min(this.#capacity, this.#window * 2) : this.#minWindow;
    const old = this.#buf;
    let buf = old;
    if (buf === undefined || buf.length !== capacity) {
      buf = allocAligned(capacity, a);
      if (keep > 0) old!.copy(buf, 0, from - this.#start, from - this.#start + keep);
      if (old !== undefined) freeAligned(old);
      this.#buf = buf;
    } else if (keep > 0) {
      buf.copy(buf, 0, from - this.#start, from - this.#start + keep);
    }
    this.#start = from;
    this.#filled = keep;
    // Nothing past the block holding `end` is read: it is not to be trusted yet, and an O_DIRECT read that
    // meets the end of the file comes back short (see OwnLog.fill).
    const readEnd = Math.min(capacity, Math.max(exact ? 0 : this.#window, Math.ceil((want - from) / a) * a), Math.ceil((end - from) / a) * a);
    if (readEnd <= keep) return;
    const epoch = this.#epoch;
    const filled = fill(buf.subarray(keep, readEnd), from + keep).then((n) => {
      if (epoch === this.#epoch) this.#filled = Math.min(keep + n, end - from);
    });
    const settled = filled.then(
      () => undefined,
      () => undefined,
    );
    this.#filling = settled;
    void settled.then(() => {
      if (this.#filling === settled) this.#filling = undefined;
    });
    await filled;
  }

  /**
   * For a reader seen reading on (its window grew): once a quarter of a
   * window's room is free in the buffer, moves what is held from `position`
   * (where it reads next) to the front and starts filling the room behind it
   * in the background. The reader goes on reading the held bytes meanwhile:
   * the disk works while it deals with them. A failure is left for the
   * reader's own read to meet.
   */
  readAhead(position: number, end: number, fill: Fill): void {
    if (this.#window === this.#minWindow || this.#filling !== undefined || this.#start + this.#filled - position > this.#capacity - this.#window / 4) return;
    void this.ensure(position, this.#window - this.#alignment, end, fill).catch(() => undefined);
  }

  /** Up to `length` held bytes from `position`: a view valid until the next ensure(). */
  view(position: number, length: number): Buffer {
    if (this.#buf === undefined || position < this.#start) return EMPTY;
    const from = position - this.#start;
    return this.#buf.subarray(Math.min(from, this.#filled), Math.min(from + length, this.#filled));
  }

  /**
   * Frees the buffer once no fill writes into it any more, unless the
   * stream is used again before that. The stream stays usable.
   */
  free(): void {
    this.#forget();
    this.#freeing = true;
    const drop = () => {
      if (!this.#freeing) return;
      if (this.#filling !== undefined) {
        void this.#filling.then(drop);
        return;
      }
      this.#freeing = false;
      if (this.#buf !== undefined) freeAligned(this.#buf);
      this.#buf = undefined;
    };
    drop();
  }
}

/** A read-ahead stream as the byte source that Segment.locate and rangeFrom walk. */
export class StreamBytes implements ByteSource {
  readonly path: string;
  readonly end: number;
  readonly #stream: ReadAheadStream;
  readonly #fill: Fill;

  constructor(file: File, end: number, stream: ReadAheadStream, fill: Fill) {
    this.path = file.path;
    this.end = end;
    this.#stream = stream;
    this.#fill = fill;
  }

  async bytes(position: number, length: number): Promise<Buffer> {
    const want = Math.min(length, this.end - position);
    if (want <= 0) return EMPTY;
    await this.#stream.ensure(position, want, this.end, this.#fill);
    return this.#stream.view(position, want);
  }
}

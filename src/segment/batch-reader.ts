// Reads batch headers and whole batches of a segment's .log from a source of
// its bytes: the file through a reusable read buffer (one pread per buffer
// rather than one per batch), or memory that already holds them (the own
// cache mode's tail cache and read-ahead streams).
import { SeglogError } from '../errors.js';
import type { File } from '../native.js';
import { BATCH_HEADER_SIZE, checkBatch, readBatchHeader, type BatchHeader } from './batch.js';

const DEFAULT_BUFFER = 64 * 1024;
/** For walks that read headers only (the batches, if needed, are read whole apart): a walk over small batches gets several per read, a jump between large ones pays little for the rest. */
export const HEADER_READ_BYTES = 4096;

export type BatchCheck = ReturnType<typeof checkBatch>;

/** Where a BatchReader gets the bytes of one .log. */
export interface ByteSource {
  /** The .log's path, for errors. */
  readonly path: string;
  /** Bytes at and past it are not the segment's (its logical size when the read began). */
  readonly end: number;
  /** Bytes [position, position+length) as a view valid until the next call; fewer at the end. */
  bytes(position: number, length: number): Promise<Buffer>;
}

/** A .log read with pread into a reusable buffer. */
export class FileBytes implements ByteSource {
  readonly #file: File;
  readonly end: number;
  #buf: Buffer;
  #start = 0; // file position of #buf[0]
  #filled = 0; // valid bytes in #buf

  /** Reads `file` up to `end` (the segment's logical size). */
  constructor(file: File, end: number, bufferBytes = DEFAULT_BUFFER) {
    this.#file = file;
    this.end = end;
    this.#buf = Buffer.allocUnsafe(bufferBytes);
  }

  get path(): string {
    return this.#file.path;
  }

  async bytes(position: number, length: number): Promise<Buffer> {
    const want = Math.min(length, this.end - position);
    if (want <= 0) return this.#buf.subarray(0, 0);
    if (position < this.#start || position + want > this.#start + this.#filled) {
      if (want > this.#buf.length) this.#buf = Buffer.allocUnsafe(want);
      // Inline when the page cache holds the bytes, on the threadpool when not.
      const read = await this.#file.readHot(this.#buf.subarray(0, Math.min(this.#buf.length, this.end - position)), position);
      this.#start = position;
      this.#filled = read;
    }
    const from = position - this.#start;
    return this.#buf.subarray(from, Math.min(from + want, this.#filled));
  }
}

/** A .log served from views (a mapping, where its pages are in memory), and read with pread where there is no view. */
export class ViewBytes implements ByteSource {
  readonly #view: (start: number, end: number) => Buffer | undefined;
  readonly #file: File;
  readonly end: number;
  readonly #bufferBytes: number | undefined;
  /** Made on the first read the views cannot serve. */
  #read: FileBytes | undefined;

  /** `view(start, end)`: the bytes, or undefined when they must be read. */
  constructor(view: (start: number, end: number) => Buffer | undefined, file: File, end: number, bufferBytes?: number) {
    this.#view = view;
    this.#file = file;
    this.end = end;
    this.#bufferBytes = bufferBytes;
  }

  get path(): string {
    return this.#file.path;
  }

  bytes(position: number, length: number): Promise<Buffer> {
    const want = Math.min(length, this.end - position);
    const view = want > 0 ? this.#view(position, position + want) : undefined;
    if (view !== undefined) return Promise.resolve(view);
    this.#read ??= new FileBytes(this.#file, this.end, this.#bufferBytes);
    return this.#read.bytes(position, length);
  }
}

export class BatchReader {
  readonly #source: ByteSource;

  constructor(source: ByteSource) {
    this.#source = source;
  }

  /** A reader of `file` up to `end` through a buffer of `bufferBytes`. */
  static ofFile(file: File, end: number, bufferBytes?: number): BatchReader {
    return new BatchReader(new FileBytes(file, end, bufferBytes));
  }

  /** See ByteSource.bytes. */
  bytes(position: number, length: number): Promise<Buffer> {
    return this.#source.bytes(position, length);
  }

  /** Bytes at and past it are not the segment's. */
  get end(): number {
    return this.#source.end;
  }

  /**
   * The header of the batch at `position`, undefined at the end. ECORRUPT
   * (naming the file and position) where checkHeader() refuses what lies
   * there: walks by size would otherwise loop forever on a size of 0 or
   * wander off on garbage. The CRC is not checked.
   */
  async header(position: number): Promise<BatchHeader | undefined> {
    const end = this.#source.end;
    if (position >= end) return undefined;
    const c = await this.checkHeader(position);
    if (c.ok) return c.header;
    const path = this.#source.path;
    throw new SeglogError('ECORRUPT', `${path}: no batch header (${c.reason}) at position ${position} of ${end} bytes`, { path, position });
  }

  /** Like header(), but undefined where header() throws: for walks that end at a torn tail. */
  async headerOrEnd(position: number): Promise<BatchHeader | undefined> {
    if (position >= this.#source.end) return undefined;
    const c = await this.checkHeader(position);
    return c.ok ? c.header : undefined;
  }

  /**
   * Whether a walk by size can step over the batch at `position`, never
   * throwing on garbage: 61 bytes that parse (truncated, records) and a size
   * from 61 bytes to the end (length, truncated). Neither magic nor CRC is
   * checked: that is check()'s job.
   */
  async checkHeader(position: number): Promise<BatchCheck> {
    const b = await this.bytes(position, BATCH_HEADER_SIZE);
    if (b.length < BATCH_HEADER_SIZE) return { ok: false, reason: 'truncated' };
    let header: BatchHeader;
    try {
      header = readBatchHeader(b, 0);
    } catch {
      // A 64-bit field beyond the safe range.
      return { ok: false, reason: 'records' };
    }
    if (header.size < BATCH_HEADER_SIZE) return { ok: false, reason: 'length' };
    if (header.size > this.#source.end - position) return { ok: false, reason: 'truncated' };
    return { ok: true, header };
  }

  /** Validates the whole batch at `position` (size, magic, CRC), never throwing on garbage. */
  async check(position: number): Promise<BatchCheck> {
    const head = await this.bytes(position, BATCH_HEADER_SIZE);
    if (head.length < BATCH_HEADER_SIZE) return checkBatch(head, 0, head.length);
    const declared = head.readInt32BE(8) + 12;
    const size = declared > BATCH_HEADER_SIZE && declared <= this.#source.end - position ? declared : BATCH_HEADER_SIZE;
    const whole = await this.bytes(position, size);
    return checkBatch(whole, 0, whole.length);
  }
}

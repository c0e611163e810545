// Walks the batches of a .log file through a reusable read buffer, so that
// scanning headers costs one pread per buffer rather than one per batch.
import { SeglogError } from '../errors.js';
import type { File } from '../native.js';
import { BATCH_HEADER_SIZE, checkBatch, readBatchHeader, type BatchHeader } from './batch.js';

const DEFAULT_BUFFER = 64 * 1024;

export type BatchCheck = ReturnType<typeof checkBatch>;

export class BatchReader {
  readonly #file: File;
  readonly #end: number;
  #buf: Buffer;
  #start = 0; // file position of #buf[0]
  #filled = 0; // valid bytes in #buf

  /** Reads batches of `file` that lie before `end` (the segment's logical size). */
  constructor(file: File, end: number, bufferBytes = DEFAULT_BUFFER) {
    this.#file = file;
    this.#end = end;
    this.#buf = Buffer.allocUnsafe(bufferBytes);
  }

  /** Bytes [position, position+length) as a view valid until the next call; fewer at the end. */
  async bytes(position: number, length: number): Promise<Buffer> {
    const want = Math.min(length, this.#end - position);
    if (want <= 0) return this.#buf.subarray(0, 0);
    if (position < this.#start || position + want > this.#start + this.#filled) {
      if (want > this.#buf.length) this.#buf = Buffer.allocUnsafe(want);
      const read = await this.#file.read(this.#buf.subarray(0, Math.min(this.#buf.length, this.#end - position)), position);
      this.#start = position;
      this.#filled = read;
    }
    const from = position - this.#start;
    return this.#buf.subarray(from, Math.min(from + want, this.#filled));
  }

  /**
   * The header of the batch at `position`, undefined at the end. ECORRUPT
   * (naming the file and position) where what lies there cannot be a batch:
   * fewer than 61 bytes, an unparseable header, or a size that is below the
   * header's or runs past the end. Walks by size would otherwise loop forever
   * on a size of 0 or wander off on garbage. The CRC is not checked.
   */
  async header(position: number): Promise<BatchHeader | undefined> {
    if (position >= this.#end) return undefined;
    const b = await this.bytes(position, BATCH_HEADER_SIZE);
    let header: BatchHeader | undefined;
    try {
      if (b.length === BATCH_HEADER_SIZE) header = readBatchHeader(b, 0);
    } catch {
      // A 64-bit field beyond the safe range: reported below like any other garbage.
    }
    if (header === undefined || header.size < BATCH_HEADER_SIZE || header.size > this.#end - position) {
      const what = header === undefined ? 'no batch header' : `a batch of ${header.size} bytes`;
      throw new SeglogError('ECORRUPT', `${this.#file.path}: ${what} at position ${position} of ${this.#end} bytes`, { path: this.#file.path, position });
    }
    return header;
  }

  /** Like header(), but undefined where header() throws: for walks that end at a torn tail. */
  async headerOrEnd(position: number): Promise<BatchHeader | undefined> {
    try {
      return await this.header(position);
    } catch (err) {
      if ((err as SeglogError).code === 'ECORRUPT') return undefined;
      throw err;
    }
  }

  /** Validates the whole batch at `position` (size, magic, CRC), never throwing on garbage. */
  async check(position: number): Promise<BatchCheck> {
    const head = await this.bytes(position, BATCH_HEADER_SIZE);
    if (head.length < BATCH_HEADER_SIZE) return checkBatch(head, 0, head.length);
    const declared = head.readInt32BE(8) + 12;
    const size = declared > BATCH_HEADER_SIZE && declared <= this.#end - position ? declared : BATCH_HEADER_SIZE;
    const whole = await this.bytes(position, size);
    return checkBatch(whole, 0, whole.length);
  }
}

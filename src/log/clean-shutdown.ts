// The clean-shutdown marker of a log: written by close() once everything is
// durable, it records each segment's size, end offset and max timestamp, so
// that the next open can trust the sealed segments without opening them
// (loader.ts; they open on first read, Segment.load). A CRC-32C covers the
// record: a damaged marker counts as an unclean shutdown. The marker stays
// on disk while the reopened log only reads, and goes, durably, before its
// first write: a crash after a write must not leave a record the files no
// longer match.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../common/durable-files.js';
import { CLEAN_SHUTDOWN_FILE, segmentFileName } from '../layout.js';
import type { SeglogError } from '../errors.js';
import { crc32c, File, fsyncDir, statSizes } from '../native.js';
import type { Segment, SegmentSummary } from '../segment/segment.js';

// Layout: magic, version u16, 0 u16, count u32, then per segment base offset, size, next offset and
// max timestamp (i64 each, big-endian), then the CRC-32C of everything before it (u32).
const MAGIC = 0x53474353; // "SGCS"
const VERSION = 1;
const HEAD_BYTES = 12;
const ENTRY_BYTES = 32;
const CRC_BYTES = 4;

/** The marker's bytes for `segments` (oldest first). */
export function encodeCleanShutdown(segments: readonly SegmentSummary[]): Buffer {
  const out = Buffer.alloc(HEAD_BYTES + segments.length * ENTRY_BYTES + CRC_BYTES);
  out.writeUInt32BE(MAGIC, 0);
  out.writeUInt16BE(VERSION, 4);
  out.writeUInt32BE(segments.length, 8);
  let p = HEAD_BYTES;
  for (const s of segments) {
    for (const v of [s.baseOffset, s.size, s.nextOffset, s.maxTimestamp]) {
      out.writeBigInt64BE(BigInt(v), p);
      p += 8;
    }
  }
  out.writeUInt32BE(crc32c(out.subarray(0, p)), p);
  return out;
}

/** The segments a marker records, oldest first, or undefined if `bytes` are not a whole, intact marker. */
export function decodeCleanShutdown(bytes: Buffer): SegmentSummary[] | undefined {
  if (bytes.length < HEAD_BYTES + CRC_BYTES || bytes.readUInt32BE(0) !== MAGIC || bytes.readUInt16BE(4) !== VERSION) return undefined;
  const count = bytes.readUInt32BE(8);
  const end = HEAD_BYTES + count * ENTRY_BYTES;
  if (bytes.length !== end + CRC_BYTES || bytes.readUInt32BE(end) !== crc32c(bytes.subarray(0, end))) return undefined;
  const out: SegmentSummary[] = [];
  for (let p = HEAD_BYTES; p < end; p += ENTRY_BYTES) {
    const [baseOffset, size, nextOffset, maxTimestamp] = [0, 8, 16, 24].map((at) => Number(bytes.readBigInt64BE(p + at))) as [number, number, number, number];
    const sane = baseOffset >= 0 && size >= 0 && nextOffset >= baseOffset && maxTimestamp >= -1 && (out.length === 0 || baseOffset >= out.at(-1)!.nextOffset);
    if (!sane || ![baseOffset, size, nextOffset, maxTimestamp].every(Number.isSafeInteger)) return undefined;
    out.push({ baseOffset, size, nextOffset, maxTimestamp });
  }
  return out;
}

/** Writes the marker for a log whose segments are all closed and durable. */
export async function writeCleanShutdown(dir: string, segments: readonly Segment[]): Promise<void> {
  await writeFileAtomic(join(dir, CLEAN_SHUTDOWN_FILE), encodeCleanShutdown(segments));
}

/**
 * What the marker in `dir` vouches for among the segments at `bases`: the
 * summary of each one it records whose .log still has the recorded size
 * (one threadpool job stats them all); undefined if the marker is damaged
 * or gone.
 */
export async function readCleanShutdown(dir: string, bases: readonly number[]): Promise<Map<number, SegmentSummary> | undefined> {
  const [bytes, sizes] = await Promise.all([readMarker(join(dir, CLEAN_SHUTDOWN_FILE)), statSizes(dir, bases.map((b) => segmentFileName(b, 'log')))]);
  const recorded = bytes === undefined ? undefined : decodeCleanShutdown(bytes);
  if (recorded === undefined) return undefined;
  const byBase = new Map(recorded.map((s) => [s.baseOffset, s]));
  const vouched = new Map<number, SegmentSummary>();
  bases.forEach((base, i) => {
    const s = byBase.get(base);
    if (s !== undefined && s.size === sizes[i]) vouched.set(base, s);
  });
  return vouched;
}

/**
 * The marker's bytes, or undefined if there is none. Two threadpool round
 * trips when its pages are cached (open with its size, then close: the read
 * is served on the spot), against fs.readFile's five.
 */
async function readMarker(path: string): Promise<Buffer | undefined> {
  const opened = await File.openSized(path).catch((err: SeglogError) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (opened === undefined) return undefined;
  try {
    const bytes = Buffer.allocUnsafe(opened.size);
    return bytes.subarray(0, await opened.file.readHot(bytes, 0));
  } finally {
    await opened.file.close();
  }
}

/** Removes the marker durably: from here on a crash must be detected. */
export async function removeCleanShutdown(dir: string): Promise<void> {
  await rm(join(dir, CLEAN_SHUTDOWN_FILE), { force: true });
  await fsyncDir(dir);
}

/**
 * The marker of the clean shutdown a log was opened after, while it may
 * still be on disk. Every write (append, roll, retention, truncation) first
 * awaits beforeWrite(), which removes it durably, once.
 */
export class MarkerOnOpen {
  readonly #dir: string;
  /** Whether the marker is still on disk untouched: nothing was written since it was made. */
  #untouched: boolean;
  #removal: Promise<void> | undefined;
  /** Puts the log in its failed state and returns the error that stopped it. */
  readonly #fail: (err: unknown) => unknown;

  constructor(dir: string, onDisk: boolean, fail: (err: unknown) => unknown) {
    this.#dir = dir;
    this.#untouched = onDisk;
    this.#fail = fail;
  }

  /** True while the marker stays as it was found: it still describes the log, and close() need not write it again. */
  get untouched(): boolean {
    return this.#untouched;
  }

  /**
   * Undefined once the marker is gone (no await on the write path); else its
   * removal, shared by the writes waiting for it. A failed removal fails the
   * log: after a failed fsync a later one may succeed without the removal
   * reaching the disk.
   */
  beforeWrite(): Promise<void> | undefined {
    if (!this.#untouched && this.#removal === undefined) return undefined;
    this.#untouched = false;
    this.#removal ??= removeCleanShutdown(this.#dir).then(
      () => (this.#removal = undefined),
      (err) => Promise.reject(this.#fail(err)),
    );
    return this.#removal;
  }
}

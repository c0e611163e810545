// Kafka's variable-length integers: zigzag-encoded (so small negative numbers
// stay short), then 7 bits per byte, least significant group first, high bit
// set on every byte but the last. A "varint" holds an int32 (at most 5 bytes),
// a "varlong" an int64 (at most 10 bytes); seglog limits varlongs to JS safe
// integers and reports anything wider as corrupt rather than rounding it.
import { SeglogError } from '../errors.js';

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const MAX_VARLONG_BYTES = 10;

function checkInt32(value: number): void {
  if ((value | 0) !== value) {
    throw new RangeError(`varint value must be an integer from ${INT32_MIN} to ${INT32_MAX}, got ${value}`);
  }
}

function checkSafe(value: number): void {
  if (!Number.isSafeInteger(value)) {
    throw new RangeError(`varlong value must be a safe integer, got ${value}`);
  }
}

/** Bytes writeVarint() uses for `value` (an int32). */
export function varintSize(value: number): number {
  checkInt32(value);
  const z = ((value << 1) ^ (value >> 31)) >>> 0;
  if (z < 0x80) return 1;
  if (z < 0x4000) return 2;
  if (z < 0x200000) return 3;
  if (z < 0x10000000) return 4;
  return 5;
}

/** Writes `value` (an int32) zigzag-encoded at `pos`; returns the position after it. */
export function writeVarint(buf: Uint8Array, pos: number, value: number): number {
  checkInt32(value);
  let z = ((value << 1) ^ (value >> 31)) >>> 0;
  while (z > 0x7f) {
    buf[pos++] = (z & 0x7f) | 0x80;
    z >>>= 7;
  }
  buf[pos++] = z;
  return pos;
}

// The zigzag form of a 64-bit value is 2m + sign, where m is the magnitude
// (n, or -n-1 for negatives). 2m + sign can exceed 2^53 and lose its low bit
// as a double, so the encoder never forms it: the first byte carries sign and
// the low 6 bits of m, the following bytes carry m / 64 in 7-bit groups.
function magnitude(value: number): number {
  return value < 0 ? -value - 1 : value;
}

/** Bytes writeVarlong() uses for `value` (a safe integer). */
export function varlongSize(value: number): number {
  checkSafe(value);
  let q = Math.floor(magnitude(value) / 64);
  let size = 1;
  while (q > 0) {
    size++;
    q = Math.floor(q / 128);
  }
  return size;
}

/** Writes `value` (a safe integer) as a zigzag varlong at `pos`; returns the position after it. */
export function writeVarlong(buf: Uint8Array, pos: number, value: number): number {
  checkSafe(value);
  const m = magnitude(value);
  const first = ((m % 64) << 1) | (value < 0 ? 1 : 0);
  let q = Math.floor(m / 64);
  if (q === 0) {
    buf[pos++] = first;
    return pos;
  }
  buf[pos++] = first | 0x80;
  while (q >= 128) {
    buf[pos++] = (q % 128) | 0x80;
    q = Math.floor(q / 128);
  }
  buf[pos++] = q;
  return pos;
}

/**
 * Reads varints from `buf` between `pos` and `end`. Malformed input (running
 * past `end`, too many bytes, out of range) throws SeglogError ECORRUPT with
 * the position in `buf` where the bad value starts.
 */
export class VarintReader {
  readonly buf: Uint8Array;
  readonly end: number;
  pos: number;

  constructor(buf: Uint8Array, pos: number, end: number) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  #corrupt(what: string, start: number): SeglogError {
    return new SeglogError('ECORRUPT', what, { position: start });
  }

  varint(): number {
    // One or two bytes (-8192..8191: lengths and deltas of most records) without the loop, small enough for the
    // compiler to inline into the record decoder.
    const { buf, pos } = this;
    if (pos + 1 < this.end) {
      const b0 = buf[pos]!;
      if (b0 < 0x80) {
        this.pos = pos + 1;
        return (b0 >>> 1) ^ -(b0 & 1);
      }
      const b1 = buf[pos + 1]!;
      if (b1 < 0x80) {
        const z = (b0 & 0x7f) | (b1 << 7);
        this.pos = pos + 2;
        return (z >>> 1) ^ -(z & 1);
      }
    }
    return this.#varint();
  }

  #varint(): number {
    const { buf, end } = this;
    const start = this.pos;
    let p = start;
    let z = 0;
    let shift = 0;
    let b: number;
    do {
      if (p >= end) throw this.#corrupt('varint runs past the end', start);
      b = buf[p++]!;
      // A fifth byte may only hold the top 4 bits of 32 and must end the varint.
      if (shift === 28 && b > 0x0f) throw this.#corrupt('varint does not fit in 32 bits', start);
      z |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    this.pos = p;
    return (z >>> 1) ^ -(z & 1);
  }

  varlong(): number {
    // One byte (a record's timestamp delta within 64 ms of its batch's first) without the loop.
    const { buf, pos } = this;
    const b0 = buf[pos]!;
    if (b0 < 0x80 && pos < this.end) {
      this.pos = pos + 1;
      return (b0 >>> 1) ^ -(b0 & 1);
    }
    return this.#varlong();
  }

  #varlong(): number {
    const { buf, end } = this;
    const start = this.pos;
    let p = start;
    if (p >= end) throw this.#corrupt('varlong runs past the end', start);
    let b = buf[p++]!;
    const negative = (b & 1) === 1;
    let m = (b & 0x7f) >>> 1;
    let scale = 64;
    while (b & 0x80) {
      if (p >= end) throw this.#corrupt('varlong runs past the end', start);
      if (p - start >= MAX_VARLONG_BYTES) throw this.#corrupt('varlong longer than 10 bytes', start);
      b = buf[p++]!;
      m += (b & 0x7f) * scale;
      scale *= 128;
      // Once m passes 2^53 it may round, but never back below the limit.
      if (m > Number.MAX_SAFE_INTEGER) throw this.#corrupt('varlong beyond the safe integer range', start);
    }
    // -m-1 must stay >= -(2^53 - 1).
    if (negative && m === Number.MAX_SAFE_INTEGER) throw this.#corrupt('varlong beyond the safe integer range', start);
    this.pos = p;
    return negative ? -m - 1 : m;
  }
}

import { describe, expect, it } from 'vitest';
import { SeglogError } from '../src/errors.js';
import { VarintReader, varintSize, varlongSize, writeVarint, writeVarlong } from '../src/segment/varint.js';

// Reference encoder on BigInt: zigzag over 64 bits, then 7-bit groups.
function referenceVarlong(n: bigint): Buffer {
  let z = BigInt.asUintN(64, (n << 1n) ^ (n >> 63n));
  const out: number[] = [];
  while (z > 0x7fn) {
    out.push(Number(z & 0x7fn) | 0x80);
    z >>= 7n;
  }
  out.push(Number(z));
  return Buffer.from(out);
}

function encodeVarint(n: number): Buffer {
  const buf = Buffer.alloc(varintSize(n));
  expect(writeVarint(buf, 0, n)).toBe(buf.length);
  return buf;
}

function encodeVarlong(n: number): Buffer {
  const buf = Buffer.alloc(varlongSize(n));
  expect(writeVarlong(buf, 0, n)).toBe(buf.length);
  return buf;
}

function corruptAt(fn: () => unknown): SeglogError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SeglogError);
    expect((err as SeglogError).code).toBe('ECORRUPT');
    return err as SeglogError;
  }
  throw new Error('expected ECORRUPT');
}

describe('varint (int32, zigzag)', () => {
  const known: Array<[number, string]> = [
    [0, '00'],
    [-1, '01'],
    [1, '02'],
    [63, '7e'],
    [-64, '7f'],
    [64, '8001'],
    [-65, '8101'],
    [300, 'd804'],
    [2 ** 31 - 1, 'feffffff0f'],
    [-(2 ** 31), 'ffffffff0f'],
  ];

  it.each(known)('encodes %d as %s and reads it back', (n, hex) => {
    const bytes = encodeVarint(n);
    expect(bytes.toString('hex')).toBe(hex);
    const reader = new VarintReader(bytes, 0, bytes.length);
    expect(reader.varint()).toBe(n);
    expect(reader.pos).toBe(bytes.length);
  });

  it('agrees with the 64-bit reference on a sweep of int32 values', () => {
    const values = [0, 1, -1, 2 ** 31 - 1, -(2 ** 31)];
    for (let shift = 0; shift < 31; shift++) values.push(2 ** shift, -(2 ** shift), 2 ** shift - 1, -(2 ** shift) - 1);
    for (const n of values) {
      const bytes = encodeVarint(n);
      expect(bytes.equals(referenceVarlong(BigInt(n)))).toBe(true);
      expect(new VarintReader(bytes, 0, bytes.length).varint()).toBe(n);
    }
  });

  it('rejects values that are not int32 with RangeError', () => {
    for (const bad of [2 ** 31, -(2 ** 31) - 1, 1.5, Number.NaN, Infinity]) {
      expect(() => varintSize(bad)).toThrow(RangeError);
      expect(() => writeVarint(Buffer.alloc(8), 0, bad)).toThrow(RangeError);
    }
  });

  it('reports every truncation of a multi-byte varint as ECORRUPT at its start', () => {
    const bytes = Buffer.concat([Buffer.from([0xaa]), encodeVarint(-(2 ** 31))]);
    for (let end = 1; end < bytes.length; end++) {
      const err = corruptAt(() => new VarintReader(bytes, 1, end).varint());
      expect(err.position).toBe(1);
    }
  });

  it('rejects varints longer than 5 bytes or wider than 32 bits', () => {
    const tooLong = Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    corruptAt(() => new VarintReader(tooLong, 0, tooLong.length).varint());
    const tooWide = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x1f]);
    corruptAt(() => new VarintReader(tooWide, 0, tooWide.length).varint());
  });

  it('reads consecutive values and stops at end', () => {
    const buf = Buffer.alloc(32);
    let pos = 0;
    for (const n of [5, -300, 2 ** 30]) pos = writeVarint(buf, pos, n);
    const reader = new VarintReader(buf, 0, pos);
    expect([reader.varint(), reader.varint(), reader.varint()]).toEqual([5, -300, 2 ** 30]);
    expect(reader.pos).toBe(pos);
    corruptAt(() => reader.varint());
  });
});

describe('varlong (int64 within safe integers, zigzag)', () => {
  const edges = [
    0,
    1,
    -1,
    63,
    -64,
    64,
    2 ** 31 - 1,
    2 ** 31,
    -(2 ** 31),
    -(2 ** 31) - 1,
    2 ** 32,
    -(2 ** 32),
    1_700_000_000_000,
    -1_700_000_000_000,
    2 ** 52,
    2 ** 53 - 2,
    Number.MAX_SAFE_INTEGER,
    -Number.MAX_SAFE_INTEGER,
    -Number.MAX_SAFE_INTEGER + 1,
  ];

  it.each(edges)('round-trips %d and matches the BigInt reference', (n) => {
    const bytes = encodeVarlong(n);
    expect(bytes.toString('hex')).toBe(referenceVarlong(BigInt(n)).toString('hex'));
    const reader = new VarintReader(bytes, 0, bytes.length);
    expect(reader.varlong()).toBe(n);
    expect(reader.pos).toBe(bytes.length);
  });

  it('matches the reference on every power of two and its neighbours', () => {
    for (let shift = 0; shift < 53; shift++) {
      for (const n of [2 ** shift, 2 ** shift - 1, -(2 ** shift), -(2 ** shift) + 1, 2 ** shift + 1]) {
        if (!Number.isSafeInteger(n)) continue;
        const bytes = encodeVarlong(n);
        expect(bytes.equals(referenceVarlong(BigInt(n))), `value ${n}`).toBe(true);
        expect(new VarintReader(bytes, 0, bytes.length).varlong()).toBe(n);
      }
    }
  });

  it('rejects unsafe integers with RangeError when writing', () => {
    for (const bad of [2 ** 53, -(2 ** 53), 0.5, Number.NaN]) {
      expect(() => varlongSize(bad)).toThrow(RangeError);
      expect(() => writeVarlong(Buffer.alloc(16), 0, bad)).toThrow(RangeError);
    }
  });

  it('reports values beyond the safe range as ECORRUPT instead of rounding', () => {
    for (const big of [2n ** 53n, -(2n ** 53n), 2n ** 63n - 1n, -(2n ** 63n)]) {
      const bytes = referenceVarlong(big);
      corruptAt(() => new VarintReader(bytes, 0, bytes.length).varlong());
    }
  });

  it('reports truncation and over-long encodings as ECORRUPT', () => {
    const bytes = encodeVarlong(-Number.MAX_SAFE_INTEGER);
    for (let end = 0; end < bytes.length; end++) {
      expect(corruptAt(() => new VarintReader(bytes, 0, end).varlong()).position).toBe(0);
    }
    const eleven = Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    corruptAt(() => new VarintReader(eleven, 0, eleven.length).varlong());
  });
});

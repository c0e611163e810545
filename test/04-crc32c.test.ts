import { randomBytes } from 'node:crypto';
import { expect, test } from 'vitest';
import { crc32c, crc32cHardware, crc32cSoftware } from '../src/native.js';

// Published CRC-32C check values (RFC 3720 appendix B.4 and the "123456789" check).
const vectors: Array<[Buffer, number]> = [
  [Buffer.from('123456789'), 0xe3069283],
  [Buffer.alloc(0), 0],
  [Buffer.alloc(32, 0), 0x8a9136aa],
  [Buffer.alloc(32, 0xff), 0x62a8ab43],
  [Buffer.from(Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e],
  [Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c],
];

test('known vectors on both paths', () => {
  for (const [data, expected] of vectors) {
    expect(crc32c(data)).toBe(expected);
    expect(crc32cSoftware(data)).toBe(expected);
  }
});

test('hardware path is used on x86-64 with SSE4.2', () => {
  if (process.arch === 'x64') expect(crc32cHardware).toBe(true);
});

test('hardware and software agree on random data of every length and offset', () => {
  const data = randomBytes(4096);
  for (let start = 0; start < 9; start++) {
    for (let len = 0; len < 300; len++) {
      const slice = data.subarray(start, start + len);
      expect(crc32c(slice)).toBe(crc32cSoftware(slice));
    }
  }
  const big = randomBytes(1 << 20);
  expect(crc32c(big)).toBe(crc32cSoftware(big));
});

test('long inputs (three streams at a time, joined) agree with the software path at every stripe boundary', () => {
  const data = randomBytes(64 * 1024);
  for (const len of [3071, 3072, 3073, 3079, 6143, 6144, 6151, 9229, 40_000, 65_531]) {
    for (const start of [0, 1, 5]) {
      const slice = data.subarray(start, start + len);
      expect(crc32c(slice)).toBe(crc32cSoftware(slice));
      expect(crc32c(slice.subarray(1000), crc32c(slice.subarray(0, 1000)))).toBe(crc32cSoftware(slice));
    }
  }
});

test('seed continues a CRC across pieces', () => {
  const data = randomBytes(1000);
  const whole = crc32c(data);
  for (const cut of [0, 1, 7, 8, 500, 999, 1000]) {
    expect(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut)))).toBe(whole);
    expect(crc32cSoftware(data.subarray(cut), crc32cSoftware(data.subarray(0, cut)))).toBe(whole);
  }
});

test('bad arguments', () => {
  expect(() => crc32c('123' as never)).toThrow(TypeError);
  expect(() => crc32c(Buffer.alloc(1), -1)).toThrow(RangeError);
  expect(() => crc32c(Buffer.alloc(1), 2 ** 32)).toThrow(RangeError);
});

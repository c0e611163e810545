import { inspect } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { SeglogError } from '../src/errors.js';
import { crc32c } from '../src/native.js';
import {
  BATCH_HEADER_SIZE,
  BATCH_OVERHEAD,
  checkBatch,
  decodeBatch,
  encodeBatch,
  MAGIC,
  readBatchHeader,
  RecordCursor,
  setBaseOffset,
  setLogAppendTime,
  type RecordInput,
} from '../src/segment/batch.js';
import { registerCodec } from '../src/segment/codecs.js';

const T0 = 1_700_000_000_000;

/** Recomputes the CRC of the batch at `position` after a test edited it. */
function reseal(buf: Buffer, position = 0): Buffer {
  const size = buf.readInt32BE(position + 8) + BATCH_OVERHEAD;
  buf.writeUInt32BE(crc32c(buf.subarray(position + 21, position + size)), position + 17);
  return buf;
}

function expectCode(fn: () => unknown, code: string): SeglogError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SeglogError);
    expect((err as SeglogError).code).toBe(code);
    return err as SeglogError;
  }
  throw new Error(`expected ${code}`);
}

function bytes(value: Uint8Array | string | null | undefined): Buffer | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
}

/** What decodeBatch should return for `inputs` written at `baseOffset`. */
function expected(inputs: RecordInput[], baseOffset: number, now: number) {
  return inputs.map((r, i) => ({
    offset: baseOffset + i,
    timestamp: r.timestamp ?? now,
    key: bytes(r.key),
    value: bytes(r.value),
    headers: ((r.headers ?? []) as Array<{ key: string; value: Uint8Array | string | null }>).map((h) => ({ key: h.key, value: bytes(h.value) })),
  }));
}

const mixed: RecordInput[] = [
  { key: null, value: 'hello', timestamp: T0 },
  { key: 'k1', value: null, timestamp: T0 + 5 },
  { value: '', timestamp: T0 - 1000 },
  { key: new Uint8Array([0, 1, 2, 255]), value: new Uint8Array(0) },
  { key: 'ключ 🔑', value: '値 ✓ 😀', headers: [{ key: 'ヘッダー', value: 'v' }, { key: '', value: null }, { key: 'bin', value: new Uint8Array([9, 8]) }] },
  { value: Buffer.from('view-into-a-bigger-buffer').subarray(5, 9), headers: [] },
];

describe('encodeBatch / decodeBatch', () => {
  it('round-trips keys, values, nulls, empties, headers and unicode', () => {
    const batch = encodeBatch(mixed, { baseOffset: 42, now: T0 + 7 });
    expect(decodeBatch(batch)).toEqual(expected(mixed, 42, T0 + 7));
  });

  it('fills in the header as Kafka producers do', () => {
    const batch = encodeBatch(mixed, { baseOffset: 42, now: T0 + 7 });
    const h = readBatchHeader(batch);
    expect(h).toMatchObject({
      baseOffset: 42,
      batchLength: batch.length - BATCH_OVERHEAD,
      size: batch.length,
      partitionLeaderEpoch: -1,
      magic: MAGIC,
      crc: crc32c(batch.subarray(21)),
      attributes: 0,
      compression: 0,
      timestampType: 'create',
      transactional: false,
      control: false,
      lastOffsetDelta: mixed.length - 1,
      lastOffset: 42 + mixed.length - 1,
      baseTimestamp: T0,
      maxTimestamp: T0 + 7,
      producerId: -1,
      producerEpoch: -1,
      baseSequence: -1,
      recordsCount: mixed.length,
    });
    expect(checkBatch(batch, 0, batch.length)).toEqual({ ok: true, header: h });
  });

  it('writes the producer and leader-epoch options', () => {
    const opts = { partitionLeaderEpoch: 7, producerId: 2 ** 40 + 3, producerEpoch: 12, baseSequence: 99 };
    const h = readBatchHeader(encodeBatch([{ value: 'x' }], opts));
    expect(h).toMatchObject(opts);
  });

  it('uses now (default Date.now()) for records without a timestamp', () => {
    const before = Date.now();
    const [r] = decodeBatch(encodeBatch([{ value: 'x' }]));
    expect(r!.timestamp).toBeGreaterThanOrEqual(before);
    expect(r!.timestamp).toBeLessThanOrEqual(Date.now());
  });

  it('round-trips many records and large values', () => {
    const many: RecordInput[] = Array.from({ length: 10_000 }, (_, i) => ({ key: `k${i}`, value: `value ${i}`, timestamp: T0 + i * 1000 }));
    const batch = encodeBatch(many, { baseOffset: 2 ** 40 });
    expect(decodeBatch(batch)).toEqual(expected(many, 2 ** 40, 0));
    const big = Buffer.alloc(1 << 20, 0xab);
    const [r] = decodeBatch(encodeBatch([{ value: big, headers: [{ key: 'h', value: big.subarray(0, 300) }] }]));
    expect(r!.value!.equals(big)).toBe(true);
    expect(r!.headers[0]!.value!.length).toBe(300);
  });

  it('returns records that do not alias the batch', () => {
    const batch = encodeBatch([{ key: 'key', value: 'value' }]);
    const [r] = decodeBatch(batch);
    batch.fill(0);
    expect(r!.key!.toString()).toBe('key');
    expect(r!.value!.toString()).toBe('value');
  });

  it('decodes keys and values into Buffers in every respect (views of one copy of the records)', () => {
    const [r] = decodeBatch(encodeBatch([{ key: 'key', value: 'value', headers: [{ key: 'h', value: 'hv' }] }]));
    for (const b of [r!.key!, r!.value!, r!.headers[0]!.value!]) {
      expect(Buffer.isBuffer(b)).toBe(true);
      expect(b).toBeInstanceOf(Buffer);
      expect(Object.getPrototypeOf(b)).toBe(Buffer.prototype);
      expect(b.constructor).toBe(Buffer);
      expect(inspect(b)).toMatch(/^<Buffer /);
      expect(Buffer.isBuffer(b.subarray(1))).toBe(true);
      expect(Buffer.isBuffer(b.map((x) => x))).toBe(true);
      expect(b.readUInt8(0)).toBe(b[0]);
    }
    expect(r!.value!.toString('hex')).toBe(Buffer.from('value').toString('hex'));
    expect(r!.key!.buffer).toBe(r!.value!.buffer);
  });

  it('compresses with gzip as one block of the records', () => {
    const inputs: RecordInput[] = Array.from({ length: 200 }, (_, i) => ({ key: `k${i % 3}`, value: 'the same text again and again '.repeat(4), timestamp: T0 + i }));
    const plain = encodeBatch(inputs, { baseOffset: 5 });
    const gz = encodeBatch(inputs, { baseOffset: 5, compression: 'gzip' });
    const h = readBatchHeader(gz);
    expect(h.compression).toBe(1);
    expect(h.recordsCount).toBe(200);
    expect(gz.length).toBeLessThan(plain.length / 4);
    expect(gunzipSync(gz.subarray(BATCH_HEADER_SIZE)).equals(plain.subarray(BATCH_HEADER_SIZE))).toBe(true);
    expect(checkBatch(gz, 0, gz.length).ok).toBe(true);
    expect(decodeBatch(gz)).toEqual(decodeBatch(plain));
  });

  it('handles an empty batch (all records compacted away)', () => {
    const batch = encodeBatch([{ value: 'x' }], { baseOffset: 10 }).subarray(0, BATCH_HEADER_SIZE);
    batch.writeInt32BE(BATCH_HEADER_SIZE - BATCH_OVERHEAD, 8);
    batch.writeInt32BE(0, 57);
    reseal(batch);
    expect(checkBatch(batch, 0, batch.length)).toMatchObject({ ok: true, header: { recordsCount: 0, lastOffset: 10 } });
    expect(decodeBatch(batch)).toEqual([]);
  });
});

describe('codecs', () => {
  const reverse = (d: Uint8Array) => Uint8Array.from(d).reverse();

  it('uses a registered codec by name and id', () => {
    registerCodec('test-reverse', 3, { compress: reverse, decompress: reverse });
    const inputs = [{ key: 'a', value: 'b' }, { value: 'c' }];
    const batch = encodeBatch(inputs, { compression: 'test-reverse', now: T0 });
    expect(readBatchHeader(batch).compression).toBe(3);
    expect(decodeBatch(batch)).toEqual(expected(inputs, 0, T0));
  });

  it('reports unknown compression ids and undecompressable blocks as ECORRUPT', () => {
    const batch = encodeBatch([{ value: 'x' }], { compression: 'gzip' });
    batch.writeInt16BE(6, 21);
    expectCode(() => decodeBatch(reseal(batch)), 'ECORRUPT');
    const garbled = encodeBatch([{ value: 'x' }], { compression: 'gzip' });
    garbled.fill(0x55, BATCH_HEADER_SIZE + 4);
    const err = expectCode(() => decodeBatch(reseal(garbled)), 'ECORRUPT');
    expect(err.position).toBe(BATCH_HEADER_SIZE);
  });

  it('checks registerCodec arguments', () => {
    const codec = { compress: reverse, decompress: reverse };
    expect(() => registerCodec('', 2, codec)).toThrow(RangeError);
    expect(() => registerCodec('none', 2, codec)).toThrow(RangeError);
    expect(() => registerCodec(5 as unknown as string, 2, codec)).toThrow(TypeError);
    expect(() => registerCodec('x', 5 as 1, codec)).toThrow(RangeError);
    expect(() => registerCodec('x', 2, { compress: reverse } as never)).toThrow(TypeError);
    expect(() => registerCodec('gzip', 2, codec)).toThrow(RangeError);
    expect(() => encodeBatch([{ value: 'x' }], { compression: 'nope' })).toThrow(RangeError);
  });
});

describe('checkBatch', () => {
  const batch = encodeBatch(mixed, { baseOffset: 3, now: T0 });

  it('reports every truncation as truncated', () => {
    for (let end = 0; end < batch.length; end++) {
      expect(checkBatch(batch, 0, end), `end ${end}`).toEqual({ ok: false, reason: 'truncated' });
    }
  });

  it('checks a batch at a position inside a larger buffer', () => {
    const two = Buffer.concat([batch, encodeBatch([{ value: 'second' }], { baseOffset: 100 })]);
    const second = checkBatch(two, batch.length, two.length);
    expect(second).toMatchObject({ ok: true, header: { baseOffset: 100 } });
    for (let end = batch.length; end < two.length; end++) {
      expect(checkBatch(two, batch.length, end)).toEqual({ ok: false, reason: 'truncated' });
    }
  });

  it('reports every single-bit flip that the format can detect, and never throws', () => {
    for (let byte = 0; byte < batch.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const flipped = Buffer.from(batch);
        flipped[byte]! ^= 1 << bit;
        const result = checkBatch(flipped, 0, flipped.length);
        const where = `byte ${byte} bit ${bit}`;
        if (byte >= 17) expect(result, where).toEqual({ ok: false, reason: 'crc' });
        else if (byte === 16) expect(result, where).toEqual({ ok: false, reason: 'magic' });
        // A shorter batchLength moves the CRC's range.
        else if (byte >= 8 && byte < 12) expect(['length', 'truncated', 'crc'], where).toContain(result.ok ? 'ok' : result.reason);
        else if (result.ok) {
          // baseOffset and partitionLeaderEpoch are outside the CRC by design.
          const h = result.header;
          expect(h.baseOffset !== 3 || h.partitionLeaderEpoch !== -1, where).toBe(true);
        } else expect(result.reason, where).toBe('records');
        const guarded = byte >= 16 || (byte >= 8 && byte < 12);
        if (guarded) expect(() => decodeBatch(flipped), where).toThrow(SeglogError);
      }
    }
  });

  it('reports garbage without throwing', () => {
    expect(checkBatch(Buffer.alloc(4096), 0, 4096)).toEqual({ ok: false, reason: 'length' });
    expect(checkBatch(Buffer.alloc(4096, 0xff), 0, 4096)).toEqual({ ok: false, reason: 'length' });
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) & 0xff;
    for (let i = 0; i < 2000; i++) {
      const junk = Buffer.from(Array.from({ length: i % 150 }, random));
      if (junk.length >= 12 && i % 2 === 0) junk.writeInt32BE(junk.length - 12, 8); // plausible length
      if (junk.length > 16 && i % 4 === 0) junk[16] = MAGIC;
      const result = checkBatch(junk, 0, junk.length);
      expect(result.ok).toBe(false);
    }
  });

  it('applies maxBatchSize', () => {
    expect(checkBatch(batch, 0, batch.length, batch.length)).toMatchObject({ ok: true });
    expect(checkBatch(batch, 0, batch.length, batch.length - 1)).toEqual({ ok: false, reason: 'length' });
  });

  it('reports inconsistent record fields as records', () => {
    const cases: Array<(b: Buffer) => void> = [
      (b) => b.writeInt32BE(-1, 57), // recordsCount < 0
      (b) => b.writeInt32BE(mixed.length + 1, 57), // more records than offsets
      (b) => b.writeInt32BE(-1, 23), // lastOffsetDelta < 0
      (b) => b.writeInt32BE(1_000_000, 57) && b.writeInt32BE(1_000_000, 23), // more records than bytes
      (b) => b.writeBigInt64BE(2n ** 60n, 27), // baseTimestamp beyond safe integers
    ];
    for (const edit of cases) {
      const b = Buffer.from(batch);
      edit(b);
      expect(checkBatch(reseal(b), 0, b.length)).toEqual({ ok: false, reason: 'records' });
    }
    const negative = Buffer.from(batch);
    negative.writeBigInt64BE(-5n, 0);
    expect(checkBatch(negative, 0, negative.length)).toEqual({ ok: false, reason: 'records' });
  });

  it('checks its arguments', () => {
    expect(() => checkBatch('x' as never, 0, 1)).toThrow(TypeError);
    expect(() => checkBatch(batch, -1, 10)).toThrow(RangeError);
    expect(() => checkBatch(batch, 10, 5)).toThrow(RangeError);
    expect(() => checkBatch(batch, 0, batch.length + 1)).toThrow(RangeError);
  });
});

describe('decodeBatch on malformed records (with a valid CRC)', () => {
  /** A batch whose records region is `records` (bytes after the header). */
  function withRecords(records: number[], count: number): Buffer {
    const b = Buffer.concat([encodeBatch([{ value: 'x' }]).subarray(0, BATCH_HEADER_SIZE), Buffer.from(records)]);
    b.writeInt32BE(b.length - BATCH_OVERHEAD, 8);
    b.writeInt32BE(Math.max(0, count - 1), 23);
    b.writeInt32BE(count, 57);
    return reseal(b);
  }
  // length 7: attributes, tsDelta 0, offsetDelta 0, key null, value 1 byte 'a', 0 headers
  const good = [0x0e, 0x00, 0x00, 0x00, 0x01, 0x02, 0x61, 0x00];
  // length 26: as above with a 20-byte value, so that two records fit the size check
  const long = [0x34, 0x00, 0x00, 0x00, 0x01, 0x28, ...Buffer.alloc(20, 0x61), 0x00];

  it('decodes the hand-built record', () => {
    const [r] = decodeBatch(withRecords(good, 1));
    expect(r).toMatchObject({ key: null, value: Buffer.from('a'), headers: [] });
  });

  const bad: Array<[string, number[], number]> = [
    ['fewer records than the header says', [...long, ...good], 3],
    ['more records than the header says', [...good, ...good], 1],
    ['a record length past the end', [0x10, ...good.slice(1)], 1],
    ['a record length too small', [0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x61, 0x00], 1],
    ['a value length past the record', [0x0e, 0x00, 0x00, 0x00, 0x01, 0x04, 0x61, 0x00], 1],
    ['a key length below -1', [0x0e, 0x00, 0x00, 0x00, 0x03, 0x02, 0x61, 0x00], 1],
    ['a varint running past the end', [...long, 0x80], 2],
    ['fields shorter than the record length', [0x10, 0x00, 0x00, 0x00, 0x01, 0x02, 0x61, 0x00, 0x00], 1],
    ['an offset delta beyond lastOffsetDelta', [0x0e, 0x00, 0x00, 0x02, 0x01, 0x02, 0x61, 0x00], 1],
    ['a negative headers count', [0x0e, 0x00, 0x00, 0x00, 0x01, 0x02, 0x61, 0x01], 1],
    ['a null header key', [0x12, 0x00, 0x00, 0x00, 0x01, 0x02, 0x61, 0x02, 0x01, 0x01], 1],
  ];

  it.each(bad)('reports %s as ECORRUPT with a position in the records', (_what, records, count) => {
    const batch = withRecords(records, count);
    expect(checkBatch(batch, 0, batch.length).ok).toBe(true);
    const err = expectCode(() => decodeBatch(batch), 'ECORRUPT');
    expect(err.position).toBeGreaterThanOrEqual(BATCH_HEADER_SIZE);
    expect(err.position).toBeLessThanOrEqual(batch.length);
  });

  it('a RecordCursor hands out the records before a malformed one, then throws as decodeBatch does', () => {
    const second = [0x0e, 0x00, 0x00, 0x02, 0x01, 0x06, 0x61, 0x00]; // offset delta 1, a value length past the record
    const batch = withRecords([...good, ...second], 2);
    const cursor = new RecordCursor(batch, readBatchHeader(batch));
    expect(cursor.next()).toMatchObject({ offset: 0, value: Buffer.from('a') });
    const err = expectCode(() => cursor.next(), 'ECORRUPT');
    expect(err.position).toBe(BATCH_HEADER_SIZE + good.length + 5);
    expect(expectCode(() => decodeBatch(batch), 'ECORRUPT').position).toBe(err.position);
    const whole = withRecords(good, 1);
    const one = new RecordCursor(whole, readBatchHeader(whole));
    expect(one.next()).toBeDefined();
    expect(one.next()).toBeUndefined();
  });

  it('rejects bytes after the batch and invalid batches', () => {
    const batch = encodeBatch([{ value: 'x' }]);
    expectCode(() => decodeBatch(Buffer.concat([batch, Buffer.from([0])])), 'ECORRUPT');
    expectCode(() => decodeBatch(batch.subarray(0, batch.length - 1)), 'ECORRUPT');
    expect(() => decodeBatch('batch' as never)).toThrow(TypeError);
  });
});

describe('setBaseOffset / setLogAppendTime', () => {
  it('setBaseOffset rewrites offsets and keeps the CRC valid', () => {
    const batch = encodeBatch(mixed, { now: T0 });
    const crc = readBatchHeader(batch).crc;
    setBaseOffset(batch, 0, 2 ** 45);
    const result = checkBatch(batch, 0, batch.length);
    expect(result).toMatchObject({ ok: true, header: { baseOffset: 2 ** 45, crc, lastOffset: 2 ** 45 + mixed.length - 1 } });
    expect(decodeBatch(batch).map((r) => r.offset)).toEqual(mixed.map((_, i) => 2 ** 45 + i));
  });

  it('setBaseOffset checks its arguments', () => {
    const batch = encodeBatch(mixed);
    expect(() => setBaseOffset(batch, 0, -1)).toThrow(RangeError);
    expect(() => setBaseOffset(batch, 0, Number.MAX_SAFE_INTEGER)).toThrow(RangeError); // last offset would overflow
    expect(() => setBaseOffset(batch, 0, 1.5)).toThrow(RangeError);
    expect(() => setBaseOffset(batch, 0, '1' as never)).toThrow(TypeError);
    expect(() => setBaseOffset(batch, batch.length - 60, 1)).toThrow(RangeError);
    expect(() => setBaseOffset([] as never, 0, 1)).toThrow(TypeError);
  });

  it('setLogAppendTime sets the timestamp type and maxTimestamp and recomputes the CRC', () => {
    const first = encodeBatch([{ value: 'a' }], { baseOffset: 0, now: T0 });
    const second = encodeBatch(mixed, { baseOffset: 1, now: T0 });
    const buf = Buffer.concat([first, second]);
    setLogAppendTime(buf, first.length, T0 + 99);
    const result = checkBatch(buf, first.length, buf.length);
    expect(result).toMatchObject({ ok: true, header: { timestampType: 'logAppend', maxTimestamp: T0 + 99, baseTimestamp: T0 } });
    expect(result.ok && result.header.attributes).toBe(0x08);
    expect(decodeBatch(buf.subarray(first.length)).map((r) => r.timestamp)).toEqual(mixed.map(() => T0 + 99));
    expect(buf.subarray(0, first.length).equals(first)).toBe(true);
    const gz = encodeBatch(mixed, { compression: 'gzip' });
    setLogAppendTime(gz, 0, T0);
    expect(readBatchHeader(gz).attributes).toBe(0x09);
    expect(decodeBatch(gz).every((r) => r.timestamp === T0)).toBe(true);
  });

  it('setLogAppendTime refuses to reseal a damaged batch', () => {
    const batch = encodeBatch(mixed);
    batch[batch.length - 1]! ^= 1;
    const copy = Buffer.from(batch);
    expectCode(() => setLogAppendTime(batch, 0, T0), 'ECORRUPT');
    expect(batch.equals(copy)).toBe(true);
    expect(() => setLogAppendTime(encodeBatch(mixed), 0, -1)).toThrow(RangeError);
    expect(() => setLogAppendTime(encodeBatch(mixed), 0, 'now' as never)).toThrow(TypeError);
  });
});

describe('argument checks', () => {
  it('encodeBatch', () => {
    const ok = { value: 'v' };
    const cases: Array<[unknown, unknown, ErrorConstructor]> = [
      ['records', undefined, TypeError],
      [[], undefined, RangeError],
      [[null], undefined, TypeError],
      [['x'], undefined, TypeError],
      [[{}], undefined, TypeError],
      [[{ value: 5 }], undefined, TypeError],
      [[{ key: 5, value: 'v' }], undefined, TypeError],
      [[{ value: 'v', timestamp: -1 }], undefined, RangeError],
      [[{ value: 'v', timestamp: 1.5 }], undefined, RangeError],
      [[{ value: 'v', timestamp: 2 ** 53 }], undefined, RangeError],
      [[{ value: 'v', timestamp: '1' }], undefined, TypeError],
      [[{ value: 'v', headers: new Map([['k', 'v']]) }], undefined, TypeError],
      [[{ value: 'v', headers: [{ key: null, value: 'x' }] }], undefined, TypeError],
      [[{ value: 'v', headers: [{ key: 1, value: 'x' }] }], undefined, TypeError],
      [[{ value: 'v', headers: [{ key: 'k' }] }], undefined, TypeError],
      [[{ value: 'v', headers: [{ key: 'k', value: 3 }] }], undefined, TypeError],
      [[{ value: 'v', headers: [null] }], undefined, TypeError],
      [[ok], 'options', TypeError],
      [[ok], { baseOffset: -1 }, RangeError],
      [[ok, ok], { baseOffset: Number.MAX_SAFE_INTEGER }, RangeError],
      [[ok], { compression: 1 }, TypeError],
      [[ok], { compression: 'lz5' }, RangeError],
      [[ok], { now: -5 }, RangeError],
      [[ok], { partitionLeaderEpoch: -2 }, RangeError],
      [[ok], { producerId: -2 }, RangeError],
      [[ok], { producerEpoch: 40_000 }, RangeError],
      [[ok], { baseSequence: 2 ** 31 }, RangeError],
    ];
    for (const [records, options, type] of cases) {
      expect(() => encodeBatch(records as never, options as never), JSON.stringify([records, options])).toThrow(type);
    }
  });

  it('readBatchHeader', () => {
    const batch = encodeBatch([{ value: 'v' }]);
    expect(() => readBatchHeader({} as never)).toThrow(TypeError);
    expect(() => readBatchHeader(batch.subarray(0, 60))).toThrow(RangeError);
    expect(() => readBatchHeader(batch, batch.length - 60)).toThrow(RangeError);
    expect(() => readBatchHeader(batch, batch.length + 1)).toThrow(RangeError);
    expect(readBatchHeader(Buffer.concat([Buffer.alloc(3), batch]), 3).size).toBe(batch.length);
    const unsafe = Buffer.from(batch);
    unsafe.writeBigInt64BE(2n ** 62n, 0);
    expect(expectCode(() => readBatchHeader(unsafe), 'ECORRUPT').position).toBe(0);
  });
});

// Checks encodeBatch against the Kafka RecordBatch v2 layout with code that
// shares nothing with src/: its own CRC-32C (bit by bit), its own varints (on
// BigInt), its own header parsing, and byte strings built field by field.
import { describe, expect, it } from 'vitest';
import { encodeBatch } from '../src/segment/batch.js';
import { crc32cBitwise } from './helpers/kafka-bytes.js';
import { decodeFromSpec } from './helpers/kafka-decode.js';

const T0 = 1_700_000_000_000;

/** The 61-byte header, field by field; the CRC is filled in by seal(). */
function header(f: { baseOffset: string; batchLength: number; attributes: string; lastOffsetDelta: string; baseTimestamp: string; maxTimestamp: string; recordsCount: string }): string {
  const batchLength = f.batchLength.toString(16).padStart(8, '0');
  return [
    f.baseOffset,
    batchLength,
    'ffffffff', // partitionLeaderEpoch -1
    '02', // magic
    '00000000', // crc placeholder
    f.attributes,
    f.lastOffsetDelta,
    f.baseTimestamp,
    f.maxTimestamp,
    'ffffffffffffffff', // producerId -1
    'ffff', // producerEpoch -1
    'ffffffff', // baseSequence -1
    f.recordsCount,
  ].join('');
}

function seal(hex: string): Buffer {
  const batch = Buffer.from(hex.replace(/\s+/g, ''), 'hex');
  expect(batch.readInt32BE(8)).toBe(batch.length - 12);
  batch.writeUInt32BE(crc32cBitwise(batch.subarray(21)), 17);
  return batch;
}

describe('CRC-32C', () => {
  it('matches the standard check value', () => {
    expect(crc32cBitwise(Buffer.from('123456789'))).toBe(0xe3069283);
  });
});

describe('known batches, byte for byte', () => {
  it('one record: null key, value "hello"', () => {
    const record = [
      '16', // length 11
      '00', // attributes
      '00', // timestampDelta 0
      '00', // offsetDelta 0
      '01', // keyLength -1
      '0a', // valueLength 5
      Buffer.from('hello').toString('hex'),
      '00', // headersCount 0
    ].join('');
    const expected = seal(
      header({
        baseOffset: '0000000000000000',
        batchLength: 49 + 12,
        attributes: '0000',
        lastOffsetDelta: '00000000',
        baseTimestamp: '0000018bcfe56800',
        maxTimestamp: '0000018bcfe56800',
        recordsCount: '00000001',
      }) + record,
    );
    const actual = encodeBatch([{ key: null, value: 'hello', timestamp: T0 }], { baseOffset: 0 });
    expect(actual.toString('hex')).toBe(expected.toString('hex'));
  });

  it('two records: key, header, null value, timestamp and offset deltas, 2-byte varints', () => {
    const r0 = [
      '18', // length 12
      '00',
      '00', // timestampDelta 0
      '00', // offsetDelta 0
      '02', // keyLength 1
      '6b', // 'k'
      '02', // valueLength 1
      '76', // 'v'
      '02', // headersCount 1
      '02', // header keyLength 1
      '68', // 'h'
      '02', // header valueLength 1
      '78', // 'x'
    ];
    const r1 = [
      'd801', // length 108
      '00',
      'd00f', // timestampDelta 1000
      '02', // offsetDelta 1
      '01', // key null
      'c801', // valueLength 100
      Buffer.alloc(100, 0x7a).toString('hex'),
      '00',
    ];
    const r2 = [
      '10', // length 8
      '00',
      '01', // timestampDelta -1
      '04', // offsetDelta 2
      '01', // key null
      '01', // value null
      '02', // headersCount 1
      '00', // header keyLength 0
      '01', // header value null
    ];
    const records = [...r0, ...r1, ...r2].join('');
    const expected = seal(
      header({
        baseOffset: '0000000000000064', // 100
        batchLength: 49 + records.length / 2,
        attributes: '0000',
        lastOffsetDelta: '00000002',
        baseTimestamp: '0000018bcfe56800',
        maxTimestamp: '0000018bcfe56be8', // T0 + 1000
        recordsCount: '00000003',
      }) + records,
    );
    const actual = encodeBatch(
      [
        { key: 'k', value: 'v', headers: [{ key: 'h', value: 'x' }], timestamp: T0 },
        { value: Buffer.alloc(100, 0x7a), timestamp: T0 + 1000 },
        { value: null, headers: [{ key: '', value: null }], timestamp: T0 - 1 },
      ],
      { baseOffset: 100 },
    );
    expect(actual.toString('hex')).toBe(expected.toString('hex'));
  });
});

describe('independent decoder reads what encodeBatch writes', () => {
  const inputs = [
    { key: null, value: 'hello', timestamp: T0 },
    { key: 'ключ', value: null, timestamp: T0 + 123_456 },
    { key: 'k', value: '', timestamp: T0 - 5 },
    { key: '😀', value: 'v'.repeat(5000), headers: [{ key: 'a', value: '1' }, { key: 'b', value: null }], timestamp: T0 + 1 },
  ];

  for (const compression of ['none', 'gzip'] as const) {
    it(`decodes a ${compression} batch`, () => {
      const batch = encodeBatch(inputs, { baseOffset: 2 ** 40, compression, partitionLeaderEpoch: 3, producerId: 77, producerEpoch: 2, baseSequence: 10 });
      const d = decodeFromSpec(batch);
      expect(d).toMatchObject({
        baseOffset: 2n ** 40n,
        partitionLeaderEpoch: 3,
        attributes: compression === 'gzip' ? 1 : 0,
        lastOffsetDelta: 3,
        baseTimestamp: BigInt(T0),
        maxTimestamp: BigInt(T0 + 123_456),
        producerId: 77n,
        producerEpoch: 2,
        baseSequence: 10,
      });
      expect(d.records).toEqual(
        inputs.map((r, i) => ({
          offset: 2n ** 40n + BigInt(i),
          timestamp: BigInt(r.timestamp),
          key: r.key,
          value: r.value,
          headers: (r.headers ?? []).map((h) => [h.key, h.value]),
        })),
      );
    });
  }

  it('decodes a large batch of small records', () => {
    const many = Array.from({ length: 3000 }, (_, i) => ({ key: `key-${i}`, value: `value-${i}`, timestamp: T0 + i * 997 }));
    const d = decodeFromSpec(encodeBatch(many, { baseOffset: 7 }));
    expect(d.records.length).toBe(3000);
    expect(d.records[2999]).toEqual({ offset: 3006n, timestamp: BigInt(T0 + 2999 * 997), key: 'key-2999', value: 'value-2999', headers: [] });
  });
});

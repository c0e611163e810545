// Record headers in both input forms: the list of { key, value } pairs, and
// the object form of Node Kafka clients, { key: value | value[] }. Reads
// always give the list form.
import { describe, expect, it, test } from 'vitest';
import { Log, type RecordHeaders, type RecordInput } from '../src/seglog.js';
import { decodeBatch, encodeBatch } from '../src/segment/batch.js';
import { tempDir } from './helpers/tmp.js';

const T0 = 1_700_000_000_000;

function headersOf(headers: RecordHeaders): Array<{ key: string; value: string | null }> {
  const [r] = decodeBatch(encodeBatch([{ value: 'v', headers }], { now: T0 }));
  return r!.headers.map((h) => ({ key: h.key, value: h.value === null ? null : h.value.toString('latin1') }));
}

describe('the object form', () => {
  it('gives one header per key in the object order, an array value one per element in array order', () => {
    expect(headersOf({ trace: 't-1', bin: Buffer.from([0xc3, 0xa9]), none: null, retry: ['1', '2', '3'], u8: new Uint8Array([65]) })).toEqual([
      { key: 'trace', value: 't-1' },
      { key: 'bin', value: '\xc3\xa9' },
      { key: 'none', value: null },
      { key: 'retry', value: '1' },
      { key: 'retry', value: '2' },
      { key: 'retry', value: '3' },
      { key: 'u8', value: 'A' },
    ]);
  });

  it('encodes byte for byte as the list form with the same pairs does', () => {
    const list = [{ key: 'a', value: 'x' }, { key: 'b', value: null }, { key: 'b', value: Buffer.from('y') }, { key: 'ключ', value: '値' }];
    const object = { a: 'x', b: [null, Buffer.from('y')], ключ: '値' };
    expect(encodeBatch([{ value: 'v', headers: object }], { now: T0 }).equals(encodeBatch([{ value: 'v', headers: list }], { now: T0 }))).toBe(true);
  });

  it('an empty object, or a key whose array is empty, gives no header', () => {
    expect(headersOf({})).toEqual([]);
    expect(headersOf({ gone: [], kept: 'k' })).toEqual([{ key: 'kept', value: 'k' }]);
  });

  it('takes an object without a prototype', () => {
    const headers = Object.assign(Object.create(null) as Record<string, string>, { a: '1' });
    expect(headersOf(headers)).toEqual([{ key: 'a', value: '1' }]);
  });
});

test('the list form keeps repeated keys and their order', () => {
  expect(headersOf([{ key: 'k', value: '2' }, { key: 'j', value: '1' }, { key: 'k', value: '1' }])).toEqual([
    { key: 'k', value: '2' },
    { key: 'j', value: '1' },
    { key: 'k', value: '1' },
  ]);
});

test('Log.append takes the object form; records() and readRecord() give the list form', async () => {
  const log = await Log.open(await tempDir());
  await log.append([{ value: 'a', headers: { h: ['1', '2'], g: 'x' } }, { value: 'b', headers: [{ key: 'h', value: '3' }] }]);
  const got = [];
  for await (const r of log.records(0)) got.push(r.headers.map((h) => [h.key, h.value?.toString()]));
  expect(got).toEqual([[['h', '1'], ['h', '2'], ['g', 'x']], [['h', '3']]]);
  const one = await log.readRecord(0);
  expect(one!.headers.map((h) => h.key)).toEqual(['h', 'h', 'g']);
  await log.close();
});

test('every argument is checked, with a TypeError naming the header', () => {
  const bad: Array<[unknown, RegExp]> = [
    ['x', /records\[0\]\.headers must be an array of \{ key, value \} or a plain object/],
    [5, /records\[0\]\.headers must be/],
    [null, /records\[0\]\.headers must be/],
    [new Map([['k', 'v']]), /records\[0\]\.headers must be/],
    [new Date(), /records\[0\]\.headers must be/],
    [Buffer.from('k'), /records\[0\]\.headers must be/],
    [{ k: undefined }, /records\[0\]\.headers\["k"\] is required \(null for none\)/],
    [{ k: 5 }, /records\[0\]\.headers\["k"\] must be a Buffer, Uint8Array, string or null/],
    [{ k: { v: 1 } }, /records\[0\]\.headers\["k"\] must be/],
    [{ k: ['a', ['b']] }, /records\[0\]\.headers\["k"\]\[1\] must be/],
    [{ k: ['a', undefined] }, /records\[0\]\.headers\["k"\]\[1\] is required/],
    [[{ key: 'k', value: 5 }], /records\[0\]\.headers\[0\]\.value must be/],
    [[{ key: 5, value: 'v' }], /records\[0\]\.headers\[0\] must be an object with a string key/],
    [['k'], /records\[0\]\.headers\[0\] must be an object with a string key/],
  ];
  for (const [headers, message] of bad) {
    expect(() => encodeBatch([{ value: 'v', headers } as RecordInput]), String(headers)).toThrow(TypeError);
    expect(() => encodeBatch([{ value: 'v', headers } as RecordInput]), String(headers)).toThrow(message);
  }
});

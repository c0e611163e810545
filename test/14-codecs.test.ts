// The built-in codecs (gzip, snappy raw and xerial, lz4 frames, zstd) both
// ways against implementations other than the packages seglog uses: fixtures
// made by the reference CLIs and Java (test/fixtures/codecs/make.sh), and the
// pure-JS snappyjs, lz4js and fzstd at test time. Damaged bodies are ECORRUPT.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { decompress as fzstdDecompress } from 'fzstd';
import { describe, expect, it, test } from 'vitest';
import { SeglogError } from '../src/errors.js';
import { Log } from '../src/seglog.js';
import { BATCH_HEADER_SIZE, decodeBatch, encodeBatch, readBatchHeader, type LogRecord } from '../src/segment/batch.js';
import { registerCodec } from '../src/segment/codecs.js';
import { zstdCodec } from '../src/segment/codec-packages.js';
import { batchAround, fixture, plainBatch } from './fixtures/codecs/batches.js';
import { FIXTURE_INPUTS, FIXTURE_NOW } from './fixtures/codecs/inputs.js';
import { Random } from './fixtures/random.js';
import { tempDir } from './helpers/tmp.js';

const requireJs = createRequire(import.meta.url);
const snappyjs = requireJs('snappyjs') as { compress(data: Uint8Array): Uint8Array; uncompress(data: Uint8Array): Uint8Array };
const lz4js = requireJs('lz4js') as { compress(data: Uint8Array): Uint8Array; decompress(data: Uint8Array): Uint8Array };

const IDS = { gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const;
type Name = keyof typeof IDS;
const NAMES = Object.keys(IDS) as Name[];

const records = fixture('records.bin');
const expected = decodeBatch(plainBatch());

/** A batch's records with bytes as base64, which toEqual compares quickly (and prints readably). */
function plain(rs: LogRecord[]) {
  const b64 = (b: Buffer | null) => b && b.toString('base64');
  return rs.map((r) => ({ ...r, key: b64(r.key), value: b64(r.value), headers: r.headers.map((h) => ({ key: h.key, value: b64(h.value) })) }));
}

/** What decoding `batch` gives: its records, or the code of the SeglogError it threw; anything else thrown fails the test. */
function outcome(batch: Buffer): LogRecord[] | string {
  try {
    return decodeBatch(batch);
  } catch (err) {
    if (!(err instanceof SeglogError)) throw err;
    return err.code;
  }
}

/** xerial framing (see src/segment/xerial.ts) around snappyjs blocks of `blockBytes` input each. */
function xerial(data: Buffer, blockBytes: number): Buffer {
  const parts = [Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1])];
  for (let at = 0; at < data.length; at += blockBytes) {
    const block = Buffer.from(snappyjs.compress(data.subarray(at, at + blockBytes)));
    const length = Buffer.alloc(4);
    length.writeInt32BE(block.length);
    parts.push(length, block);
  }
  return Buffer.concat(parts);
}

test('records.bin is the records section of the fixture inputs as seglog encodes them', () => {
  expect(plainBatch().subarray(BATCH_HEADER_SIZE).equals(records)).toBe(true);
  expect(expected).toHaveLength(FIXTURE_INPUTS.length);
  expect(expected[7]!.value).toBeNull();
  expect(expected[5]!.headers.map((h) => h.key)).toEqual(['trace', 'trace']);
});

describe('each built-in codec round-trips through encodeBatch and decodeBatch', () => {
  for (const name of NAMES) {
    it(name, () => {
      const batch = encodeBatch(FIXTURE_INPUTS, { compression: name, now: FIXTURE_NOW });
      expect(readBatchHeader(batch).compression).toBe(IDS[name]);
      expect(batch.length).toBeLessThan(records.length / 2); // it did compress
      expect(plain(decodeBatch(batch))).toEqual(plain(expected));
    });
  }

  it('small and single-record batches too', () => {
    for (const name of NAMES) {
      for (const inputs of [[{ value: '' }], [{ key: 'k', value: null }], [{ value: 'x'.repeat(70_000) }, { value: Buffer.alloc(200_000, 7) }]]) {
        const batch = encodeBatch(inputs, { compression: name, now: 5 });
        expect(plain(decodeBatch(batch)), name).toEqual(plain(decodeBatch(encodeBatch(inputs, { now: 5 }))));
      }
    }
  });
});

describe('other implementations read what seglog writes', () => {
  const body = (name: Name) => encodeBatch(FIXTURE_INPUTS, { compression: name, now: FIXTURE_NOW }).subarray(BATCH_HEADER_SIZE);

  it('snappy: raw snappy (no xerial framing), read by snappyjs', () => {
    const b = body('snappy');
    expect(b[0]).not.toBe(0x82);
    expect(Buffer.from(snappyjs.uncompress(b)).equals(records)).toBe(true);
  });

  it('lz4: an LZ4 frame of independent blocks, read by lz4js', () => {
    const b = body('lz4');
    expect(b.readUInt32LE(0)).toBe(0x184d2204);
    expect(b[4]! & 0x20).toBe(0x20); // block independence, as Kafka's Java client and librdkafka write
    expect((b[5]! >> 4) & 7).toBeGreaterThanOrEqual(4); // 64 KiB to 4 MiB blocks: all readers take these
    expect(Buffer.from(lz4js.decompress(b)).equals(records)).toBe(true);
  });

  it('zstd: a zstd frame read by fzstd', () => {
    expect(Buffer.from(fzstdDecompress(body('zstd'))).equals(records)).toBe(true);
  });
});

describe('batches compressed by other implementations decode to the same records', () => {
  const cases: Array<[string, number, () => Buffer]> = [
    ['gzip: GNU gzip -9', 1, () => fixture('records.gz')],
    ['snappy: xerial framing from Java (iq80 snappy blocks, 32 KiB each)', 2, () => fixture('records.xerial')],
    ['snappy: raw, snappyjs', 2, () => Buffer.from(snappyjs.compress(records))],
    ['snappy: xerial framing, one snappyjs block', 2, () => xerial(records, records.length)],
    ['snappy: xerial framing, many small snappyjs blocks', 2, () => xerial(records, 1000)],
    ['lz4: lz4 CLI, 4 MiB block, content checksum', 3, () => fixture('records.lz4')],
    ['lz4: lz4 CLI, 64 KiB linked blocks, content size', 3, () => fixture('records-linked.lz4')],
    ['lz4: lz4 CLI, block checksums', 3, () => fixture('records-blockcrc.lz4')],
    ['lz4: lz4js', 3, () => Buffer.from(lz4js.compress(records))],
    ['zstd: zstd CLI -19, content size and checksum', 4, () => fixture('records.zst')],
    ['zstd: zstd CLI from a pipe, no content size', 4, () => fixture('records-stream.zst')],
    ['zstd: two frames', 4, () => fixture('records-2frames.zst')],
  ];
  for (const [what, id, body] of cases) {
    it(what, () => {
      expect(plain(decodeBatch(batchAround(body(), id)))).toEqual(plain(expected));
    });
  }
});

describe('a damaged compressed body is ECORRUPT, never a crash or another error', () => {
  // The last field of each format that a decoder may do without: lz4_flex
  // reads a frame cut after its last block (end mark and content checksum
  // gone) as whole. No data is lost there, and the batch CRC covers the bytes.
  const bodies: Array<[string, number, () => Buffer, number]> = [
    ['gzip', 1, () => fixture('records.gz'), 0],
    ['snappy raw', 2, () => encodeBatch(FIXTURE_INPUTS, { compression: 'snappy', now: FIXTURE_NOW }).subarray(BATCH_HEADER_SIZE), 0],
    ['snappy xerial', 2, () => fixture('records.xerial'), 0],
    ['lz4', 3, () => fixture('records-linked.lz4'), 8],
    ['zstd', 4, () => fixture('records-stream.zst'), 0],
  ];

  for (const [what, id, make, optionalTrailer] of bodies) {
    it(`${what}: every cut of the body (CRC made right again) that loses data is ECORRUPT`, () => {
      const body = make();
      const cuts = new Set<number>();
      for (let n = 0; n < body.length; n += n < 64 || n > body.length - 64 ? 1 : 61) cuts.add(n);
      for (const n of cuts) {
        const got = outcome(batchAround(body.subarray(0, n), id));
        if (n >= body.length - optionalTrailer && got !== 'ECORRUPT') expect(plain(got as LogRecord[]), `cut at ${n}`).toEqual(plain(expected));
        else expect(got, `cut at ${n}`).toBe('ECORRUPT');
      }
    });

    it(`${what}: a flipped bit is caught by the batch CRC`, () => {
      const body = make();
      const batch = batchAround(body, id);
      batch[BATCH_HEADER_SIZE + (body.length >> 1)]! ^= 0x10;
      expect(outcome(batch)).toBe('ECORRUPT');
    });

    it(`${what}: random damage under a right CRC gives records or ECORRUPT`, () => {
      const body = make();
      const rng = new Random(7 + id);
      let corrupt = 0;
      for (let trial = 0; trial < 200; trial++) {
        const damaged = Buffer.from(body);
        // Half the trials damage the first 64 bytes, where the sizes and headers are.
        const span = trial % 2 === 0 ? Math.min(64, damaged.length) : damaged.length;
        for (let f = rng.int(1, 8); f > 0; f--) damaged[rng.int(0, span - 1)] = rng.int(0, 255);
        const got = outcome(batchAround(damaged, id));
        if (got === 'ECORRUPT') corrupt++;
        else expect(Array.isArray(got), `trial ${trial}: ${String(got)}`).toBe(true);
      }
      expect(corrupt).toBeGreaterThan(0);
    });
  }

  it('wrong sizes: snappy length, xerial block lengths and headers, lz4 block size, zstd content size', () => {
    const raw = encodeBatch(FIXTURE_INPUTS, { compression: 'snappy', now: FIXTURE_NOW }).subarray(BATCH_HEADER_SIZE);
    const x = fixture('records.xerial');
    const set32 = (b: Buffer, at: number, v: number) => {
      const c = Buffer.from(b);
      c.writeInt32BE(v, at);
      return c;
    };
    const firstBlock = x.readInt32BE(16);
    const damaged: Array<[string, number, Buffer]> = [
      ['snappy length one more', 2, Buffer.concat([Buffer.from([0xa0 + 1, 0xa1, 0x07]), raw.subarray(3)])],
      ['xerial: magic only', 2, x.subarray(0, 8)],
      ['xerial: header cut in the versions', 2, x.subarray(0, 12)],
      ['xerial: block length one more', 2, set32(x, 16, firstBlock + 1)],
      ['xerial: block length one less', 2, set32(x, 16, firstBlock - 1)],
      ['xerial: block length zero', 2, set32(x, 16, 0)],
      ['xerial: block length negative', 2, set32(x, 16, -5)],
      ['xerial: block length past the end', 2, set32(x, 16, 0x7fffffff)],
      ['xerial: 2 stray bytes after the last block', 2, Buffer.concat([x, Buffer.from([0, 1])])],
      ['xerial: magic then raw snappy', 2, Buffer.concat([x.subarray(0, 8), raw])],
      ['lz4: first block size one more', 3, lz4BlockSize(fixture('records-linked.lz4'), +1)],
      ['lz4: first block size one less', 3, lz4BlockSize(fixture('records-linked.lz4'), -1)],
      ['zstd: content size one more', 4, zstdContentSize(fixture('records.zst'), +1)],
      ['zstd: content size one less', 4, zstdContentSize(fixture('records.zst'), -1)],
    ];
    expect(raw.subarray(0, 3)).toEqual(Buffer.from([0x9a, 0xa1, 0x07])); // 118938 as a varint, what 'one more' edits
    for (const [what, id, body] of damaged) expect(outcome(batchAround(body, id)), what).toBe('ECORRUPT');
  });
});

/** `frame` (an LZ4 frame with content size, so a 15-byte header) with its first block's size changed by `delta`. */
function lz4BlockSize(frame: Buffer, delta: number): Buffer {
  const c = Buffer.from(frame);
  expect(c[4]! & 0x08).toBe(0x08); // content size present: the header is 4 + 2 + 8 + 1 bytes
  const size = c.readUInt32LE(15);
  c.writeUInt32LE(((size & 0x7fffffff) + delta) | (size & 0x80000000), 15);
  return c;
}

/** `frame` (a zstd frame stating a 4-byte content size) with that size changed by `delta`. */
function zstdContentSize(frame: Buffer, delta: number): Buffer {
  const c = Buffer.from(frame);
  const fhd = c[4]!;
  expect(fhd >> 6).toBe(2); // a 4-byte content size
  expect(fhd & 3).toBe(0); // no dictionary id
  const at = 5 + ((fhd >> 5) & 1 ? 0 : 1); // after the window descriptor unless single-segment
  c.writeUInt32LE(c.readUInt32LE(at) + delta, at);
  return c;
}

test('Log: append with each codec; records() and batches() give the records back', async () => {
  for (const name of NAMES) {
    const log = await Log.open(await tempDir(), { compression: name });
    await log.append(FIXTURE_INPUTS.slice(0, 20).map((r) => ({ ...r })));
    await log.append(FIXTURE_INPUTS.slice(20).map((r) => ({ ...r })));
    const batches = [];
    for await (const b of log.batches(0)) batches.push(b);
    expect(batches.map((b) => b.header.compression), name).toEqual([IDS[name], IDS[name]]);
    expect(plain(batches.flatMap((b) => b.records)), name).toEqual(plain(expected));
    const got: LogRecord[] = [];
    for await (const r of log.records(3)) got.push(r);
    expect(plain(got), name).toEqual(plain(expected.slice(3)));
    await log.close();
  }
});

describe('a codec whose package is missing', () => {
  const child = fileURLToPath(new URL('./fixtures/codecs/missing-child.ts', import.meta.url));
  const hide = (pkg: string) => JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', child, pkg], { encoding: 'utf8' })) as Record<Name, { encode: string; decode: string }>;

  for (const [name, pkg] of [['snappy', 'snappy'], ['lz4', 'lz4-napi'], ['zstd', '@toondepauw/node-zstd']] as const) {
    it(`${name} (${pkg}): seglog loads, that codec is EUNSUPPORTED naming it and its package, the others work`, () => {
      const report = hide(pkg);
      for (const other of NAMES) {
        if (other === name) continue;
        expect(report[other], other).toEqual({ encode: 'ok', decode: 'ok' });
      }
      for (const what of ['encode', 'decode'] as const) {
        expect(report[name][what]).toMatch(/^EUNSUPPORTED: /);
        expect(report[name][what]).toContain(`${name} needs the npm package '${pkg}'`);
      }
    });
  }
});

test('registerCodec replaces a built-in codec, and the built-in can be put back', () => {
  const calls: string[] = [];
  registerCodec('zstd', 4, {
    compress: (d) => (calls.push('compress'), zstdCodec.compress(d)),
    decompress: (d) => (calls.push('decompress'), zstdCodec.decompress(d)),
  });
  try {
    const batch = encodeBatch([{ value: 'replaced' }], { compression: 'zstd' });
    expect(decodeBatch(batch)[0]!.value!.toString()).toBe('replaced');
    expect(calls).toEqual(['compress', 'decompress']);
  } finally {
    registerCodec('zstd', 4, zstdCodec);
  }
  expect(plain(decodeBatch(batchAround(fixture('records.zst'), 4)))).toEqual(plain(expected));
  expect(calls).toHaveLength(2);
});

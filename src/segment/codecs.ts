// Compression codecs for record batches, by Kafka's attribute ids. Only gzip
// ships built in (node:zlib); the others need libraries seglog does not depend
// on, so users register the one they have. Registration is process-wide.
//
// Registering a codec (packages that install on Node 20 with nothing but npm:
// `lz4js` and `snappyjs` are pure JS, `@bokuweb/zstd-wasm` bundles its wasm,
// `fzstd` decompresses only):
//
//   import lz4 from 'lz4js';
//   registerCodec('lz4', 3, { compress: (d) => lz4.compress(d), decompress: (d) => lz4.decompress(d) });
//
//   import { init, compress } from '@bokuweb/zstd-wasm';
//   import { decompress } from 'fzstd'; // unlike zstd-wasm, reads frames that do not state their size
//   await init();
//   registerCodec('zstd', 4, { compress: (d) => compress(d, 3), decompress: (d) => decompress(d) });
//
// Kafka's formats per id: gzip = a gzip stream, lz4 = an LZ4 frame, zstd = a
// zstd frame, snappy = raw snappy as librdkafka writes it, while Kafka's Java
// client writes snappy in xerial framing (8-byte magic 82 53 4e 41 50 50 59 00,
// two i32 versions, then blocks each prefixed by its i32 length); a snappy codec
// that must read Java-produced batches has to unwrap that framing itself.
import { gunzipSync, gzipSync } from 'node:zlib';
import { SeglogError } from '../errors.js';
import { checkInteger, checkString } from '../validate.js';

export interface Codec {
  compress(data: Buffer): Uint8Array;
  /** Must return bytes the caller owns: decoded records are views into them. */
  decompress(data: Buffer): Uint8Array;
}

export type CodecId = 1 | 2 | 3 | 4;

/** Kafka's name for each compression id; used in messages about missing codecs. */
export const KAFKA_CODEC_NAMES: Readonly<Record<CodecId, string>> = { 1: 'gzip', 2: 'snappy', 3: 'lz4', 4: 'zstd' };

interface Entry {
  name: string;
  id: CodecId;
  codec: Codec;
}

const byId = new Map<number, Entry>();
const byName = new Map<string, Entry>();

/**
 * Makes `codec` the one used for compression id `id` (replacing any codec
 * registered for that id) and selectable by `name` in encodeBatch's
 * `compression` option.
 */
export function registerCodec(name: string, id: CodecId, codec: Codec): void {
  checkString('name', name);
  if (name === 'none') throw new RangeError("name 'none' is reserved for uncompressed batches");
  checkInteger('id', id, 1, 4);
  if (codec === null || typeof codec !== 'object' || typeof codec.compress !== 'function' || typeof codec.decompress !== 'function') {
    throw new TypeError('codec must be an object with compress(data) and decompress(data) functions');
  }
  const taken = byName.get(name);
  if (taken !== undefined && taken.id !== id) {
    throw new RangeError(`codec name '${name}' is already registered for id ${taken.id}`);
  }
  const previous = byId.get(id);
  if (previous !== undefined) byName.delete(previous.name);
  const entry: Entry = { name, id, codec };
  byId.set(id, entry);
  byName.set(name, entry);
}

/** The codec registered under `name`, if any. */
export function codecByName(name: string): { id: CodecId; codec: Codec } | undefined {
  return byName.get(name);
}

/** The codec for compression id `id` (1-4); SeglogError EUNSUPPORTED when none is registered. */
export function codecById(id: CodecId): Codec {
  const entry = byId.get(id);
  if (entry === undefined) {
    const name = KAFKA_CODEC_NAMES[id];
    throw new SeglogError('EUNSUPPORTED', `no codec registered for ${name} (compression id ${id}); see registerCodec()`);
  }
  return entry.codec;
}

registerCodec('gzip', 1, { compress: (data) => gzipSync(data), decompress: (data) => gunzipSync(data) });

// Compression codecs for record batches, by Kafka's attribute ids. All four
// of Kafka's ship built in: gzip on node:zlib, snappy, lz4 and zstd on the
// optional native packages in codec-packages.ts (loaded when a batch first
// needs one). registerCodec() replaces any of them or adds a name for an id;
// registration is process-wide.
//
// Kafka's formats per id: gzip = a gzip stream, snappy = raw snappy
// (librdkafka, KafkaJS) or xerial-framed snappy (Kafka's Java client; see
// xerial.ts), lz4 = an LZ4 frame, zstd = zstd frames.
import { gunzipSync, gzipSync } from 'node:zlib';
import { checkInteger, checkString } from '../validate.js';
import { lz4Codec, snappyCodec, zstdCodec } from './codec-packages.js';

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

/** The codec for compression id `id` (1-4): every id has one from the start, and registerCodec only replaces it. */
export function codecById(id: CodecId): Codec {
  return byId.get(id)!.codec;
}

registerCodec('gzip', 1, { compress: (data) => gzipSync(data), decompress: (data) => gunzipSync(data) });
registerCodec('snappy', 2, snappyCodec);
registerCodec('lz4', 3, lz4Codec);
registerCodec('zstd', 4, zstdCodec);

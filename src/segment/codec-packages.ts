// The snappy, lz4 and zstd codecs, from native npm packages that ship
// prebuilt binaries per platform (nothing compiles or downloads at install).
// They are optional dependencies, loaded on first use: seglog loads without
// them, and only a batch that needs a missing one fails, with EUNSUPPORTED
// naming the codec and the package.
//
//   snappy                 `snappy` (napi-rs, Rust snap crate); writes raw snappy as librdkafka
//                          and KafkaJS do, which Java readers take too; reads raw and xerial
//   lz4                    `lz4-napi` (Rust lz4_flex); the LZ4 frame format, 64 KiB independent
//                          blocks, as Kafka's Java client writes it
//   zstd                   `@toondepauw/node-zstd` (Rust zstd crate over libzstd); one zstd
//                          frame at level 3, Kafka's default; reads frames with or without a
//                          stated content size
import { createRequire } from 'node:module';
import { SeglogError } from '../errors.js';
import { decodeXerial, isXerial } from './xerial.js';

interface SnappyPackage {
  compressSync(data: Uint8Array, options: { copyOutputData: true }): Buffer;
  uncompressSync(data: Uint8Array, options: { asBuffer: true; copyOutputData: true }): Buffer;
}
interface Lz4Package {
  compressFrameSync(data: Buffer): Buffer;
  decompressFrameSync(data: Buffer): Buffer;
}
interface ZstdPackage {
  Encoder: new (level: number) => { encodeSync(data: Buffer): Buffer };
  Decoder: new () => { decodeSync(data: Buffer): Buffer };
}

const requirePackage = createRequire(import.meta.url);

/** Kafka's default zstd level (compression.zstd.level). */
const ZSTD_LEVEL = 3;

/**
 * A loader for the package behind `codec`: requires it on the first call and
 * remembers the outcome, failure included (then every call throws
 * EUNSUPPORTED naming both).
 */
function packageLoader<T>(codec: string, pkg: string): () => T {
  let loaded: { ok: true; value: T } | { ok: false; cause: Error } | undefined;
  return () => {
    if (loaded === undefined) {
      try {
        loaded = { ok: true, value: requirePackage(pkg) as T };
      } catch (err) {
        loaded = { ok: false, cause: err as Error };
      }
    }
    if (loaded.ok) return loaded.value;
    const why = String(loaded.cause.message).split('\n')[0];
    throw new SeglogError(
      'EUNSUPPORTED',
      `${codec} needs the npm package '${pkg}' (an optional dependency of seglog), which did not load: ${why}; ` +
        `install it, or registerCodec() another ${codec} codec`,
      { cause: loaded.cause },
    );
  };
}

const snappy = packageLoader<SnappyPackage>('snappy', 'snappy');
const lz4 = packageLoader<Lz4Package>('lz4', 'lz4-napi');
const zstd = (() => {
  const load = packageLoader<ZstdPackage>('zstd', '@toondepauw/node-zstd');
  let coders: { encoder: { encodeSync(data: Buffer): Buffer }; decoder: { decodeSync(data: Buffer): Buffer } } | undefined;
  return () => (coders ??= { encoder: new (load().Encoder)(ZSTD_LEVEL), decoder: new (load().Decoder)() });
})();

// copyOutputData: a JS-allocated result is 4-6x faster per call than the
// default external buffer of Rust memory (measured on 120 KB of records).
export const snappyCodec = {
  compress: (data: Buffer): Uint8Array => snappy().compressSync(data, { copyOutputData: true }),
  decompress: (data: Buffer): Uint8Array => {
    const s = snappy();
    const raw = (block: Buffer): Buffer => s.uncompressSync(block, { asBuffer: true, copyOutputData: true });
    return isXerial(data) ? decodeXerial(data, raw) : raw(data);
  },
};

export const lz4Codec = {
  compress: (data: Buffer): Uint8Array => lz4().compressFrameSync(data),
  decompress: (data: Buffer): Uint8Array => lz4().decompressFrameSync(data),
};

export const zstdCodec = {
  compress: (data: Buffer): Uint8Array => zstd().encoder.encodeSync(data),
  decompress: (data: Buffer): Uint8Array => zstd().decoder.decodeSync(data),
};

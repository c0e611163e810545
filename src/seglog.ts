// Public entry point of the seglog package.
export { SeglogError } from './errors.js';
export type { SeglogErrorCode, SeglogErrorDetails } from './errors.js';

export { Log } from './log/log.js';
export type { LogOptions, FlushPolicy, AppendResult, ReadOptions, ReadResult, SendToOptions, SendToResult } from './log/log.js';
export { sendParts, sendSlice } from './sendfile/send.js';
export type { FileSlice, Part } from './sendfile/send.js';
export { LogStore, checkLogName } from './store/store.js';
export type { LogStoreOptions, StoreLogOptions, RetentionOptions } from './store/store.js';
export type { CacheOptions } from './cache/options.js';
export type { CacheStats, Residency } from './cache/stats.js';

export { encodeBatch, decodeBatch, checkBatch, readBatchHeader, BATCH_HEADER_SIZE } from './segment/batch.js';
export type { RecordInput, LogRecord, BatchHeader, EncodeOptions, CheckBatchResult } from './segment/batch.js';
export { registerCodec } from './segment/codecs.js';
export type { Codec, CodecId } from './segment/codecs.js';
export { OffsetIndex } from './index/offset-index.js';
export { TimeIndex } from './index/time-index.js';

export {
  File,
  MappedRegion,
  allocAligned,
  freeAligned,
  crc32c,
  crc32cHardware,
  directIOAlignment,
  probeDirectIO,
  fsyncDir,
  freeBytes,
  sendfile,
  stats,
  PAGE_SIZE,
} from './native.js';
export type {
  OpenOptions,
  FileAdvice,
  MemoryAdvice,
  SyncRangeOptions,
  DirectIOAlignment,
  SendfileOptions,
  NativeStats,
} from './native.js';

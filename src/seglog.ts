// The `seglog` entry point: what a broker uses. The raw I/O layer is `seglog/io` (src/io.ts).
export { SeglogError } from './errors.js';
export type { SeglogErrorCode, SeglogErrorDetails } from './errors.js';

export { Log } from './log/log.js';
export type {
  LogOptions,
  FlushPolicy,
  HighWatermarkMode,
  IsolationLevel,
  OffsetRange,
  AppendOptions,
  AppendBatchesOptions,
  AppendResult,
  LogBatch,
  ReadOptions,
  ReadResult,
  RecordsOptions,
  RetentionPolicy,
  SendToOptions,
  SendToResult,
  ControlOptions,
  ProducerInfo,
  AbortedTransaction,
} from './log/log.js';
export { sendParts, sendSlice } from './sendfile/send.js';
export type { FileSlice, Part } from './sendfile/send.js';
export { LogStore, checkLogName } from './store/store.js';
export type { LogStoreOptions, StoreLogOptions, RetentionOptions } from './store/store.js';
export type { CacheOptions } from './cache/options.js';
export type { CacheStats, Residency } from './cache/stats.js';

export { encodeBatch, decodeBatch, checkBatch, readBatchHeader, BATCH_HEADER_SIZE } from './segment/batch.js';
export type { RecordInput, RecordHeaders, HeaderValue, LogRecord, BatchHeader, EncodeOptions, CheckBatchResult } from './segment/batch.js';
export { registerCodec } from './segment/codecs.js';
export type { Codec, CodecId } from './segment/codecs.js';

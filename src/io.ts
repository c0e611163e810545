// The `seglog/io` entry point: the raw I/O layer under the log (files, mmap,
// aligned buffers, CRC-32C, sendfile, the indexes). Kept off the package face
// so a broker sees only the log API, yet tools and benchmarks can reach it.
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
  SendfileSocket,
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

export { OffsetIndex } from './index/offset-index.js';
export type { OffsetPosition } from './index/offset-index.js';
export { TimeIndex } from './index/time-index.js';
export type { TimestampOffset } from './index/time-index.js';
export type { IndexOptions } from './index/mapped-index.js';

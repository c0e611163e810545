// Public entry point of the seglog package.
export { SeglogError } from './errors.js';
export type { SeglogErrorCode, SeglogErrorDetails } from './errors.js';
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

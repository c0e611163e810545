// The one doorway to the addon. Everything behind it (src/addon/) checks its
// arguments before they reach C++ and turns -errno results into Node-style
// errors; nothing else in seglog calls the addon directly. It knows nothing
// of logs.
export { crc32c, crc32cHardware, crc32cSoftware } from './addon/crc32c.js';
export { File, probeDirectIO, tryLockExclusive } from './addon/file.js';
export type { FileAdvice, OpenOptions, SyncRangeOptions } from './addon/file.js';
export { directIOAlignment, freeBytes, fsyncDir, statSizes } from './addon/filesystem.js';
export type { DirectIOAlignment } from './addon/filesystem.js';
export { PAGE_SIZE, rawAddon, readCalls, stats } from './addon/load.js';
export type { NativeStats } from './addon/load.js';
export { allocAligned, freeAligned, MappedRegion } from './addon/memory.js';
export type { MemoryAdvice } from './addon/memory.js';
export { sendfile, SendfileSocket } from './addon/sendfile.js';
export type { SendfileOptions } from './addon/sendfile.js';

// For the crash and power-loss fixtures: runs a callback synchronously after
// every successful File call (syscall 'pwritev', 'fdatasync', 'ftruncate', ...)
// and directory fsync ('fsyncDir'), before its caller resumes, so it can record
// what was made durable or kill the process at that point.
//
// Product code imports fsyncDir directly (an ES binding that cannot be
// replaced), so the directory fsync is caught where fsyncDir calls the addon:
// rawAddon is the one addon object, and its methods are looked up per call.
import { File, rawAddon } from '../../src/native.js';

type Hook = (syscall: string, path: string) => void;

/** File methods, each one addon call, and the syscall name File reports in its errors. */
const FILE_CALLS = {
  size: 'fstat',
  write: 'pwrite',
  writev: 'pwritev',
  read: 'pread',
  readv: 'preadv',
  sync: 'fsync',
  datasync: 'fdatasync',
  allocate: 'fallocate',
  truncate: 'ftruncate',
  advise: 'fadvise',
  syncRange: 'sync_file_range',
} as const satisfies Partial<Record<keyof File, string>>;

/** File methods that make their one addon call on the calling thread. */
const SYNC_FILE_CALLS = {
  writevNow: 'pwritev',
} as const satisfies Partial<Record<keyof File, string>>;

let installed = false;

/** Installs `hook` for the rest of the process (the fixtures run one workload, then die). */
export function setIoHook(hook: Hook): void {
  if (typeof hook !== 'function') throw new TypeError('hook must be a function');
  if (installed) throw new Error('setIoHook: a hook is already installed');
  installed = true;
  const proto = File.prototype as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  for (const [method, syscall] of Object.entries(FILE_CALLS)) {
    const call = proto[method]!;
    proto[method] = async function (this: File, ...args: unknown[]) {
      const result = await call.apply(this, args);
      hook(syscall, this.path);
      return result;
    };
  }
  const syncProto = File.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const [method, syscall] of Object.entries(SYNC_FILE_CALLS)) {
    const call = syncProto[method]!;
    syncProto[method] = function (this: File, ...args: unknown[]) {
      const result = call.apply(this, args);
      hook(syscall, this.path);
      return result;
    };
  }
  const fsyncDir = rawAddon.fsyncDir;
  rawAddon.fsyncDir = async (path: string) => {
    const result = await fsyncDir(path);
    if (result >= 0) hook('fsyncDir', path);
    return result;
  };
}

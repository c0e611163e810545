// Loads the addon (the product build, or the fault-injection build the tests
// ask for) and holds what every part of the doorway shares: its constants,
// its counters and the -errno check.
import { constants as bufferConstants } from 'node:buffer';
import { createRequire } from 'node:module';
import { errnoError } from '../errors.js';

export interface Addon {
  /** fd or -errno; with stat 1, [fd, size] on success. */
  open(path: string, flags: number, mode: number): Promise<number>;
  open(path: string, flags: number, mode: number, stat: number): Promise<number | [number, number]>;
  close(fd: number): Promise<number>;
  fstatSize(fd: number): Promise<number>;
  pwrite(fd: number, data: Uint8Array, position: number): Promise<number>;
  pread(fd: number, into: Uint8Array, position: number): Promise<number>;
  pwritev(fd: number, chunks: Uint8Array[], position: number): Promise<number>;
  pwritevSync(fd: number, chunks: Uint8Array[], position: number): number;
  preadv(fd: number, into: Uint8Array[], position: number): Promise<number>;
  pwritevDatasync(fd: number, chunks: Uint8Array[], position: number): Promise<number>;
  /** Synchronous: bytes read from the page cache only (preadv2 RWF_NOWAIT), or -errno. */
  preadNowait(fd: number, into: Uint8Array, position: number): number;
  fsync(fd: number): Promise<number>;
  fdatasync(fd: number): Promise<number>;
  fsyncDir(path: string): Promise<number>;
  fallocate(fd: number, mode: number, offset: number, length: number): Promise<number>;
  ftruncate(fd: number, length: number): Promise<number>;
  fadvise(fd: number, offset: number, length: number, advice: number): Promise<number>;
  syncFileRange(fd: number, offset: number, length: number, flags: number): Promise<number>;
  statxDio(path: string): Promise<number | [number, number, number, number, number]>;
  freeBytes(path: string): Promise<number>;
  /** [0, size or -errno per name], or -errno when `dir` cannot be opened (0 alone for no names). */
  statSizes(dir: string, names: string[]): Promise<number | number[]>;
  mmap(fd: number, offset: number, length: number, writable: boolean): ArrayBuffer | number;
  munmap(region: ArrayBuffer): number;
  mapPrivate(fd: number, offset: number, length: number): ArrayBuffer | number;
  resident(region: ArrayBuffer, offset: number, length: number): number;
  coverMappings(fd: number, length: number): number;
  msync(region: ArrayBuffer, offset: number, length: number): Promise<number>;
  madvise(region: ArrayBuffer, offset: number, length: number, advice: number): number;
  residentPages(fd: number, offset: number, length: number): number;
  allocAligned(length: number, alignment: number): ArrayBuffer | number;
  freeAligned(region: ArrayBuffer): number;
  addressOf(bytes: Uint8Array): number;
  sendfileSink(socketFd: number): number;
  sendfileSinkClose(sinkId: number): boolean;
  sendfile(sinkId: number, fileFd: number, position: number, length: number, chunk: number): Promise<[number, number]> & { id: number };
  sendfileCancel(id: number): boolean;
  crc32c(bytes: Uint8Array, seed: number): number;
  crc32cSoftware(bytes: Uint8Array, seed: number): number;
  crc32cHardware: boolean;
  stats(): NativeStats;
  readCalls(): number;
  tryLockExclusive(fd: number): number;
  constants: Record<string, number>;
}

/** Counters kept by the addon; tests and benchmarks read them to prove which syscalls ran. */
export interface NativeStats {
  preadCalls: number;
  pwriteCalls: number;
  fsyncCalls: number;
  fdatasyncCalls: number;
  sendfileCalls: number;
  sendfileBytes: number;
  /** Times a transfer found the socket full and waited for it on the event loop. */
  sendfileWaits: number;
  /** sendfile rounds that ran on the threadpool (the file's pages were not all cached); the rest ran on the JS thread. */
  sendfileQueued: number;
  liveMappings: number;
  liveAlignedBuffers: number;
  liveSendfiles: number;
}

// src/addon/load.ts and dist/addon/load.js both sit two levels below the package root.
// SEGLOG_ADDON=faults loads the test build instead (binding.gyp's seglog_faults,
// with fault injection compiled in; see test/helpers/faults.ts): the vitest
// configs set it, and the processes and workers tests start inherit it. One
// process (and each worker) loads only one of the two.
const require = createRequire(import.meta.url);
const ADDONS: Record<string, string> = { '': 'seglog', faults: 'seglog_faults' };
const addonName = ADDONS[process.env.SEGLOG_ADDON ?? ''];
if (addonName === undefined) throw new Error(`SEGLOG_ADDON must be unset or 'faults', got '${process.env.SEGLOG_ADDON}'`);
export const addon = require(`../../build/Release/${addonName}.node`) as Addon;
/** The addon's numeric constants (open flags, advice values, page size). */
export const C = addon.constants;

/** @internal The raw addon, for tests that must reach the OS without the checks above it. */
export const rawAddon = addon;

export const PAGE_SIZE = C.PAGE_SIZE;
export const MAX_OFFSET = Number.MAX_SAFE_INTEGER;
export const INT32_MAX = 0x7fffffff;
/** A mapping is exposed as one external ArrayBuffer; Node aborts the process (double free) on one longer than a Buffer can be. */
export const MAX_MAPPING = bufferConstants.MAX_LENGTH;

export function check(result: number, syscall: string, path?: string): number {
  if (result < 0) throw errnoError(result, syscall, path);
  return result;
}

export function stats(): NativeStats {
  return addon.stats();
}

/** stats().preadCalls + stats().sendfileCalls, cheaply: the read path takes it around every read. */
export function readCalls(): number {
  return addon.readCalls();
}

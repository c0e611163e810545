// CRC-32C (Castagnoli), on the CPU's crc32 instruction where it has one.
import { checkBytes, checkInteger } from '../validate.js';
import { addon } from './load.js';

/** CRC-32C (Castagnoli) of `bytes`, continuing from `seed` (a previous CRC; 0 to start). */
export function crc32c(bytes: Uint8Array, seed = 0): number {
  checkBytes('bytes', bytes);
  checkInteger('seed', seed, 0, 0xffffffff);
  return addon.crc32c(bytes, seed);
}

/** @internal The table-driven path, for checking the hardware path against. */
export function crc32cSoftware(bytes: Uint8Array, seed = 0): number {
  checkBytes('bytes', bytes);
  checkInteger('seed', seed, 0, 0xffffffff);
  return addon.crc32cSoftware(bytes, seed);
}

/** Whether crc32c() runs on the CPU's crc32 instruction. */
export const crc32cHardware = addon.crc32cHardware;

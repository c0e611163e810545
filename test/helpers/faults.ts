// Fault injection for tests: makes the next system calls at a point fail.
// Only the test build of the addon (binding.gyp's seglog_faults, loaded when
// SEGLOG_ADDON=faults, which the vitest configs set) has it compiled in.
import { constants as osConstants } from 'node:os';
import { rawAddon } from '../../src/native.js';

export type FaultPoint = 'pwrite' | 'fsync' | 'fdatasync' | 'ftruncate' | 'open';

interface FaultAddon {
  injectFault(point: number, errno: number, skip: number, count: number, partial: boolean): void;
  faultPoints: Record<FaultPoint, number>;
}

function faultAddon(): FaultAddon {
  const addon = rawAddon as unknown as Partial<FaultAddon>;
  if (typeof addon.injectFault !== 'function' || addon.faultPoints === undefined) {
    throw new Error('fault injection needs the test build of the addon: run with SEGLOG_ADDON=faults (the vitest configs set it)');
  }
  return addon as FaultAddon;
}

/**
 * The next calls at `point` fail with `code` (after `skip` calls that
 * succeed; `count` calls, -1 for all). `partial` writes half the bytes
 * before failing. `code: null` clears the point.
 */
export function injectFault(point: FaultPoint, code: string | null, options: { skip?: number; count?: number; partial?: boolean } = {}): void {
  const addon = faultAddon();
  const p = addon.faultPoints[point];
  if (p === undefined) throw new RangeError(`unknown fault point '${point}'`);
  const errno = code === null ? 0 : osConstants.errno[code as keyof typeof osConstants.errno];
  if (errno === undefined) throw new RangeError(`unknown errno code '${code}'`);
  addon.injectFault(p, errno, options.skip ?? 0, options.count ?? 1, options.partial ?? false);
}

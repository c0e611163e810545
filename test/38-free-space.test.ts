// The minFreeBytes floor against what statvfs says: a filesystem that reports
// no size at all (0 total blocks, as some FUSE filesystems do) has unknown
// free space, not none: rolls go on, and the log says so once.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { Log } from '../src/log/log.js';
import { tempDir } from './helpers/tmp.js';

const here = fileURLToPath(new URL('.', import.meta.url));

test('0 total blocks: freeBytes is undefined, rolls are not refused, one warning per log', async () => {
  const dir = await tempDir();
  const shim = join(dir, 'no-size-fs.so');
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', shim, join(here, 'fixtures', 'no-size-fs.c'), '-ldl']);
  const out = execFileSync(process.execPath, ['--import', 'tsx', join(here, 'fixtures', 'no-size-child.ts'), join(dir, 'log')], {
    env: { ...process.env, LD_PRELOAD: shim, UV_USE_IO_URING: '0' },
    encoding: 'utf8',
  });
  const r = JSON.parse(out) as { free: number | null; segments: number; warnings: string[] };
  expect(r.free).toBeNull();
  expect(r.segments).toBeGreaterThan(5);
  expect(r.warnings).toHaveLength(1);
  expect(r.warnings[0]).toMatch(/^SEGLOG_FREE_SPACE_UNKNOWN: the filesystem of .* reports no size/);
});

test('a filesystem with a size still has the floor: a roll below it is refused with ENOSPC', async () => {
  const log = await Log.open(await tempDir(), { segmentBytes: 1024, minFreeBytes: Number.MAX_SAFE_INTEGER });
  await log.append([{ value: Buffer.alloc(900) }]);
  await expect(log.append([{ value: Buffer.alloc(900) }])).rejects.toMatchObject({ code: 'ENOSPC' });
  await log.close();
});

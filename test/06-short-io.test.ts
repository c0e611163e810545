import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { tempDir } from './helpers/tmp.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const addonPath = join(here, '..', 'build', 'Release', 'seglog.node');

test('pread/pwrite/preadv/pwritev loop over short transfers and EINTR until done', async () => {
  const dir = await tempDir();
  const shim = join(dir, 'short-io.so');
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', shim, join(here, 'fixtures', 'short-io.c'), '-ldl']);
  const file = join(dir, 'data');
  const out = execFileSync(process.execPath, [join(here, 'fixtures', 'short-io-child.mjs'), addonPath, file], {
    env: { ...process.env, LD_PRELOAD: shim, SHORT_IO_MAX: '1000', SHORT_IO_EINTR_EVERY: '7', UV_USE_IO_URING: '0' },
    encoding: 'utf8',
  });
  const r = JSON.parse(out);
  expect(r).toMatchObject({ wrote: 100_000, wrotev: 10_501, read: 100_000, readv: 10_501, readMatches: true, readvMatches: true });
  // 110,501 bytes at <= 1000 per call is >= 111 calls each way, plus the interrupted ones.
  expect(r.pwriteCalls).toBeGreaterThanOrEqual(111 + 15);
  expect(r.preadCalls).toBeGreaterThanOrEqual(111 + 15);
  expect((await readFile(file)).length).toBe(110_501);
});

// Fault injection with libfiu (Debian fiu-utils; .ci/run installs it): a
// child runs under `fiu-run -x` (the POSIX preload, which also wraps the
// addon's pwrite64/pwritev64/open64/mmap64/ftruncate64 under the plain names'
// failure points) with UV_USE_IO_URING=0 so libuv's own file I/O goes through
// libc as well. Points are switched on with fiu-ctrl only once the store is
// open. Appends must reject with the injected error, a failed fdatasync must
// fail the log stop, the process must survive without leaking descriptors or
// mappings, and reopening without faults must find every acknowledged record
// and none whose write failed. Also ENOSPC for real, on a small tmpfs.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { LogStore } from '../src/store/store.js';
import { recordId, recordValue } from './fixtures/random.js';
import { tempDir } from './helpers/tmp.js';
import { until } from './helpers/until.js';

const hasFiu = spawnSync('sh', ['-c', 'command -v fiu-run && command -v fiu-ctrl']).status === 0;
const child = fileURLToPath(new URL('./fixtures/fiu-child.ts', import.meta.url));
const ERRNO = { EIO: 5, ENOMEM: 12, ENOSPC: 28 } as const;

interface FiuRun {
  acked: Map<number, number>;
  rejected: Map<number, string>;
  result: { rejected: Record<string, number>; failure: string | null; leakedFds: number; mappings: number; backgroundErrors: number; background: Record<string, number> };
  exitCode: number | null;
}

/** Runs fiu-child.ts under fiu-run with `point` failing (errno `code`, probability `p`) while it appends. */
/** The child under fiu-run was ended by V8's fatal out-of-memory (its heap's mmap failed), not by seglog. */
class V8OutOfMemory extends Error {}

/** underFiu in a fresh data directory, again while V8 (not seglog) runs out of memory under posix/mm/mmap, at most 5 times. */
async function underFiuRetried(point: string, code: keyof typeof ERRNO, p: number): Promise<{ run: FiuRun; dataDir: string }> {
  for (let attempt = 1; ; attempt++) {
    const dataDir = join(await tempDir(), 'data');
    try {
      return { run: await underFiu(dataDir, point, code, p), dataDir };
    } catch (err) {
      if (!(err instanceof V8OutOfMemory) || attempt === 5) throw err;
    }
  }
}

async function underFiu(dataDir: string, point: string, code: keyof typeof ERRNO, p: number, env: NodeJS.ProcessEnv = {}): Promise<FiuRun> {
  const proc = spawn('fiu-run', ['-x', process.execPath, '--import', 'tsx', child, dataDir], {
    env: { ...process.env, UV_USE_IO_URING: '0', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    process.stderr.write(chunk);
  });
  const exited = new Promise<number | null>((resolve) => proc.once('close', resolve));
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) {
      const code = await exited;
      // posix/mm/mmap fails every caller's mmap, V8's own too: V8 then ends the process with its fatal OOM (seen in 1
      // run of 6). That is V8 failing, not seglog: the caller runs the trial again.
      if (point === 'posix/mm/mmap' && /FATAL ERROR: .*JavaScript heap out of memory/.test(stderr)) throw new V8OutOfMemory();
      throw new Error(`fiu child ended early (exit ${code})`);
    }
    return value.split(' ');
  };
  const ctrl = (command: string, pid: string) => promisify(execFile)('fiu-ctrl', ['-c', command, pid]);
  const [, pid] = await next();
  await ctrl(`enable_random name=${point},probability=${p},failinfo=${ERRNO[code]}`, pid!);
  proc.stdin.write('GO\n');
  const run = { acked: new Map<number, number>(), rejected: new Map<number, string>() } as FiuRun;
  for (;;) {
    const [what, a, ...rest] = await next();
    if (what === 'ACK') run.acked.set(Number(a), Number(rest[0]));
    else if (what === 'REJECT') run.rejected.set(Number(a), rest.join(' '));
    else if (what === 'RESULT') {
      run.result = JSON.parse([a, ...rest].join(' '));
      break;
    }
  }
  await ctrl(`disable name=${point}`, pid!);
  proc.stdin.write('CHECK\n');
  const [read, count] = await next();
  expect([read, Number(count)]).toEqual(['READ', run.acked.size]);
  expect(await next()).toEqual(['CLOSED']);
  run.exitCode = await exited;
  return run;
}

/** Offset -> id of every record of log 'a', opened without faults. */
async function reopen(dataDir: string): Promise<Map<number, number>> {
  const store = await LogStore.open(dataDir);
  const log = await store.log('a');
  const found = new Map<number, number>();
  for await (const r of log.records(log.startOffset)) found.set(r.offset, recordId(r.value)!);
  await store.close();
  return found;
}

describe('libfiu faults while appending with flush: always', () => {
  // Never skipped: a missing fiu-run must fail loudly (.ci/run installs fiu-utils).
  test('fiu-run is installed', () => expect(hasFiu, 'fiu-run not found: apt-get install fiu-utils').toBe(true));

  test.each([
    ['posix/io/rw/pwritev', 'EIO', 0.3, 'pwritev'],
    ['posix/io/rw/pwritev', 'ENOSPC', 0.3, 'pwritev'],
    ['posix/io/sync/fdatasync', 'EIO', 0.05, 'fdatasync'],
    ['posix/io/sync/fdatasync', 'ENOSPC', 0.05, 'fdatasync'],
    ['posix/io/sync/fsync', 'EIO', 0.3, 'fsync'],
    ['posix/io/oc/open', 'ENOSPC', 0.3, 'open'],
    ['posix/io/oc/open', 'EIO', 0.3, 'open'],
    ['posix/mm/mmap', 'ENOMEM', 0.2, 'mmap'],
    ['posix/io/rw/ftruncate', 'EIO', 0.5, 'ftruncate'],
  ] as const)('%s fails with %s', { timeout: 60_000 }, async (point, code, p, syscall) => {
    const { run, dataDir } = await underFiuRetried(point, code, p);
    expect(run.exitCode).toBe(0);
    // Only the injected error, typed, naming its system call (a directory fsync opens the directory first).
    for (const key of Object.keys(run.result.rejected)) expect([`${code} ${syscall}`, `${code} fsync`]).toContain(key);
    expect(run.rejected.size).toBeGreaterThan(0);
    expect(run.result.leakedFds).toBe(0);
    // The active segment's two indexes; after a failed seal whose undo failed too, its offset index may be read-only (and unmapped).
    if (syscall === 'ftruncate') expect(run.result.mappings).toBeOneOf([1, 2]);
    else expect(run.result.mappings).toBe(2);
    if (syscall === 'fdatasync') expect(run.result.failure).toBe(`${code} fdatasync`);
    else expect(run.result.failure).toBeNull();
    // No background job runs into these faults: none failed.
    expect(run.result.backgroundErrors).toBe(0);
    expect(run.result.background).toEqual({});
    const found = await reopen(dataDir);
    for (const [offset, id] of run.acked) expect(found.get(offset), `acknowledged record ${id} at ${offset}`).toBe(id);
    // A record whose write failed never shows; one whose fdatasync failed may (it reached the page cache, unacknowledged).
    const ids = new Set(found.values());
    for (const [id, why] of run.rejected) if (!why.endsWith('fdatasync')) expect(ids.has(id), `rejected record ${id} (${why})`).toBe(false);
  });
});

describe('libfiu faults in background jobs', () => {
  test('failing checkpoint fsyncs reach onBackgroundError and backgroundErrors, typed, while appends go on', { timeout: 60_000 }, async () => {
    const dataDir = join(await tempDir(), 'data');
    // Checkpoints every 2 ms (temp file, fsync, rename, directory fsync); appends use fdatasync, which works.
    const run = await underFiu(dataDir, 'posix/io/sync/fsync', 'EIO', 1, { SEGLOG_FIU_CHECKPOINT_MS: '2' });
    expect(run.exitCode).toBe(0);
    expect(run.result.backgroundErrors).toBeGreaterThan(0);
    expect(Object.keys(run.result.background)).toEqual(['EIO fsync']);
    expect(run.result.background['EIO fsync']).toBeGreaterThanOrEqual(Math.min(run.result.backgroundErrors, 100));
    expect(run.result.failure).toBeNull();
    const found = await reopen(dataDir);
    for (const [offset, id] of run.acked) expect(found.get(offset), `acknowledged record ${id} at ${offset}`).toBe(id);
  });
});

describe('ENOSPC for real', () => {
  const mountPoint = mkdtempSync(join(tmpdir(), 'seglog-enospc-'));
  let mounted = false;
  afterAll(() => {
    if (mounted) spawnSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  // Mounting needs root (CAP_SYS_ADMIN), which CI has: where it is missing the test fails (never skips), so a
  // run that could not try real ENOSPC does not pass for one that did.
  test('a full 4 MiB tmpfs: appends reject with ENOSPC, leave nothing partial, and work again once space is freed', async () => {
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint], { encoding: 'utf8' });
    expect(mount.status, `cannot mount a 4 MiB tmpfs at ${mountPoint} (${mount.stderr?.trim() || mount.error?.message || `exit ${mount.status}`}): this test needs root`).toBe(0);
    mounted = true;
    const dataDir = join(mountPoint, 'data');
    const store = await LogStore.open(dataDir, { flush: 'always', segmentBytes: 512 * 1024, minFreeBytes: 0, fileDeleteDelayMs: 0 });
    const log = await store.log('a');
    const acked = new Map<number, number>();
    let error: { code?: string; syscall?: string } | undefined;
    for (let id = 0; error === undefined; id++) {
      try {
        acked.set((await log.append([{ value: recordValue(id, 64 * 1024) }])).baseOffset, id);
      } catch (err) {
        error = err as typeof error;
      }
    }
    expect(error).toMatchObject({ code: 'ENOSPC' });
    expect(log.failure).toBeUndefined();
    expect(log.endOffset).toBe(acked.size);
    // Free space the way a broker would: move the start past old segments; retention unlinks their files.
    await log.deleteRecordsBefore(log.endOffset - 8);
    // fileDeleteDelayMs 0: the unlinks run on the scheduler's next turn; wait until the space is back.
    await until(async () => !(await readdir(join(dataDir, 'a'))).some((f) => f.endsWith('.deleted')));
    expect(store.backgroundErrors).toEqual([]);
    const more = await log.append([{ value: recordValue(1_000_000, 64 * 1024) }]);
    acked.set(more.baseOffset, 1_000_000);
    await store.close();
    const reopened = await LogStore.open(dataDir);
    const again = await reopened.log('a');
    const found = new Map<number, number>();
    for await (const r of again.records(again.startOffset)) found.set(r.offset, recordId(r.value)!);
    for (const [offset, id] of acked) if (offset >= again.startOffset) expect(found.get(offset)).toBe(id);
    expect(again.endOffset).toBe(more.baseOffset + 1);
    await reopened.close();
  });
});

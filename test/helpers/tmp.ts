import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

/** A fresh temp directory, removed when the current test finishes. */
export async function tempDir(base: string = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(base, 'seglog-test-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Open file descriptors of this process, from /proc/self/fd. */
export async function openFdCount(): Promise<number> {
  const { readdir } = await import('node:fs/promises');
  return (await readdir('/proc/self/fd')).length;
}

/**
 * Paths of this process's open descriptors that lie under `dir` (a deleted
 * file keeps its path with ' (deleted)' after it). Unlike openFdCount, blind to
 * descriptors the test runner opens or closes meanwhile.
 */
export async function openFilesUnder(dir: string): Promise<string[]> {
  const { readdir, readlink } = await import('node:fs/promises');
  const paths = await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return paths.filter((p) => p.startsWith(`${dir}/`)).sort();
}

/** Runs a full garbage collection, exposing gc() on first use. */
export async function collectGarbage(): Promise<void> {
  const v8 = await import('node:v8');
  const vm = await import('node:vm');
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

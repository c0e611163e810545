// worker_threads: the addon keeps its state per environment, so the main
// thread and workers each run stores side by side (appends, mmap'd index
// lookups, sendfile, directory lock), and a worker terminated mid-append
// takes its files, mappings and lock with it: nothing crashes, nothing leaks,
// and its store reopens with every acknowledged record.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, test } from 'vitest';
import { stats } from '../src/native.js';
import { LogStore } from '../src/store/store.js';
import { recordsIn, runWorkload, STORE_OPTIONS, type WorkloadReport } from './fixtures/worker-store.js';
import { until } from './helpers/sockets.js';
import { openFdCount, tempDir } from './helpers/tmp.js';

const boot = new URL('./fixtures/worker-boot.mjs', import.meta.url);
const script = new URL('./fixtures/worker-store.ts', import.meta.url).href;

/** A worker running worker-store.ts through tsx (worker-boot.mjs registers it). */
function startWorker(data: object): Worker {
  return new Worker(boot, { workerData: { ...data, script } });
}

function workerReport(worker: Worker): Promise<WorkloadReport> {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`worker exited with ${code} before reporting`)));
  });
}

function checkReport(r: WorkloadReport): void {
  expect(r.records).toBe(1800);
  expect(r.segments).toBeGreaterThan(5);
  expect(r.mismatches).toBe(0);
  expect(r.sentMatches).toBe(true);
  expect(r.sentBytes).toBeGreaterThan(0);
  expect(r.sendfileCalls).toBeGreaterThan(0);
  // Its own counters: the segments' indexes were mapped, and unmapped on close.
  expect(r.liveMappingsOpen).toBeGreaterThan(0);
  expect(r.liveMappingsClosed).toBe(0);
}

describe('worker_threads', () => {
  test('two workers and the main thread each run a store; a worker terminated mid-append leaks nothing and its acknowledged records survive', async () => {
    const fdsBefore = await openFdCount();
    const mappingsBefore = stats().liveMappings;

    const [dirA, dirB, dirMain, dirEndless, dirSurvivor] = await Promise.all(Array.from({ length: 5 }, () => tempDir()));
    const workers = [startWorker({ mode: 'workload', dir: dirA, flush: 'always' }), startWorker({ mode: 'workload', dir: dirB, flush: 'none' })];
    const reports = await Promise.all([...workers.map(workerReport), runWorkload(dirMain, 'always')]);
    for (const r of reports) checkReport(r);
    await Promise.all(workers.map((w) => w.terminate()));

    // A store the main thread keeps using while the worker dies.
    const survivor = await LogStore.open(dirSurvivor, STORE_OPTIONS);
    const kept = await survivor.log('kept');
    await kept.append([{ value: 'before' }]);
    const mappingsWithSurvivor = stats().liveMappings;

    const endless = startWorker({ mode: 'endless', dir: dirEndless });
    const acked = new Map<number, string>();
    let workerMappings = 0;
    endless.on('message', (m: { acked: number; id: number; liveMappings: number }) => {
      acked.set(m.acked, `id ${m.id}`);
      workerMappings = m.liveMappings;
    });
    const errors: unknown[] = [];
    endless.on('error', (err) => errors.push(err));
    await until(() => acked.size >= 500, 'the worker to acknowledge appends');
    // The worker's mappings are counted in its own environment, not here.
    expect(workerMappings).toBeGreaterThan(0);
    expect(stats().liveMappings).toBe(mappingsWithSurvivor);
    // 32 appends in flight: the terminate lands in the middle of them.
    const appending = kept.append([{ value: 'during' }]);
    await endless.terminate();
    expect(errors).toEqual([]);
    await appending;
    await kept.append([{ value: 'after' }]);
    expect(recordsIn((await kept.read(0)).bytes).map((r) => r.value?.toString())).toEqual(['before', 'during', 'after']);
    await survivor.close();

    // The dead worker's directory lock went with it: the store reopens here.
    const reopened = await LogStore.open(dirEndless, STORE_OPTIONS);
    const log = await reopened.log('w');
    const stored = new Map<number, string>();
    for (let offset = 0; offset < log.endOffset; ) {
      const { bytes, nextOffset } = await log.read(offset);
      for (const r of recordsIn(bytes)) stored.set(r.offset, r.value!.toString());
      offset = nextOffset;
    }
    const missing = [...acked].filter(([offset, value]) => stored.get(offset) !== value);
    expect(missing).toEqual([]);
    await reopened.close();

    expect(stats().liveMappings).toBe(mappingsBefore);
    expect(await settledFdCount(fdsBefore)).toBe(fdsBefore);
  });
});

/** /proc/self/fd's count once it reaches `expected`, or after a while: Node closes a worker's own handles (its loop's epoll and eventfds) just after terminate() resolves. */
async function settledFdCount(expected: number): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const n = await openFdCount();
    if (n === expected) return n;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return openFdCount();
}

test('workers terminated while they call into the addon end quietly: the process does not abort', async () => {
  // A call that cannot throw because its worker is being terminated must not take the whole process down
  // (node-addon-api aborts there unless told to drop the error). Run in a child: an abort would end it.
  const addon = fileURLToPath(new URL(`../build/Release/${process.env.SEGLOG_ADDON === 'faults' ? 'seglog_faults' : 'seglog'}.node`, import.meta.url));
  const child = `
    const { Worker } = require('node:worker_threads');
    const body = 'const a = require(' + JSON.stringify(process.argv[1]) + '); require("node:worker_threads").parentPort.postMessage(0); for (;;) { a.stats(); a.readCalls(); }';
    (async () => {
      for (let i = 0; i < 60; i++) {
        const w = new Worker(body, { eval: true });
        await new Promise((r) => w.once('message', r));
        await new Promise((r) => setTimeout(r, (i % 4) / 2));
        await w.terminate();
      }
      console.log('done');
    })();`;
  const { code, signal, stdout, stderr } = await new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, ['-e', child, addon], (err, out, errOut) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, signal: err ? ((err as { signal?: string }).signal ?? null) : null, stdout: out, stderr: errOut }));
  });
  expect({ code, signal, stdout: stdout.trim(), fatal: /FATAL ERROR/.test(stderr) }).toEqual({ code: 0, signal: null, stdout: 'done', fatal: false });
});

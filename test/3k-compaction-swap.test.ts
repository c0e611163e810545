// Crash safety of a compaction pass (issue #17 item 4): the states a crash
// can leave at each step of a group's swap (cleaned-swap.ts), built on disk
// from a real pass's before and after, each opened: before the .log reaches
// `.swap` the pass is undone, after it the swap is completed; either way the
// latest record of every key and its offset are what they were before the
// pass, and the log reads as before or as after it, record by record. Then
// seeded slices of the compaction crash trials (SIGKILLs of a child
// running passes, some followed by a power cut; test/fixtures/compaction-trials.ts).
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { Log, type LogOptions } from '../src/log/log.js';
import { runCompactionTrials } from './fixtures/compaction-trials.js';
import { cleanedPoint, latestByKey, readAll, T0, workload, type ReadRecord } from './helpers/compaction.js';
import { tempDir } from './helpers/tmp.js';

const OPTIONS: LogOptions = { cleanupPolicy: 'compact', segmentBytes: 4096 };

/** A copy of the files of `from` in a new directory named like it (the checkpoint names the log by its directory's name). */
async function copyOf(from: string, root: string, name: string): Promise<string> {
  const dir = join(root, name, 'log');
  await mkdir(dir, { recursive: true });
  for (const f of await readdir(from)) await copyFile(join(from, f), join(dir, f));
  return dir;
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

const pad = (base: number): string => String(base).padStart(20, '0');

test('a crash at each step of a swap leaves a log that reads as before the pass or as after it, with the same latest record of every key', async () => {
  const root = await tempDir();
  const dir = join(root, 'live', 'log');
  const log = await Log.open(dir, OPTIONS);
  await workload(log, 5, 200, 6);
  await log.roll();
  // A first pass leaves small segments that the second one groups into one: its swap has several sources.
  await log.compact({ now: T0 });
  await workload(log, 6, 20, 6, 78);
  await log.roll();
  await log.flush();
  // What a crash just before the pass leaves (no clean-shutdown marker: the log is open).
  const before = await copyOf(dir, root, 'before');
  const beforeAll = await readAll(log);
  const latest = latestByKey(await readAll(log, 'committed'));
  const sealedBefore = (await readdir(dir)).filter((f) => f.endsWith('.log')).sort();
  await log.compact({ now: T0 });
  await log.flush();
  const after = await copyOf(dir, root, 'after');
  const afterAll = await readAll(log);
  expect(latestByKey(await readAll(log, 'committed'))).toEqual(latest);
  await log.close();

  // The one group: the segments it replaced, and what it became.
  const sealedAfter = (await readdir(after)).filter((f) => f.endsWith('.log')).sort();
  const gone = sealedBefore.filter((f) => !sealedAfter.includes(f));
  expect(gone.length).toBeGreaterThan(1);
  const base = Number(sealedBefore[0]!.slice(0, 20));
  expect(sealedAfter[0]).toBe(`${pad(base)}.log`);
  // Later groups of the pass are not yet cleaned when this one's swap is cut short.
  const groupEnd = Number(sealedAfter[1]!.slice(0, 20));
  const firstGroupDone = [...afterAll.filter((r) => r.offset < groupEnd), ...beforeAll.filter((r) => r.offset >= groupEnd)];
  const sources = sealedBefore.filter((f) => Number(f.slice(0, 20)) > base && !sealedAfter.includes(f)).map((f) => f.slice(0, 20));
  expect(sources.length).toBeGreaterThan(0);
  const cleanedLog = await readFile(join(after, `${pad(base)}.log`));
  const cleanedTxn = (await exists(join(after, `${pad(base)}.txnindex`))) ? await readFile(join(after, `${pad(base)}.txnindex`)) : Buffer.alloc(0);
  const afterPoint = await readFile(join(after, 'cleaner-offset-checkpoint'));
  const f = (d: string, name: string) => join(d, name);
  const b = pad(base);

  /** The states, in the order a pass passes through them, and whether open must find the pass done. */
  const states: Array<[string, boolean, (d: string) => Promise<void>]> = [
    ['the cleaned point not yet raised, the .log half written', false, async (d) => writeFile(f(d, `${b}.log.cleaned`), cleanedLog.subarray(0, cleanedLog.length >> 1))],
    ['the .log written, not yet durable', false, async (d) => {
      await writeFile(f(d, 'cleaner-offset-checkpoint'), afterPoint);
      await writeFile(f(d, `${b}.log.cleaned`), cleanedLog);
    }],
    ['both written', false, async (d) => {
      await writeFile(f(d, 'cleaner-offset-checkpoint'), afterPoint);
      await writeFile(f(d, `${b}.log.cleaned`), cleanedLog);
      await writeFile(f(d, `${b}.txnindex.cleaned`), cleanedTxn);
    }],
    ['the .txnindex renamed to .swap, not the .log', false, async (d) => {
      await writeFile(f(d, 'cleaner-offset-checkpoint'), afterPoint);
      await writeFile(f(d, `${b}.log.cleaned`), cleanedLog);
      await writeFile(f(d, `${b}.txnindex.swap`), cleanedTxn);
    }],
    ['the .log renamed to .swap (the point of no return)', true, async (d) => {
      await writeFile(f(d, 'cleaner-offset-checkpoint'), afterPoint);
      await writeFile(f(d, `${b}.log.swap`), cleanedLog);
      await writeFile(f(d, `${b}.txnindex.swap`), cleanedTxn);
    }],
    ['some sources removed', true, async (d) => {
      await writeFile(f(d, 'cleaner-offset-checkpoint'), afterPoint);
      await writeFile(f(d, `${b}.log.swap`), cleanedLog);
      await writeFile(f(d, `${b}.txnindex.swap`), cleanedTxn);
      for (const s of sources.slice(0, sources.length >> 1)) for (const ext of ['log', 'index', 'timeindex']) await rm(f(d, `${s}.${ext}`), { force: true });
    }],
    ['every source and the first one\'s indexes removed', true, async (d) => {
      await writeFile(f(d, 'cleaner-offset-checkpoint'), afterPoint);
      await writeFile(f(d, `${b}.log.swap`), cleanedLog);
      await writeFile(f(d, `${b}.txnindex.swap`), cleanedTxn);
      for (const s of sources) for (const ext of ['log', 'index', 'timeindex', 'txnindex']) await rm(f(d, `${s}.${ext}`), { force: true });
      for (const ext of ['index', 'timeindex']) await rm(f(d, `${b}.${ext}`), { force: true });
    }],
    ['the .txnindex in place, the .log still .swap', true, async (d) => {
      await writeFile(f(d, 'cleaner-offset-checkpoint'), afterPoint);
      await writeFile(f(d, `${b}.log.swap`), cleanedLog);
      await writeFile(f(d, `${b}.txnindex`), cleanedTxn);
      for (const s of sources) for (const ext of ['log', 'index', 'timeindex', 'txnindex']) await rm(f(d, `${s}.${ext}`), { force: true });
      for (const ext of ['index', 'timeindex']) await rm(f(d, `${b}.${ext}`), { force: true });
    }],
  ];
  for (const [i, [what, done, make]] of states.entries()) {
    const d = await copyOf(before, root, `state${i}`);
    await make(d);
    for (let open = 0; open < 2; open++) {
      const reopened = await Log.open(d, OPTIONS);
      const all: ReadRecord[] = await readAll(reopened);
      expect(all, `${what} (open ${open + 1})`).toEqual(done ? firstGroupDone : beforeAll);
      expect(latestByKey(await readAll(reopened, 'committed')), what).toEqual(latest);
      await reopened.close();
      const left = (await readdir(d)).filter((n) => n.endsWith('.swap') || n.endsWith('.cleaned'));
      expect(left, what).toEqual([]);
    }
    // And it cleans on from there.
    const again = await Log.open(d, OPTIONS);
    await again.append([{ key: 'k0', value: 'new' }]);
    await again.roll();
    await again.compact({ now: T0 });
    expect(latestByKey(await readAll(again, 'committed')), what).toEqual(new Map([...latest, ['k0', [again.endOffset - 1, 'new']]]));
    await again.close();
    expect(await cleanedPoint(d)).toBeGreaterThan(0);
  }
  // The complete swap itself (nothing left to do) reads as after.
  const done = await Log.open(after, OPTIONS);
  expect(await readAll(done)).toEqual(afterAll);
  await done.close();
});

test('12 SIGKILLs during compaction passes (seed 17; the long run is in test/reliability): every key keeps its latest record and offset', { timeout: 180_000 }, async () => {
  const report = await runCompactionTrials(17, 12, false, () => tempDir());
  expect(report.failures).toEqual([]);
  expect(report.trials).toBe(12);
  // Kills came inside passes, not only before the first.
  expect(report.passes).toBeGreaterThan(report.trials);
});

test('8 SIGKILLs during compaction passes followed by power cuts (seed 18): every key keeps its latest record and offset', { timeout: 180_000 }, async () => {
  const report = await runCompactionTrials(18, 8, true, () => tempDir());
  expect(report.failures).toEqual([]);
  expect(report.trials).toBe(8);
  expect(report.filesCut + report.filesDropped).toBeGreaterThan(0);
});

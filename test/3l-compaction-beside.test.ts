// A compaction pass beside the log's other work (issue #17 items 2 and 4):
// appends go on while a pass (slowed by cleanerBytesPerSecond) reads and
// writes; a truncation, retention or close() during a pass cuts it short at
// a consistent point (no swap of segments that changed), and the log reads
// and reopens as it should.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { Log, type LogOptions } from '../src/log/log.js';
import { latestByKey, readAll, T0, workload } from './helpers/compaction.js';
import { tempDir } from './helpers/tmp.js';

const OPTIONS: LogOptions = { cleanupPolicy: 'compact', segmentBytes: 4096 };
/** Slow enough that the ~100 KB of reads and writes of these logs' passes take a second or more. */
const SLOW = { cleanerBytesPerSecond: 64 * 1024, now: T0 };

async function filled(dir: string): Promise<Log> {
  const log = await Log.open(dir, OPTIONS);
  await workload(log, 11, 400, 30);
  await log.roll();
  return log;
}

test('appends are written while a pass runs, not after it', async () => {
  const log = await filled(await tempDir());
  const events: string[] = [];
  const pass = log.compact(SLOW).then((r) => {
    events.push('pass');
    return r;
  });
  for (let i = 0; i < 5; i++) {
    await log.append([{ key: `new${i}`, value: 'x' }]);
    events.push(`append${i}`);
  }
  const result = await pass;
  expect(events).toEqual(['append0', 'append1', 'append2', 'append3', 'append4', 'pass']);
  expect(result.segmentsCleaned).toBeGreaterThan(0);
  expect((await readAll(log)).slice(-5).map((r) => r.key)).toEqual(['new0', 'new1', 'new2', 'new3', 'new4']);
  await log.close();
});

test.each([
  ['truncateTo', (log: Log) => log.truncateTo(Math.floor(log.endOffset / 3))],
  ['deleteRecordsBefore', (log: Log) => log.deleteRecordsBefore(Math.floor(log.endOffset / 2))],
  ['close', (log: Log) => log.close()],
] as const)('%s during a pass cuts it short: nothing it read and that changed is swapped in, and the log reopens to the same view', async (_what, act) => {
  const dir = await tempDir();
  const log = await filled(dir);
  const pass = log.compact(SLOW);
  // Let the pass get under way (its map is built, its first group being written).
  await new Promise((resolve) => setTimeout(resolve, 300));
  await act(log);
  const result = await pass;
  const full = await Log.open(dir, OPTIONS).then(async (l) => {
    const v = await readAll(l);
    await l.close();
    return v;
  });
  if (!log.closed) {
    expect(await readAll(log)).toEqual(full);
    await log.close();
  }
  expect(result.segmentsCleaned).toBeLessThan(30);
  // Offsets only go up, and each key's records are ones the workload wrote (replayed by the same seed).
  expect(full.map((r) => r.offset)).toEqual([...full.map((r) => r.offset)].sort((a, b) => a - b));
  await rm(join(dir, '.clean-shutdown'), { force: true });
  const again = await Log.open(dir, OPTIONS);
  expect(await readAll(again)).toEqual(full);
  // And a later pass cleans it all, the latest records of keys unchanged.
  const latest = latestByKey(await readAll(again, 'committed'));
  await again.compact({ now: T0 });
  expect(latestByKey(await readAll(again, 'committed'))).toEqual(latest);
  await again.close();
});

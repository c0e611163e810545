// Power cuts, simulated (test/fixtures/power-cut.ts): the child records what
// each fsync, fdatasync and directory fsync made durable; after killing it,
// the data directory is rewritten as a disk could look after losing power:
// unsynced directory entries gone, unsynced data dropped, kept in part, or
// replaced by garbage or zeros. Recovery must then hold every acknowledged
// (durable) record. A seeded slice; the long run is in test/reliability/.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { decodeBatch } from '../src/segment/batch.js';
import { LogStore } from '../src/store/store.js';
import { runCrashTrials } from './fixtures/crash-trials.js';
import { cutPower } from './fixtures/power-cut.js';
import { Random, recordId } from './fixtures/random.js';
import { tempDir } from './helpers/tmp.js';

test('20 power cuts under an appending store (seed 53): every acknowledged record survives', { timeout: 180_000 }, async () => {
  const report = await runCrashTrials({ dir: await tempDir(), seed: 53, trials: 20, power: true });
  expect(report.failures).toEqual([]);
  expect(report.trials).toBe(20);
  expect(report.stats['files cut']).toBeGreaterThan(0);
});

/** Runs scenario-child.ts to its DONE line, kills it and cuts the power, losing everything not made durable. */
async function scenario(name: string): Promise<{ dataDir: string; done: Record<string, number> }> {
  const dir = await tempDir();
  const dataDir = join(dir, 'data');
  const shadowDir = join(dir, 'shadow');
  const script = fileURLToPath(new URL('./fixtures/scenario-child.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, dataDir, shadowDir, name], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const done = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const m = /DONE (.*)\n/.exec(out);
      if (m !== null) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`scenario child exited with ${code}`)));
  });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  cutPower(dataDir, shadowDir, new Random(1), true);
  return { dataDir, done: JSON.parse(done) };
}

async function ids(store: LogStore, name: string): Promise<number[]> {
  const log = await store.log(name);
  const out: number[] = [];
  for await (const r of log.records(log.startOffset)) out.push(recordId(r.value)!);
  return out;
}

describe('what a power cut must not undo', () => {
  test('a truncateTo that resolved: the cut records do not come back', async () => {
    const { dataDir, done } = await scenario('truncate');
    expect(done.end).toBe(5);
    const store = await LogStore.open(dataDir);
    expect(await ids(store, 'a')).toEqual([0, 1, 2, 3, 4]);
    await store.close();
  });

  test("a new log's directory: its acknowledged record survives", async () => {
    const { dataDir } = await scenario('new-log');
    const store = await LogStore.open(dataDir);
    expect(store.names).toContain('fresh');
    expect(await ids(store, 'fresh')).toEqual([1]);
    const log = await store.log('fresh');
    expect(decodeBatch((await log.read(0)).bytes)).toHaveLength(1);
    await store.close();
  });
});

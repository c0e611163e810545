// The long corruption suite: SEGLOG_CORRUPT_TRIALS (default 10,000) damaged
// logs opened, from SEGLOG_SEED (default 1); see test/51-corruption.test.ts.
import { availableParallelism } from 'node:os';
import { expect, test } from 'vitest';
import { envInt, runTrialsInParallel } from '../fixtures/trials.js';
import { tempDir } from '../helpers/tmp.js';

test('corrupted opens', async () => {
  const trials = envInt('SEGLOG_CORRUPT_TRIALS', 10_000);
  const seed = envInt('SEGLOG_SEED', 1);
  const report = await runTrialsInParallel('./corruption-child.ts', seed, trials, () => tempDir(), availableParallelism());
  const lost = report.failures.filter((f) => / lost /.test(f)).length;
  console.log(`corruption: ${report.summary?.trials} corrupted opens (seed ${seed}): ${JSON.stringify(report.summary?.stats)}; ${report.failures.length} failures; ${lost} acknowledged records lost`);
  expect(report.failures).toEqual([]);
  expect(report.summary?.trials).toBe(trials);
});

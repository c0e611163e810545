// The long corruption suite: SEGLOG_CORRUPT_TRIALS (default 10,000) damaged
// logs opened, from SEGLOG_SEED (default: a fresh seed per run, printed first
// and again on failure); see test/51-corruption.test.ts.
import { availableParallelism } from 'node:os';
import { expect, test } from 'vitest';
import { printSeedOnFailure, suiteSeed } from '../fixtures/seed.js';
import { classCounts, envInt, runTrialsInParallel, trialsNotSeenOnce } from '../fixtures/trials.js';
import { tempDir } from '../helpers/tmp.js';

const seed = suiteSeed('corruption');

test('corrupted opens', async () => {
  printSeedOnFailure('corruption', seed);
  const trials = envInt('SEGLOG_CORRUPT_TRIALS', 10_000);
  const report = await runTrialsInParallel('./corruption-child.ts', seed, trials, () => tempDir(), availableParallelism());
  const lost = report.failures.filter((f) => / lost /.test(f)).length;
  console.log(`corruption: ${report.summary?.trials} corrupted opens (seed ${seed}): ${JSON.stringify(report.summary?.stats)}; per class ${JSON.stringify(classCounts(report))}; ${report.failures.length} failures; ${lost} acknowledged records lost`);
  expect(report.failures, `seed ${seed}`).toEqual([]);
  expect(trialsNotSeenOnce(report, trials), `seed ${seed}`).toEqual([]);
  const counts = classCounts(report);
  // Repairable damage only ever opens (and serves what lies before it: the child checks).
  expect(Object.keys(counts['index-only'] ?? {}).filter((o) => o !== 'opened'), `seed ${seed}`).toEqual([]);
  expect(Object.keys(counts['torn-tail'] ?? {}).filter((o) => o !== 'opened'), `seed ${seed}`).toEqual([]);
});

// The long crash and power-loss suites: SEGLOG_CRASH_TRIALS SIGKILLs and
// SEGLOG_POWER_CUTS power cuts (default 1000 each) from SEGLOG_SEED (default:
// a fresh seed per run, printed first and again on failure); see
// test/52-crash.test.ts and test/53-power-loss.test.ts. And
// SEGLOG_COMPACTION_TRIALS SIGKILLs and SEGLOG_COMPACTION_POWER_CUTS
// SIGKILLs + power cuts (default 200 each) of a child running compaction
// passes (test/fixtures/compaction-trials.ts, test/3k). The child picks
// the cache mode at random per run unless SEGLOG_CACHE_MODE says pagecache or own.
import { availableParallelism } from 'node:os';
import { expect, test } from 'vitest';
import { runCompactionTrials } from '../fixtures/compaction-trials.js';
import { runCrashLanes } from '../fixtures/crash-trials.js';
import { printSeedOnFailure, suiteSeed } from '../fixtures/seed.js';
import { envInt } from '../fixtures/trials.js';
import { tempDir } from '../helpers/tmp.js';

const seed = suiteSeed('crash and power-loss');

test.each([
  ['crash', 'SEGLOG_CRASH_TRIALS', false],
  ['power-loss', 'SEGLOG_POWER_CUTS', true],
] as const)('%s trials', async (kind, variable, power) => {
  printSeedOnFailure(kind, seed);
  const trials = envInt(variable, 1000);
  const report = await runCrashLanes(seed, trials, power, availableParallelism(), () => tempDir());
  console.log(
    `${kind}: ${report.trials} ${power ? 'power cuts' : 'SIGKILLs'} (seed ${seed}), ${report.acknowledged} records acknowledged, ` +
      `${report.lost} acknowledged records lost; ${JSON.stringify(report.stats)}${report.failures.length > 0 ? `; failures: ${report.failures.join(' / ')}` : ''}`,
  );
  expect(report.failures, `seed ${seed}`).toEqual([]);
  expect(report.trials, `seed ${seed}`).toBe(trials);
});

test.each([
  ['compaction crash', 'SEGLOG_COMPACTION_TRIALS', false],
  ['compaction power-loss', 'SEGLOG_COMPACTION_POWER_CUTS', true],
] as const)('%s trials', async (kind, variable, power) => {
  printSeedOnFailure(kind, seed);
  const trials = envInt(variable, 200);
  const report = await runCompactionTrials(seed, trials, power, () => tempDir());
  console.log(
    `${kind}: ${report.trials} SIGKILLs${power ? ' and power cuts' : ''} (seed ${seed}, ${report.selfKilled} right after a file operation), ` +
      `${report.passes} passes begun${power ? `, ${report.filesCut} files cut, ${report.filesDropped} directory entries dropped` : ''}` +
      `${report.failures.length > 0 ? `; failures: ${report.failures.join(' / ')}` : ''}`,
  );
  expect(report.failures, `seed ${seed}`).toEqual([]);
  expect(report.trials, `seed ${seed}`).toBe(trials);
});

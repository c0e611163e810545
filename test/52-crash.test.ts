// A seeded slice of the crash suite (the long run: test/reliability/). A
// child appends with flush: 'always' through a LogStore with small segments,
// retention by bytes, checkpoints, truncateTo, deleteRecordsBefore and reads
// (half the runs in own cache mode: tail cache, O_DIRECT catch-up reads), and
// acknowledges each durable record on stdout; it is SIGKILLed at a random
// moment or right after a random file operation (so also inside rolls,
// retention, truncation and checkpoint writes). Reopening must find every
// acknowledged record intact, offsets contiguous, no batch failing its CRC.
import { expect, test } from 'vitest';
import { runCrashTrials } from './fixtures/crash-trials.js';
import { tempDir } from './helpers/tmp.js';

test('20 SIGKILLs of an appending store (seed 52): nothing acknowledged is lost or torn', { timeout: 180_000 }, async () => {
  const report = await runCrashTrials({ dir: await tempDir(), seed: 52, trials: 20, power: false });
  expect(report.failures).toEqual([]);
  expect(report.trials).toBe(20);
  expect(report.acknowledged).toBeGreaterThan(0);
});

// A seeded slice of the crash suite (the long run: test/reliability/). A
// child appends with flush: 'always' through a LogStore with small segments,
// retention by bytes, checkpoints, truncateTo, deleteRecordsBefore and reads
// (half the runs in own cache mode: tail cache, O_DIRECT catch-up reads), and
// acknowledges each durable record on stdout; it is SIGKILLed at a random
// moment or right after a random file operation (so also inside rolls,
// retention, truncation and checkpoint writes). Reopening must find every
// acknowledged record intact, offsets contiguous, no batch failing its CRC;
// half the appends are an idempotent producer's, and the next child retries
// the last ones the killed child sent: none may be written twice.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { readOffsetCheckpoint } from '../src/common/durable-files.js';
import { LOG_START_OFFSET_CHECKPOINT } from '../src/layout.js';
import { runCrashTrials } from './fixtures/crash-trials.js';
import { tempDir } from './helpers/tmp.js';

test('20 SIGKILLs of an appending store (seed 52): nothing acknowledged is lost or torn', { timeout: 180_000 }, async () => {
  const report = await runCrashTrials({ dir: await tempDir(), seed: 52, trials: 20, power: false });
  expect(report.failures).toEqual([]);
  expect(report.trials).toBe(20);
  expect(report.acknowledged).toBeGreaterThan(0);
});

/**
 * Removes, behind the suite's back, the files of the oldest segment of some log that holds a record still owed
 * (the first segment: today's open then starts the log at the next segment). Returns what it removed. Records
 * below the start offset the store checkpointed are not owed: a retention pass the kill interrupted had given
 * them up, and the check forgives them (losing their segment would prove nothing).
 */
async function loseOldestOwedSegment(dataDir: string, owed: ReadonlyMap<string, ReadonlyMap<number, number>>): Promise<string | undefined> {
  const starts = await readOffsetCheckpoint(join(dataDir, LOG_START_OFFSET_CHECKPOINT));
  for (const [name, all] of owed) {
    const start = starts.get(name) ?? 0;
    const records = new Map([...all].filter(([offset]) => offset >= start));
    const bases = readdirSync(join(dataDir, name))
      .filter((f) => /^\d{20}\.log$/.test(f))
      .map((f) => Number(f.slice(0, 20)))
      .sort((a, b) => a - b);
    // Never the active (last) segment: losing its tail could pass for a torn write.
    for (let i = 0; i + 1 < bases.length; i++) {
      if (![...records.keys()].some((offset) => offset >= bases[i]! && offset < bases[i + 1]!)) continue;
      const stem = String(bases[i]).padStart(20, '0');
      for (const suffix of ['.log', '.index', '.timeindex']) rmSync(join(dataDir, name, stem + suffix), { force: true });
      return `${name}/${stem}`;
    }
  }
  return undefined;
}

test('the check fails when a segment holding acknowledged records is lost behind its back (seed 52)', { timeout: 180_000 }, async () => {
  let lost: string | undefined;
  const report = await runCrashTrials({
    dir: await tempDir(),
    seed: 52,
    trials: 20,
    power: false,
    afterCrash: async (dataDir, owed) => {
      // Once, as soon as some log has an owed record outside its active segment.
      lost ??= await loseOldestOwedSegment(dataDir, owed);
    },
  });
  expect(lost, 'no trial left an inactive segment holding an owed record').toBeDefined();
  // Refused on reopen (a hole is ECORRUPT) or served without the records: either way the trial fails.
  expect(report.failures.length).toBeGreaterThan(0);
  expect(report.failures[0]).toMatch(/acknowledged record \d+ at offset \d+ lost|reopen failed/);
  expect(report.trials).toBeLessThan(20);
});

test('the check fails when retried batches are written again (retries sent without their producer fields, seed 52)', { timeout: 180_000 }, async () => {
  process.env.SEGLOG_CRASH_RETRY_PLAIN = '1';
  try {
    const report = await runCrashTrials({ dir: await tempDir(), seed: 52, trials: 20, power: false });
    expect(report.failures.length).toBeGreaterThan(0);
    expect(report.failures[0]).toMatch(/record \d+ written twice/);
  } finally {
    delete process.env.SEGLOG_CRASH_RETRY_PLAIN;
  }
});

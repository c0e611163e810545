// A seeded slice of the corruption suite (the long run: test/reliability/,
// `npm run test:reliability`). Each trial damages a copy of one log: bit
// flips, truncation, garbage, zero tails, misnamed and stray files, zero-length
// files, missing and oversized indexes, segments out of order. Opening must
// never crash and may only fail with a typed error naming the file; after an
// open, reads never serve a batch that fails its CRC, appends work and a
// reopen reads the same. Per damage class (corruption-child.ts): damage to
// indexes only or to the tail of the last .log is repaired (open succeeds and
// serves every record before it, contents intact); bits flipped inside a
// batch that valid data follows are refused with ECORRUPT naming the file and
// the batch's position (by open, or by the read that reaches it).
import { expect, test } from 'vitest';
import { classCounts, runTrialChild, trialsNotSeenOnce } from './fixtures/trials.js';
import { tempDir } from './helpers/tmp.js';

test('200 corrupted opens (seed 51): no crash, only typed errors, never a damaged batch served', { timeout: 120_000 }, async () => {
  const report = await runTrialChild('./corruption-child.ts', ['51', '0', '200', await tempDir()]);
  expect(report.failures).toEqual([]);
  // Counted here, per trial: every trial ran to its verdict exactly once.
  expect(trialsNotSeenOnce(report, 200)).toEqual([]);
  const counts = classCounts(report);
  // Repairable damage is never refused, nor stops reads (the child fails such a trial; these counts show it happened).
  expect(Object.keys(counts['index-only'] ?? {})).toEqual(['opened']);
  expect(Object.keys(counts['torn-tail'] ?? {})).toEqual(['opened']);
  expect(counts['index-only']!.opened).toBeGreaterThanOrEqual(10);
  expect(counts['torn-tail']!.opened).toBeGreaterThanOrEqual(10);
  // Mid-log damage is refused, at open or on read (with repair: true it may open, cut before the damage).
  const mid = counts['mid-log'] ?? {};
  expect((mid.refused ?? 0) + (mid['opened, reads refused'] ?? 0)).toBeGreaterThanOrEqual(10);
  // Both outcomes occur among the rest too: the slice exercises recovery and refusal alike.
  expect(counts.other?.opened).toBeGreaterThan(0);
  expect(counts.other?.refused).toBeGreaterThan(0);
});

// A seeded slice of the corruption suite (the long run: test/reliability/,
// `npm run test:reliability`). Each trial damages a copy of one log: bit
// flips, truncation, garbage, zero tails, misnamed and stray files, zero-length
// files, missing and oversized indexes, segments out of order. Opening must
// never crash and may only fail with a typed error naming the file; after an
// open, reads never serve a batch that fails its CRC, damage to indexes or to
// the tail loses nothing before it, appends work and a reopen reads the same.
import { expect, test } from 'vitest';
import { runTrialChild } from './fixtures/trials.js';
import { tempDir } from './helpers/tmp.js';

test('200 corrupted opens (seed 51): no crash, only typed errors, never a damaged batch served', { timeout: 120_000 }, async () => {
  const report = await runTrialChild('./corruption-child.ts', ['51', '0', '200', await tempDir()]);
  expect(report.failures).toEqual([]);
  expect(report.summary?.trials).toBe(200);
  // Both outcomes occur: the slice exercises recovery and refusal alike.
  expect(report.summary?.stats.opened).toBeGreaterThan(0);
  expect(report.summary?.stats['refused ECORRUPT']).toBeGreaterThan(0);
});

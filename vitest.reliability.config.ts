// `npm run test:reliability`: the long crash, power-loss and corruption suites
// (counts from SEGLOG_* environment variables, see test/reliability/).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    pool: 'forks',
    // The test build of the addon, with fault injection (src/native.ts); child
    // processes and workers the tests start inherit it.
    env: { SEGLOG_ADDON: 'faults' },
    // One suite at a time: each spreads its trials over the machine's cores itself.
    fileParallelism: false,
    testTimeout: 6 * 3600_000,
    hookTimeout: 60_000,
  },
});

import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The long suites run with `npm run test:reliability` (vitest.reliability.config.ts).
    exclude: [...configDefaults.exclude, 'test/reliability/**'],
    pool: 'forks',
    // The test build of the addon, with fault injection (src/native.ts); child
    // processes and workers the tests start inherit it.
    env: { SEGLOG_ADDON: 'faults' },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});

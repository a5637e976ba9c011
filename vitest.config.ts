import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'tests/**/*.test.ts'],
    // Each file opens its own databases and servers; two cores, so two files at a time.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // A poll waits for a condition (a page's state, a server's record): on two busy cores 1 s (Vitest's default) is
    // too short for a page to render what its request brought back. Failing costs the wait; passing does not.
    // And a test that asserts nothing fails (CONTRIBUTING.md, "Tests use real parts").
    expect: { poll: { timeout: 15_000 }, requireAssertions: true },
    globalSetup: ['tests/support/global-setup.ts'],
    reporters: ['default', './tests/support/summary-reporter.ts'],
  },
});

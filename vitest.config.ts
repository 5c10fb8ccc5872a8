import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    pool: 'forks',
    // vitest's default on a 2-core machine is one worker (cores − 1), which runs every file in turn although most
    // integration files wait on HTTP, child processes and timers: two workers overlap those waits.
    maxWorkers: 2,
    globalSetup: ['test/setup/tokenKeys.global.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    reporters: process.env.CI ? ['default'] : ['default'],
    projects: [
      {
        extends: true,
        // Unit files import much of src/ each; without isolation one worker imports it once for all of them (25 s →
        // 10 s for test/unit). They share one module graph: restore whatever a test mocks or replaces.
        // (first, as group 0: projects with different worker counts run one group after the other)
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          isolate: false,
          maxWorkers: 1,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: ['test/unit/**'],
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});

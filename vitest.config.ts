import { defineConfig } from 'vitest/config';

// Unit tests sit beside the code and need nothing running. Integration tests live under
// tests/ and run serially against the real Kafka, registry and Vault (see tests/global-setup.ts).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['shared/**/*.unit.test.ts', 'services/**/*.unit.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['tests/**/*.integration.test.ts'],
          globalSetup: ['tests/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'reliability',
          include: ['tests/reliability/**/*.reliability.test.ts'],
          globalSetup: ['tests/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});

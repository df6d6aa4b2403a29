import { defineConfig } from 'vitest/config';
import LabSequencer from './test/lab/sequencer.js';

export default defineConfig({
  test: {
    // Applies to every project (vitest reads the sequencer from the root config only).
    sequence: { sequencer: LabSequencer },
    // The JSON results let .ci/run print a plain "N passed, N failed" line.
    reporters: ['default', ['json', { outputFile: 'test-results.json' }]],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'lab',
          include: ['test/lab/**/*.test.ts'],
          // One lab on one machine: lab suites run one file at a time, in order.
          fileParallelism: false,
          sequence: { concurrent: false },
          testTimeout: 30 * 60_000,
          hookTimeout: 30 * 60_000,
          globalSetup: ['test/lab/global-setup.ts'],
        },
      },
    ],
  },
});

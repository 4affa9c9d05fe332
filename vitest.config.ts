import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // the machine has two cores; native work uses both, so files run one at a time
    fileParallelism: false,
  },
});

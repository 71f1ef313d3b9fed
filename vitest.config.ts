import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{lib,cluster-services,cli,conformance}/src/**/*.test.ts'],
    // Suites start real servers (origins, registries, s3rver) and move hundreds of MB on loopback.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: run files in parallel but never more than the machine has.
    maxWorkers: 2,
    pool: 'forks',
  },
});

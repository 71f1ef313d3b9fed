import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (ws: string) => fileURLToPath(new URL(`./${ws}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the workspaces' sources, so a test never sees a stale dist/.
    alias: {
      '@krill/lib': src('lib'),
      '@krill/cluster-services': src('cluster-services'),
      '@krill/node-daemon': src('node-daemon'),
      '@krill/proto': src('proto'),
      '@krill/cri-proxy': src('cri-proxy'),
      '@krill/conformance': src('conformance'),
    },
  },
  test: {
    include: ['{lib,proto,cluster-services,cri-proxy,node-daemon,cli,conformance}/src/**/*.test.ts'],
    // Suites start real servers (origins, registries, s3rver) and move hundreds of MB on loopback.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Two cores: run files in parallel but never more than the machine has.
    maxWorkers: 2,
    pool: 'forks',
    reporters: ['default', './scripts/summary-reporter.ts'],
    // Removes the krill-* working directories the suites leave in the temp directory.
    globalSetup: ['./scripts/temp-dirs.ts'],
  },
});

import { readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Fixture caches the suites keep on purpose between runs (built images take minutes to make).
 */
const KEEP = new Set(['krill-fixtures', 'krill-bench']);

const krillEntries = () => new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('krill-') && !KEEP.has(n)));

/**
 * vitest global setup: what the suites leave in the temp directory (`krill-*` working
 * directories: piece files, stores, containerd roots) is removed when the run ends. Many tests
 * move hundreds of MB; left behind, a few runs of the suite filled this machine's disk, and the
 * next run failed in ways that had nothing to do with the code. Entries that were there before
 * the run are left alone.
 */
export default function setup(): () => void {
  const before = krillEntries();
  return () => {
    for (const name of krillEntries()) {
      if (!before.has(name)) rmSync(join(tmpdir(), name), { recursive: true, force: true, maxRetries: 2 });
    }
  };
}

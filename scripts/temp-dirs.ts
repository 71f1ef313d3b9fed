import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Fixture caches the suites keep on purpose between runs (built images take minutes to make).
 */
const KEEP = new Set(['krill-fixtures', 'krill-bench']);
/** Marks a test run under way on this machine: `krill-run-<pid>`. */
const RUN_MARK = /^krill-run-(\d+)$/;

const krillEntries = () => new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('krill-') && !KEEP.has(n) && !RUN_MARK.test(n)));

/** Whether a process other than this one that marked a run is still alive. */
function otherRunAlive(): boolean {
  for (const name of readdirSync(tmpdir())) {
    const pid = Number(RUN_MARK.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      // That run ended without removing its mark (killed): not under way.
    }
  }
  return false;
}

/**
 * vitest global setup: what the suites leave in the temp directory (`krill-*` working
 * directories: piece files, stores, containerd roots) is removed when the run ends. Many tests
 * move hundreds of MB; left behind, a few runs of the suite filled this machine's disk, and the
 * next run failed in ways that had nothing to do with the code. Entries that were there before
 * the run are left alone, and so is everything while another run is under way on the machine:
 * its working directories are new too (a run of one test file during a full run deleted the
 * full run's directories under it, and two of its suites failed).
 */
export default function setup(): () => void {
  const before = krillEntries();
  const mark = join(tmpdir(), `krill-run-${process.pid}`);
  writeFileSync(mark, '');
  return () => {
    rmSync(mark, { force: true });
    if (otherRunAlive()) return;
    for (const name of krillEntries()) {
      if (!before.has(name)) rmSync(join(tmpdir(), name), { recursive: true, force: true, maxRetries: 2 });
    }
  };
}

import { readFileSync } from 'node:fs';

/**
 * The Node.js flags a launcher script runs with, read from its `#!/usr/bin/env -S node --flag ...`
 * line, so that a process started as `node <launcher>` (devcluster's components, the test
 * harness) runs exactly as the `krill` command does. Throws when the first line is not of that
 * form.
 */
export function launcherNodeArgs(launcher: string): string[] {
  const first = readFileSync(launcher, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S node((?: --[a-z0-9-]+(?:=[^\s]+)?)*)\s*$/.exec(first);
  if (!m) throw new Error(`${launcher}: first line ${JSON.stringify(first)} is not "#!/usr/bin/env -S node [--flag ...]"`);
  return m[1]!.trim().split(/\s+/).filter((s) => s !== '');
}

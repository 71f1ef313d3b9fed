import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { launcherNodeArgs } from './launcher-args.js';

describe('launcher node args', () => {
  it("reads krill's launcher flags from its #! line", () => {
    const bin = fileURLToPath(new URL('../../cli/bin/krill.js', import.meta.url));
    expect(launcherNodeArgs(bin)).toEqual(['--initial-old-space-size=64', '--max-semi-space-size=4']);
  });

  it('reads none from a bare env -S node line, and refuses any other first line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'krill-launcher-'));
    writeFileSync(join(dir, 'bare'), '#!/usr/bin/env -S node\n');
    expect(launcherNodeArgs(join(dir, 'bare'))).toEqual([]);
    writeFileSync(join(dir, 'plain'), '#!/usr/bin/env node\n');
    expect(() => launcherNodeArgs(join(dir, 'plain'))).toThrow(/is not "#!\/usr\/bin\/env -S node/);
  });
});

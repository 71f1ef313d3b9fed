import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { smallImage } from './fixtures/oci-image.js';
import { startCluster, type Cluster } from './harness/cluster.js';
import { copy, inspect } from './harness/skopeo.js';

let cluster: Cluster;
let work: string;
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'krill-tags-'));
  cluster = await startCluster({ dir: join(work, 'cluster') });
});
afterAll(async () => {
  await cluster?.close();
  // Copies of the images and the servers' stores: hundreds of MB per run.
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('mutable tags (acceptance 6)', () => {
  it('push v1, push v2 under the same tag, the next pull gets v2', async () => {
    const v1 = await smallImage(join(work, 'v1'), 'latest', 'tag-v1');
    const v2 = await smallImage(join(work, 'v2'), 'latest', 'tag-v2');
    expect(v1.manifest.digest).not.toBe(v2.manifest.digest);
    const ref = `docker://${cluster.proxyHost}/team/app:latest`;
    await copy(`oci:${v1.dir}:latest`, ref);
    expect((await inspect(ref))['Digest']).toBe(v1.manifest.digest);
    await copy(`oci:${v2.dir}:latest`, ref);
    expect((await inspect(ref))['Digest']).toBe(v2.manifest.digest);
    const out = join(work, 'pulled');
    await copy(ref, `oci:${out}:latest`);
    expect((await inspect(`oci:${out}:latest`))['Digest']).toBe(v2.manifest.digest);
    // The old manifest stays reachable by digest.
    expect((await inspect(`docker://${cluster.proxyHost}/team/app@${v1.manifest.digest}`))['Digest']).toBe(v1.manifest.digest);
  });
});

import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigImage, twoPlatformIndex, type BuiltImage } from './fixtures/oci-image.js';
import { startCluster, type Cluster } from './harness/cluster.js';
import { copy, inspect } from './harness/skopeo.js';

const fixtures = join(tmpdir(), 'krill-fixtures');
let cluster: Cluster;
let work: string;
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'krill-e2e-'));
  cluster = await startCluster({ dir: join(work, 'cluster') });
});
afterAll(async () => cluster?.close());

async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** Every blob of the original is in the copied-out layout, byte for byte. */
async function expectSameBlobs(img: BuiltImage, outDir: string): Promise<void> {
  for (const b of img.blobs) expect(await fileDigest(join(outDir, 'blobs', 'sha256', b.digest.slice(7)))).toBe(b.digest);
}

describe('push and pull through krill with skopeo (acceptance 1)', () => {
  it('a 3-layer image with a 105 MB layer survives push and pull with every digest intact', async () => {
    const img = await bigImage(fixtures);
    expect(Math.max(...img.blobs.map((b) => b.size))).toBeGreaterThanOrEqual(100_000_000);
    const ref = `docker://${cluster.proxyHost}/acceptance/big:v1`;
    await copy(`oci:${img.dir}:v1`, ref);
    const raw = await inspect(ref, 'raw');
    expect(raw).toEqual(JSON.parse(readFileSync(join(img.dir, 'blobs', 'sha256', img.manifest.digest.slice(7)), 'utf8')));
    expect(await inspect(ref, 'config')).toEqual(JSON.parse(readFileSync(join(img.dir, 'blobs', 'sha256', img.blobs[0]!.digest.slice(7)), 'utf8')));
    const info = await inspect(ref);
    expect(info['Digest']).toBe(img.manifest.digest);
    expect(info['Layers']).toEqual(img.blobs.slice(1, 4).map((b) => b.digest));
    const out = join(work, 'big-out');
    await copy(ref, `oci:${out}:v1`);
    await expectSameBlobs(img, out);
    expect(await inspect(`oci:${out}:v1`)).toMatchObject({ Digest: img.manifest.digest });
  });

  it('a two-platform index keeps its index and both images', async () => {
    const img = await twoPlatformIndex(fixtures);
    const ref = `docker://${cluster.proxyHost}/acceptance/multi:v1`;
    await copy(`oci:${img.dir}:v1`, ref, { all: true });
    const raw = await inspect(ref, 'raw') as { manifests: Array<{ digest: string; platform: { architecture: string } }> };
    expect(raw.manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
    const out = join(work, 'multi-out');
    await copy(ref, `oci:${out}:v1`, { all: true });
    await expectSameBlobs(img, out);
    expect(await inspect(`oci:${out}:v1`, 'raw')).toEqual(raw);
  });
});

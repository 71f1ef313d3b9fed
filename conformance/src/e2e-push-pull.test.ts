import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Descriptor } from '@krill/lib';
import { bigImage, twoPlatformIndex, type BuiltImage } from './fixtures/oci-image.js';
import { startCluster, type Cluster } from './harness/cluster.js';
import { copy, inspect, inspectRaw } from './harness/skopeo.js';

const fixtures = join(tmpdir(), 'krill-fixtures');
let cluster: Cluster;
let work: string;
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'krill-e2e-'));
  cluster = await startCluster({ dir: join(work, 'cluster') });
});
afterAll(async () => {
  await cluster?.close();
  // Copies of the images and the servers' stores: hundreds of MB per run.
  if (work) rmSync(work, { recursive: true, force: true });
});

async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** Every blob of the original is in the copied-out layout, byte for byte. */
async function expectSameBlobs(img: BuiltImage, outDir: string): Promise<void> {
  for (const b of img.blobs) expect(await fileDigest(join(outDir, 'blobs', 'sha256', b.digest.slice(7)))).toBe(b.digest);
}

/** The exact bytes of one of the fixture's blobs. */
const blobBytes = (img: BuiltImage, d: Descriptor) => readFileSync(join(img.dir, 'blobs', 'sha256', d.digest.slice(7)));

describe('push and pull through krill with skopeo (acceptance 1)', () => {
  it('a 3-layer image with a 105 MB layer survives push and pull with every digest intact', async () => {
    const img = await bigImage(fixtures);
    const { config, layers } = img.images[0]!;
    expect(layers).toHaveLength(3);
    expect(Math.max(...layers.map((b) => b.size))).toBeGreaterThanOrEqual(100_000_000);
    const ref = `docker://${cluster.proxyHost}/acceptance/big:v1`;
    await copy(`oci:${img.dir}:v1`, ref);
    // The proxy serves the manifest and the config byte for byte as pushed.
    expect((await inspectRaw(ref)).equals(blobBytes(img, img.manifest))).toBe(true);
    expect((await inspectRaw(ref, 'config')).equals(blobBytes(img, config))).toBe(true);
    const info = await inspect(ref);
    expect(info['Digest']).toBe(img.manifest.digest);
    expect(info['Layers']).toEqual(layers.map((b) => b.digest));
    const out = join(work, 'big-out');
    await copy(ref, `oci:${out}:v1`);
    await expectSameBlobs(img, out);
    expect(await inspect(`oci:${out}:v1`)).toMatchObject({ Digest: img.manifest.digest });
  });

  it('a two-platform index keeps its index and both images', async () => {
    const img = await twoPlatformIndex(fixtures);
    const ref = `docker://${cluster.proxyHost}/acceptance/multi:v1`;
    await copy(`oci:${img.dir}:v1`, ref, { all: true });
    expect((await inspectRaw(ref)).equals(blobBytes(img, img.manifest))).toBe(true);
    for (const i of img.images) {
      // Each platform's image, chosen from the index the proxy serves.
      const got = await inspect(ref, 'image', { globalArgs: ['--override-arch', i.platform.architecture] });
      expect([got['Architecture'], got['Layers']]).toEqual([i.platform.architecture, i.layers.map((l) => l.digest)]);
      expect((await inspectRaw(`docker://${cluster.proxyHost}/acceptance/multi@${i.manifest.digest}`)).equals(blobBytes(img, i.manifest))).toBe(true);
    }
    const out = join(work, 'multi-out');
    await copy(ref, `oci:${out}:v1`, { all: true });
    await expectSameBlobs(img, out);
    expect((await inspectRaw(`oci:${out}:v1`)).equals(blobBytes(img, img.manifest))).toBe(true);
  });
});

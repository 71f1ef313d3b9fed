import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBuildIndexClient, type UpstreamCredentials } from '@krill/cluster-services';
import { silentLogger } from '@krill/lib';
import { buildImage, type BuiltImage } from './fixtures/oci-image.js';
import { startCluster } from './harness/cluster.js';
import { startDockerRegistry, type DockerRegistry } from './harness/docker-registry.js';
import { SkopeoError, copy, inspect } from './harness/skopeo.js';

const user = 'alice';
const password = 'correct horse';
let work: string;
let upstream: DockerRegistry;
let image: BuiltImage;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'krill-pull-through-'));
  upstream = await startDockerRegistry({ dir: join(work, 'upstream'), htpasswd: { user, password } });
  image = await buildImage({
    dir: join(work, 'image'), tag: 'v1', seed: 'pull-through',
    layers: [{ files: [{ path: 'a.bin', size: 300_000 }] }, { files: [{ path: 'b.bin', size: 2_000_000 }] }],
  });
  // The image exists only upstream: pushed there directly, with credentials.
  await copy(`oci:${image.dir}:v1`, `docker://${upstream.host}/team/app:v1`, { destCreds: `${user}:${password}` });
});
afterAll(async () => {
  await upstream?.close();
  // Copies of the images and the servers' stores: hundreds of MB per run.
  if (work) rmSync(work, { recursive: true, force: true });
});

function clusterFor(dir: string, pass: string) {
  return startCluster({
    dir,
    registries: { 'upstream.local': { endpoints: [upstream.url], username: user, password: pass } },
    backends: [{ namespace: '^upstream\\.local/', registry: {} }, { namespace: '.*', fs: { root: join(dir, 'backend') } }],
    pullThrough: [{ namespace: '^upstream\\.local/', tagTtlSeconds: 60 }],
  });
}

describe('pull-through from an upstream registry with basic auth (acceptance 2)', () => {
  it('pulls an image that exists only upstream through the proxy, digests intact', async () => {
    const cluster = await clusterFor(join(work, 'ok'), password);
    try {
      const ref = `docker://${cluster.proxyHost}/upstream.local/team/app:v1`;
      expect((await inspect(ref))['Digest']).toBe(image.manifest.digest);
      const out = join(work, 'out');
      await copy(ref, `oci:${out}:v1`);
      for (const b of image.blobs) {
        const data = readFileSync(join(out, 'blobs', 'sha256', b.digest.slice(7)));
        expect(`sha256:${createHash('sha256').update(data).digest('hex')}`).toBe(b.digest);
      }
      // The blobs now sit on the origins: a second pull is served without asking upstream for them.
      const layer = image.blobs[1]!;
      expect(await cluster.originClient.stat('upstream.local/team/app', layer.digest)).toEqual({ size: layer.size });
    } finally {
      await cluster.close();
    }
  });

  it('a wrong upstream password gives a clear authentication error', async () => {
    const cluster = await clusterFor(join(work, 'bad'), 'wrong password');
    try {
      const err = await copy(`docker://${cluster.proxyHost}/upstream.local/team/app:v1`, `oci:${join(work, 'never')}:v1`).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(SkopeoError);
      const stderr = (err as SkopeoError).stderr;
      expect(stderr).toMatch(/unauthorized/i);
      // skopeo quotes the message, escaping its double quotes.
      expect(stderr.replace(/\\"/g, '"')).toContain(`upstream registry upstream.local (${upstream.url}) rejected the credentials of user "alice"`);
      expect(stderr).not.toContain('wrong password');
    } finally {
      await cluster.close();
    }
  });

  it('a build-index with the right configured credentials still refuses a lookup with a caller\'s wrong password', async () => {
    const cluster = await clusterFor(join(work, 'caller'), password);
    const client = createBuildIndexClient({ urls: [cluster.buildIndexUrl], logger: silentLogger() });
    try {
      const lookup = (credentials?: UpstreamCredentials) => client.getTag('upstream.local/team/app', 'v1', undefined, credentials ? { credentials } : {});
      // The configured credentials answer lookups without the caller's, and that answer is cached...
      expect((await lookup()).digest).toBe(image.manifest.digest);
      // ...but a caller's wrong password is put to the upstream registry, which refuses it.
      const err = await lookup({ username: user, password: 'caller wrong password' }).then(() => undefined, (e: Error & { code?: string; category?: string }) => e);
      expect(err).toMatchObject({ category: 'Unauthenticated', code: 'ERR_UPSTREAM_UNAUTHORIZED' });
      expect(err!.message).toContain(`upstream registry upstream.local (${upstream.url}) rejected the caller's credentials for user "alice"`);
      expect(err!.message).not.toContain('caller wrong password');
      expect((await lookup({ username: user, password })).digest).toBe(image.manifest.digest);
    } finally {
      await client.close();
      await cluster.close();
    }
  });
});

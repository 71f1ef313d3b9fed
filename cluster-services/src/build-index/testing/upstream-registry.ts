import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MediaType, sha256, type Digest } from '@krill/lib';

/** A running registry, as conformance's startDockerRegistry gives one. */
export interface RunningRegistry {
  url: string;
  close(): Promise<void>;
}

/**
 * Debian's docker-registry (CNCF distribution), started by the test with its files under `dir`
 * behind htpasswd basic auth for `user`, as the pull-through upstream of the build-index's
 * tests, with helpers that push to it and change who may use it. `close` stops it (again is a
 * no-op). The test starts it (conformance/src/harness/docker-registry.ts), so that this file,
 * compiled with the workspace, does not reach into conformance.
 */
export interface UpstreamRegistry {
  url: string;
  /** Pushes a one-layer image to `repository` under `tag` and returns its manifest's digest. */
  push(repository: string, tag: string, seed: string): Promise<Digest>;
  /** Replaces the htpasswd file; distribution re-reads it when it changes. */
  setUsers(users: Record<string, string>): void;
  close(): Promise<void>;
}

export function upstreamRegistry(registry: RunningRegistry, o: { dir: string; user: string; password: string }): UpstreamRegistry {
  let users: Record<string, string> = { [o.user]: o.password };
  let up = true;
  const headers = () => ({ authorization: `Basic ${Buffer.from(`${o.user}:${users[o.user]}`).toString('base64')}` });

  async function expectStatus(res: Response, status: number, what: string): Promise<Response> {
    if (res.status !== status) throw new Error(`upstream ${what}: HTTP ${res.status} ${await res.text()}`);
    return res;
  }

  async function blob(repository: string, bytes: string): Promise<{ digest: Digest; size: number }> {
    const digest = sha256(bytes);
    const start = await expectStatus(await fetch(`${registry.url}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: headers() }), 202, 'upload start');
    const location = new URL(start.headers.get('location')!, registry.url);
    location.searchParams.set('digest', digest);
    await expectStatus(await fetch(location, { method: 'PUT', headers: { ...headers(), 'content-type': 'application/octet-stream' }, body: bytes }), 201, 'upload');
    return { digest, size: Buffer.byteLength(bytes) };
  }

  return {
    url: registry.url,
    async push(repository, tag, seed) {
      const config = await blob(repository, `{"seed":"${seed}"}`);
      const layer = await blob(repository, `layer ${seed}`);
      const manifest = JSON.stringify({
        schemaVersion: 2, mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, ...config }, layers: [{ mediaType: MediaType.OciLayerGzip, ...layer }],
      });
      const put = await fetch(`${registry.url}/v2/${repository}/manifests/${tag}`, { method: 'PUT', headers: { ...headers(), 'content-type': MediaType.OciManifest }, body: manifest });
      await expectStatus(put, 201, `manifest ${tag}`);
      return sha256(manifest);
    },
    setUsers(next) {
      users = next;
      const lines = Object.entries(next).map(([u, p]) => execFileSync('htpasswd', ['-Bbn', u, p]).toString().trim());
      writeFileSync(join(o.dir, 'htpasswd'), `${lines.join('\n')}\n`);
    },
    async close() {
      if (!up) return;
      up = false;
      await registry.close();
    },
  };
}

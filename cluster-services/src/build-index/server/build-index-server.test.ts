import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MediaType, sha256, silentLogger, validateConfig, type Digest } from '@krill/lib';
import type { BuildIndexClient } from '../client/build-index-client.js';
import { createBuildIndexClient } from '../client/http-build-index-client.js';
import { buildIndexConfigSchema, type BuildIndexConfig } from '../config.js';
import { startOriginFixture, type OriginFixture } from '../testing/origin-fixture.js';
import { startBuildIndex } from './build-index-server.js';

const logger = silentLogger();
const repo = 'team/app';
let fx: OriginFixture;
let closers: Array<() => Promise<void>>;

beforeEach(async () => {
  fx = await startOriginFixture({ logger });
  closers = [() => fx.close()];
});
afterEach(async () => {
  for (const c of closers.reverse()) await c();
});

/** A build-index over the fixture's origin, making its own origin client as `krill build-index` does. */
async function start(extra: Partial<BuildIndexConfig> = {}): Promise<{ client: BuildIndexClient; url: string }> {
  const bi = await startBuildIndex(validateConfig<BuildIndexConfig>(buildIndexConfigSchema, {
    listen: { port: 0 }, db: join(fx.dir, 'index', 'tags.db'), origins: { urls: [fx.origin.url] }, ...extra,
  }), { logger });
  const client = createBuildIndexClient({ urls: [bi.url], logger });
  closers.push(() => bi.close(), () => client.close());
  return { client, url: bi.url };
}

const failure = (p: Promise<unknown>) => p.then(
  () => ({ code: 'resolved', message: '' }),
  (e: { code?: string; message: string }) => ({ code: e.code ?? 'no code', message: e.message }),
);
const code = async (p: Promise<unknown>) => (await failure(p)).code;

describe('build-index server and client', () => {
  it('makes a re-pushed tag visible to the next reader at once (v1, then v2: v2)', async () => {
    const { client, url } = await start();
    const other = createBuildIndexClient({ urls: [url], logger });
    closers.push(() => other.close());
    const v1 = await fx.image(repo, 'v1');
    const v2 = await fx.image(repo, 'v2');
    await client.putTag(repo, 'latest', v1.manifest);
    expect(await other.getTag(repo, 'latest')).toEqual({ digest: v1.manifest, mediaType: MediaType.OciManifest });
    await client.putTag(repo, 'latest', v2.manifest);
    expect((await other.getTag(repo, 'latest')).digest).toBe(v2.manifest);
    expect((await client.getTag(repo, 'latest')).digest).toBe(v2.manifest);
    expect(await client.listTags(repo)).toEqual({ items: ['latest'] });
  });

  it('pages tags and repositories exactly, 100 by default', async () => {
    const { client } = await start();
    const img = await fx.image(repo, 'p');
    for (const t of ['e', 'c', 'a', 'd', 'b']) await client.putTag(repo, t, img.manifest);
    await client.putTag('team/other', 'x', (await fx.image('team/other', 'o')).manifest);
    const p1 = await client.listTags(repo, { limit: 2 });
    expect(p1).toEqual({ items: ['a', 'b'], next: 'b' });
    const p2 = await client.listTags(repo, { limit: 2, last: p1.next! });
    expect(p2).toEqual({ items: ['c', 'd'], next: 'd' });
    expect(await client.listTags(repo, { limit: 2, last: p2.next! })).toEqual({ items: ['e'] });
    expect(await client.listTags(repo, { limit: 5 })).toEqual({ items: ['a', 'b', 'c', 'd', 'e'] });
    expect(await client.listTags('team/none')).toEqual({ items: [] });
    expect(await client.listRepositories({ limit: 1 })).toEqual({ items: [repo], next: repo });
    expect(await client.listRepositories({ last: repo })).toEqual({ items: ['team/other'] });

    for (let i = 0; i < 100; i++) await client.putTag('team/many', `t${String(i).padStart(3, '0')}`, img.manifest);
    await client.putTag('team/many', 'z', img.manifest);
    const first = await client.listTags('team/many');
    expect(first.items).toHaveLength(100);
    expect(first.next).toBe('t099');
    expect(await client.listTags('team/many', { last: first.next! })).toEqual({ items: ['z'] });
  });

  it('rejects bad repository names, tags, digests and limits with their codes, and stores nothing', async () => {
    const { client, url } = await start();
    const img = await fx.image(repo, 'ok');
    for (const bad of ['..', 'a/../b', '../etc', 'UPPER', 'Team/app', '', '-x', 'a//b', 'a/', '/a', 'a b', 'x'.repeat(256)]) {
      expect(await code(client.putTag(bad, 'v1', img.manifest)), bad).toBe('ERR_NAME_INVALID');
      expect(await code(client.getTag(bad, 'v1')), bad).toBe('ERR_NAME_INVALID');
      expect(await code(client.listTags(bad)), bad).toBe('ERR_NAME_INVALID');
    }
    for (const bad of ['.bad', 'a:b', '', '-x', 'x'.repeat(129), 'a/b']) {
      expect(await code(client.putTag(repo, bad, img.manifest)), bad).toBe('ERR_TAG_INVALID');
      expect(await code(client.getTag(repo, bad)), bad).toBe('ERR_TAG_INVALID');
    }
    for (const bad of ['sha256:zz', `sha256:${'A'.repeat(64)}`, `${img.manifest}0`, '', img.manifest.slice(7)]) {
      expect(await code(client.putTag(repo, 'v1', bad as Digest)), bad).toBe('ERR_DIGEST_INVALID');
    }
    expect(await code(client.putTag(repo, 'v1', `md5:${'a'.repeat(32)}` as Digest))).toBe('ERR_DIGEST_UNSUPPORTED');
    for (const limit of [0, -1, 1.5]) expect(await code(client.listTags(repo, { limit })), String(limit)).toBe('ERR_LIMIT_INVALID');
    const notJson = await fetch(`${url}/tags?repo=${encodeURIComponent(repo)}&tag=v1`, { method: 'PUT', body: 'not json', headers: { 'content-type': 'application/json' } });
    expect(notJson.status).toBe(400);
    const noDigest = await fetch(`${url}/tags?repo=${encodeURIComponent(repo)}&tag=v1`, { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } });
    expect([noDigest.status, (await noDigest.json() as { code: string }).code]).toEqual([400, 'ERR_DIGEST_INVALID']);
    const twice = await fetch(`${url}/tags?repo=${encodeURIComponent(repo)}&repo=team/b&tag=v1`);
    expect([twice.status, (await twice.json() as { code: string }).code]).toEqual([400, 'ERR_QUERY_INVALID']);
    expect(await client.listRepositories()).toEqual({ items: [] });
  });

  it('refuses a tag whose manifest, config or layer is not on the origins, naming the digest, and stores nothing', async () => {
    const { client, url } = await start();
    const noConfig = await fx.image(repo, 'no-config', { skip: ['config'] });
    const noLayer = await fx.image(repo, 'no-layer', { skip: ['layer'] });
    const absent = sha256('a manifest nobody pushed');
    for (const [digest, named] of [[noConfig.manifest, noConfig.config], [noLayer.manifest, noLayer.layer], [absent, absent]] as const) {
      const err = await failure(client.putTag(repo, 'v1', digest));
      expect(err.code).toBe('ERR_TAG_DEPENDENCY_MISSING');
      // The missing digest comes first: the proxy reports it as MANIFEST_BLOB_UNKNOWN's detail.
      expect(/sha256:[a-f0-9]{64}/.exec(err.message)?.[0]).toBe(named);
    }
    expect(await code(client.getTag(repo, 'v1'))).toBe('ERR_TAG_NOT_FOUND');
    expect(await client.listRepositories()).toEqual({ items: [] });

    // A refused re-push leaves the tag where it was.
    const good = await fx.image(repo, 'good');
    await client.putTag(repo, 'v1', good.manifest);
    expect(await code(client.putTag(repo, 'v1', noLayer.manifest))).toBe('ERR_TAG_DEPENDENCY_MISSING');
    expect((await client.getTag(repo, 'v1')).digest).toBe(good.manifest);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/krill_build_index_tag_puts_total\{result="dependency_missing"[^}]*\} 4/);
    expect(metrics).toMatch(/krill_build_index_tag_puts_total\{result="ok"[^}]*\} 1/);
  });

  it('checks every child of an index and what the children reference', async () => {
    const { client } = await start();
    const amd64 = await fx.image(repo, 'amd64');
    const arm64 = await fx.image(repo, 'arm64', { skip: ['layer'] });
    const good = await fx.index(repo, [amd64.manifest]);
    await client.putTag(repo, 'multi', good);
    expect(await client.getTag(repo, 'multi')).toEqual({ digest: good, mediaType: MediaType.OciIndex });

    const missingChild = sha256('arm64 manifest never pushed');
    const e1 = await failure(client.putTag(repo, 'multi', await fx.index(repo, [amd64.manifest, missingChild])));
    expect(e1.code).toBe('ERR_TAG_DEPENDENCY_MISSING');
    expect(e1.message).toContain(missingChild);
    const e2 = await failure(client.putTag(repo, 'multi', await fx.index(repo, [amd64.manifest, arm64.manifest])));
    expect(e2.code).toBe('ERR_TAG_DEPENDENCY_MISSING');
    expect(e2.message).toContain(arm64.layer);
    expect((await client.getTag(repo, 'multi')).digest).toBe(good);
  });

  it('deletes a tag, answers /ready and counts gets', async () => {
    const { client, url } = await start();
    await client.putTag(repo, 'v1', (await fx.image(repo, 'd')).manifest);
    await client.getTag(repo, 'v1');
    const target = `${url}/tags?repo=${encodeURIComponent(repo)}&tag=v1`;
    expect((await fetch(target, { method: 'DELETE' })).status).toBe(204);
    const again = await fetch(target, { method: 'DELETE' });
    expect([again.status, (await again.json() as { code: string }).code]).toEqual([404, 'ERR_TAG_NOT_FOUND']);
    expect(await code(client.getTag(repo, 'v1'))).toBe('ERR_TAG_NOT_FOUND');
    expect((await fetch(`${url}/ready`)).status).toBe(200);
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/krill_build_index_tag_gets_total\{source="local"[^}]*\} 1/);
  });

  it('keeps tags across a restart on the same database', async () => {
    const first = await start();
    const img = await fx.image(repo, 'r');
    await first.client.putTag(repo, 'v1', img.manifest);
    for (const c of closers.splice(1).reverse()) await c();
    const second = await start();
    expect((await second.client.getTag(repo, 'v1')).digest).toBe(img.manifest);
  });

  it('fails to start on a pull-through rule that is not a regular expression, naming the key', async () => {
    const err = await failure(start({ pullThrough: [{ namespace: '^docker\\.io/', tagTtlSeconds: 1 }, { namespace: '([', tagTtlSeconds: 1 }] }));
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.message).toContain('pullThrough.1.namespace');
  });
});

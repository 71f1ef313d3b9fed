import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MediaType, sha256, silentLogger, validateConfig, type Digest } from '@krill/lib';
import { createOriginClient, originConfigSchema, startOrigin, type OriginClient, type OriginConfig, type RunningOrigin } from '../origin/index.js';
import { createBuildIndexClient } from './client/http-build-index-client.js';
import type { BuildIndexClient } from './client/build-index-client.js';
import { buildIndexConfigSchema, type BuildIndexConfig } from './config.js';
import { startBuildIndex } from './server/build-index-server.js';

const logger = silentLogger();
let dir: string;
let origin: RunningOrigin;
let origins: OriginClient;
let closers: Array<() => Promise<void>> = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'krill-build-index-'));
  origin = await startOrigin(validateConfig<OriginConfig>(originConfigSchema, { listen: { port: 0 }, store: { dir: join(dir, 'origin') } }), { logger });
  origins = createOriginClient({ origins: [origin.url], logger });
  closers = [() => origin.close(), () => origins.close()];
});
afterEach(async () => {
  for (const c of closers.reverse()) await c();
});

async function start(extra: Partial<BuildIndexConfig> = {}): Promise<{ client: BuildIndexClient; url: string }> {
  const bi = await startBuildIndex(validateConfig<BuildIndexConfig>(buildIndexConfigSchema, {
    listen: { port: 0 }, db: join(dir, 'tags.db'), origins: { urls: [origin.url] }, ...extra,
  }), { logger });
  const client = createBuildIndexClient({ urls: [bi.url], logger });
  closers.push(() => bi.close(), () => client.close());
  return { client, url: bi.url };
}

async function put(bytes: Buffer | string): Promise<Digest> {
  const b = Buffer.from(bytes);
  const d = sha256(b);
  await origins.upload('team/app', d, { size: b.length, open: () => Readable.from([b]) });
  return d;
}

/** An image manifest whose config and layer are on the origin (or not, with `missing`). */
async function image(seed: string, missing = false): Promise<{ digest: Digest; layer: Digest }> {
  const config = missing ? sha256(`${seed}-config`) : await put(`${seed}-config`);
  const layer = await put(`${seed}-layer`);
  const m = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: config, size: 10 }, layers: [{ mediaType: MediaType.OciLayer, digest: layer, size: 10 }] });
  return { digest: await put(m), layer };
}

const code = (p: Promise<unknown>) => p.then(() => undefined, (e: { code?: string }) => e.code);

describe('build-index', () => {
  it('makes a re-pushed tag visible to the next reader at once', async () => {
    const { client } = await start();
    const v1 = await image('v1');
    const v2 = await image('v2');
    await client.putTag('team/app', 'latest', v1.digest);
    expect((await client.getTag('team/app', 'latest')).digest).toBe(v1.digest);
    await client.putTag('team/app', 'latest', v2.digest);
    expect((await client.getTag('team/app', 'latest')).digest).toBe(v2.digest);
  });

  it('pages tags and repositories exactly', async () => {
    const { client } = await start();
    const img = await image('p');
    for (const t of ['a', 'b', 'c', 'd', 'e']) await client.putTag('team/app', t, img.digest);
    await client.putTag('team/other', 'x', img.digest);
    const p1 = await client.listTags('team/app', { limit: 2 });
    expect(p1).toEqual({ items: ['a', 'b'], next: 'b' });
    const p2 = await client.listTags('team/app', { limit: 2, last: p1.next! });
    expect(p2).toEqual({ items: ['c', 'd'], next: 'd' });
    expect(await client.listTags('team/app', { limit: 2, last: p2.next! })).toEqual({ items: ['e'] });
    expect(await client.listRepositories({ limit: 1 })).toEqual({ items: ['team/app'], next: 'team/app' });
    expect(await client.listRepositories({ last: 'team/app' })).toEqual({ items: ['team/other'] });
  });

  it('refuses a tag whose manifest or blobs are not on the origins, naming the digest, and stores nothing', async () => {
    const { client } = await start();
    const broken = await image('broken', true);
    const err = await client.putTag('team/app', 'v1', broken.digest).catch((e: Error & { code?: string }) => e);
    expect(err).toMatchObject({ code: 'ERR_TAG_DEPENDENCY_MISSING' });
    expect(err!.message).toContain(sha256('broken-config'));
    expect(await code(client.getTag('team/app', 'v1'))).toBe('ERR_TAG_NOT_FOUND');
    expect(await code(client.putTag('team/app', 'v1', sha256('no manifest')))).toBe('ERR_TAG_DEPENDENCY_MISSING');
  });

  it('checks every child of an index', async () => {
    const { client } = await start();
    const good = await image('amd64');
    const index = (children: Digest[]) => put(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: children.map((d) => ({ mediaType: MediaType.OciManifest, digest: d, size: 10 })) }));
    await client.putTag('team/app', 'multi', await index([good.digest]));
    const err = await client.putTag('team/app', 'multi2', await index([good.digest, sha256('arm64 missing')])).catch((e: Error & { code?: string }) => e);
    expect(err).toMatchObject({ code: 'ERR_TAG_DEPENDENCY_MISSING' });
    expect(err!.message).toContain(sha256('arm64 missing'));
  });

  it('rejects bad names, tags and digests with their codes', async () => {
    const { client, url } = await start();
    const img = await image('ok');
    for (const bad of ['..', 'a/../b', 'UPPER', '', '-x']) expect(await code(client.putTag(bad, 'v1', img.digest))).toBe('ERR_NAME_INVALID');
    expect(await code(client.putTag('team/app', '.bad', img.digest))).toBe('ERR_TAG_INVALID');
    expect(await code(client.putTag('team/app', 'v1', 'sha256:zz' as Digest))).toBe('ERR_DIGEST_INVALID');
    expect(await code(client.getTag('team/app', 'a:b'))).toBe('ERR_TAG_INVALID');
    const res = await fetch(`${url}/tags?repo=team/app&tag=v1`, { method: 'PUT', body: 'not json', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(await code(client.listTags('team/app', { limit: 0 }))).toBe('ERR_LIMIT_INVALID');
  });
});

describe('pull-through tags', () => {
  let upstream: FastifyInstance;
  let current: Digest;
  let mode: 'up' | 'down' | 'unauthorized';
  beforeEach(async () => {
    mode = 'up';
    current = sha256('upstream v1');
    upstream = Fastify();
    upstream.route({
      method: ['HEAD', 'GET'], url: '/v2/*', handler: async (req, reply) => {
        if (mode === 'down') return reply.code(503).send();
        if (mode === 'unauthorized') return reply.code(401).header('www-authenticate', 'Basic realm="test"').send();
        if (!req.url.endsWith('/manifests/v1')) return reply.code(404).send();
        return reply.header('docker-content-digest', current).header('content-type', MediaType.OciManifest).header('content-length', 10).code(200).send();
      },
    });
    await upstream.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => upstream.close());
  });

  const config = (ttl: number) => ({
    pullThrough: [{ namespace: '^upstream\\.local/', tagTtlSeconds: ttl }],
    registries: { 'upstream.local': { endpoints: [`http://127.0.0.1:${(upstream.server.address() as { port: number }).port}`] } },
  });

  it('caches an upstream answer for the TTL and then asks again', async () => {
    const { client } = await start(config(1));
    expect((await client.getTag('upstream.local/team/app', 'v1')).digest).toBe(sha256('upstream v1'));
    current = sha256('upstream v2');
    expect((await client.getTag('upstream.local/team/app', 'v1')).digest).toBe(sha256('upstream v1'));
    await new Promise((r) => setTimeout(r, 1100));
    expect((await client.getTag('upstream.local/team/app', 'v1')).digest).toBe(sha256('upstream v2'));
    expect(await code(client.getTag('upstream.local/team/app', 'v9'))).toBe('ERR_TAG_NOT_FOUND');
  });

  it('serves a stale answer only while upstream is unreachable, never over an auth failure', async () => {
    const { client, url } = await start(config(0));
    expect((await client.getTag('upstream.local/team/app', 'v1')).digest).toBe(current);
    mode = 'down';
    expect((await client.getTag('upstream.local/team/app', 'v1')).digest).toBe(current);
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/krill_build_index_pull_through_total\{result="stale"[^}]*\} 1/);
    mode = 'unauthorized';
    expect(await code(client.getTag('upstream.local/team/app', 'v1'))).toBe('ERR_UPSTREAM_UNAUTHORIZED');
  });
});

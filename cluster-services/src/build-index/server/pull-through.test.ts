import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MediaType, createLogger, silentLogger, validateConfig } from '@krill/lib';
import { startDockerRegistry } from '../../../../conformance/src/harness/docker-registry.js';
import type { BuildIndexClient } from '../client/build-index-client.js';
import { createBuildIndexClient } from '../client/http-build-index-client.js';
import { buildIndexConfigSchema, type BuildIndexConfig } from '../config.js';
import { startOriginFixture, type OriginFixture } from '../testing/origin-fixture.js';
import { upstreamRegistry, type UpstreamRegistry } from '../testing/upstream-registry.js';
import { startBuildIndex } from './build-index-server.js';

/**
 * Pull-through tag resolution against Debian's docker-registry (distribution) with htpasswd basic
 * auth, as a user would run it. The build-index's clock is the test's, so TTLs are exact.
 */
const user = 'alice';
const password = 'right-password';
const ttlSeconds = 300;
const upstreamRepo = 'team/app';
const repo = `upstream.local/${upstreamRepo}`;
let fx: OriginFixture;
let registry: UpstreamRegistry;
let clock: number;
let logLines: Array<{ level: number; msg: string; part?: string }>;
let closers: Array<() => Promise<void>>;

beforeEach(async () => {
  fx = await startOriginFixture({ logger: silentLogger() });
  closers = [() => fx.close()];
  const dir = join(fx.dir, 'upstream');
  registry = upstreamRegistry(await startDockerRegistry({ dir, htpasswd: { user, password } }), { dir, user, password });
  closers.push(() => registry.close());
  clock = Date.parse('2030-01-01T00:00:00Z');
  logLines = [];
});
afterEach(async () => {
  for (const c of closers.reverse()) await c();
});

async function start(ttl = ttlSeconds): Promise<{ client: BuildIndexClient; url: string }> {
  const capture = new Writable({ write(chunk: Buffer, _enc, done) { logLines.push(JSON.parse(chunk.toString())); done(); } });
  const bi = await startBuildIndex(validateConfig<BuildIndexConfig>(buildIndexConfigSchema, {
    listen: { port: 0 }, db: join(fx.dir, 'index', 'tags.db'), origins: { urls: [fx.origin.url] },
    pullThrough: [{ namespace: '^upstream\\.local/', tagTtlSeconds: ttl }],
    registries: { 'upstream.local': { endpoints: [registry.url], username: user, password } },
  }), { logger: createLogger({ name: 'build-index', level: 'warn', destination: capture }), now: () => clock });
  const client = createBuildIndexClient({ urls: [bi.url], logger: silentLogger() });
  closers.push(() => bi.close(), () => client.close());
  return { client, url: bi.url };
}

const pushUpstream = (tag: string, seed: string) => registry.push(upstreamRepo, tag, seed);
const stopRegistry = () => registry.close();

const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: { code?: string }) => e.code);
const metric = async (url: string, name: string) => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? 0 : Number(line.split(' ').pop());
};

describe('pull-through tags', () => {
  it('asks upstream, keeps the answer for the TTL, and sees a moved tag after it', async () => {
    const v1 = await pushUpstream('latest', 'v1');
    const { client, url } = await start();
    expect(await client.getTag(repo, 'latest')).toEqual({ digest: v1, mediaType: MediaType.OciManifest });
    const v2 = await pushUpstream('latest', 'v2');
    clock += ttlSeconds * 1000 - 1;
    expect((await client.getTag(repo, 'latest')).digest).toBe(v1);
    clock += 1;
    expect((await client.getTag(repo, 'latest')).digest).toBe(v2);
    expect(await metric(url, 'krill_build_index_upstream_resolutions_total{result="ok"')).toBe(2);
    expect(await metric(url, 'krill_build_index_tag_gets_total{source="cache"')).toBe(1);
  });

  it('serves a stale answer only while upstream is unreachable, and logs it', async () => {
    const v1 = await pushUpstream('v1', 'v1');
    const { client, url } = await start();
    expect((await client.getTag(repo, 'v1')).digest).toBe(v1);
    await stopRegistry();
    // Within the TTL the cached answer is used without asking anyone.
    expect((await client.getTag(repo, 'v1')).digest).toBe(v1);
    expect(logLines).toEqual([]);
    clock += ttlSeconds * 1000;
    expect((await client.getTag(repo, 'v1')).digest).toBe(v1);
    expect(await metric(url, 'krill_build_index_stale_served_total')).toBe(1);
    const stale = logLines.filter((l) => l.part === 'resolver');
    expect(stale).toHaveLength(1);
    expect(stale[0]).toMatchObject({ level: 40, ref: `${repo}:v1`, digest: v1, ageSeconds: ttlSeconds, msg: expect.stringContaining('serving the last answer') });
    // Nothing cached, nothing to serve: upstream's unavailability is the answer.
    expect(await code(client.getTag(repo, 'never-asked'))).toBe('ERR_UPSTREAM_UNAVAILABLE');
  });

  it('never serves the cache over an authentication failure', async () => {
    const v1 = await pushUpstream('v1', 'v1');
    const { client, url } = await start(0);
    expect((await client.getTag(repo, 'v1')).digest).toBe(v1);
    // distribution re-reads its htpasswd file when it changes: the build-index's password is now wrong.
    registry.setUsers({ [user]: 'another-password' });
    const err = await client.getTag(repo, 'v1').catch((e: { code?: string; message: string }) => e);
    expect(err).toMatchObject({ code: 'ERR_UPSTREAM_UNAUTHORIZED' });
    expect(err.message).toContain('upstream.local');
    expect(await metric(url, 'krill_build_index_stale_served_total')).toBe(0);
    expect(await metric(url, 'krill_build_index_upstream_resolutions_total{result="unauthenticated"')).toBe(1);
  });

  it('answers a tag upstream does not have as not found, and forgets a tag deleted upstream', async () => {
    const v1 = await pushUpstream('v1', 'v1');
    const { client } = await start(0);
    expect(await code(client.getTag(repo, 'v2'))).toBe('ERR_TAG_NOT_FOUND');
    expect((await client.getTag(repo, 'v1')).digest).toBe(v1);
    const auth = { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
    expect((await fetch(`${registry.url}/v2/${upstreamRepo}/manifests/${v1}`, { method: 'DELETE', headers: auth })).status).toBe(202);
    expect(await code(client.getTag(repo, 'v1'))).toBe('ERR_TAG_NOT_FOUND');
    // The deleted tag does not come back from the cache when upstream goes away.
    await stopRegistry();
    expect(await code(client.getTag(repo, 'v1'))).toBe('ERR_UPSTREAM_UNAVAILABLE');
  });

  it('refuses puts to a pull-through repository and keeps its answers out of the lists', async () => {
    await pushUpstream('v1', 'v1');
    const { client } = await start();
    const local = await fx.image(repo, 'local');
    expect(await code(client.putTag(repo, 'v1', local.manifest))).toBe('ERR_TAG_PULL_THROUGH');
    await client.getTag(repo, 'v1');
    expect(await client.listTags(repo)).toEqual({ items: [] });
    expect(await client.listRepositories()).toEqual({ items: [] });
    // Repositories outside the rules are local as ever.
    await client.putTag('team/app', 'v1', (await fx.image('team/app', 'x')).manifest);
    expect(await client.listRepositories()).toEqual({ items: ['team/app'] });
  });
});

import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createHttpService, createLogger, silentLogger, validateConfig, type Digest } from '@krill/lib';
import { startDockerRegistry } from '../../../../conformance/src/harness/docker-registry.js';
import { createRegistryClient, type UpstreamCredentials } from '../../upstream/index.js';
import type { BuildIndexClient } from '../client/build-index-client.js';
import { createBuildIndexClient } from '../client/http-build-index-client.js';
import { buildIndexConfigSchema, type BuildIndexConfig } from '../config.js';
import { CREDENTIALS_HEADER, formatCredentialsHeader } from '../credentials-header.js';
import { startOriginFixture, type OriginFixture } from '../testing/origin-fixture.js';
import { upstreamRegistry, type UpstreamRegistry } from '../testing/upstream-registry.js';
import { openTagStore } from '../store/tag-store.js';
import { startBuildIndex } from './build-index-server.js';
import { createBuildIndexMetrics } from './metrics.js';
import { createTagResolver } from './resolver.js';
import { registerBuildIndexRoutes } from './routes.js';

/**
 * Tag lookups carrying the caller's own registry credentials, against Debian's docker-registry
 * with htpasswd basic auth. Upstream questions are counted with the build-index's metrics; its
 * clock is the test's, so TTLs are exact.
 */
const alice = { username: 'alice', password: 'alice-right-password' };
const bob = { username: 'bob', password: 'bob-right-password' };
const ttlSeconds = 300;
const repo = 'upstream.local/team/app';
let fx: OriginFixture;
let registry: UpstreamRegistry;
let v1: Digest;
let clock: number;
let logText: string;
let closers: Array<() => Promise<void>>;

beforeEach(async () => {
  fx = await startOriginFixture({ logger: silentLogger() });
  closers = [() => fx.close()];
  const dir = join(fx.dir, 'upstream');
  registry = upstreamRegistry(await startDockerRegistry({ dir, htpasswd: { user: alice.username, password: alice.password } }), { dir, user: alice.username, password: alice.password });
  closers.push(() => registry.close());
  v1 = await registry.push('team/app', 'v1', 'v1');
  clock = Date.parse('2030-01-01T00:00:00Z');
  logText = '';
});
afterEach(async () => {
  for (const c of closers.reverse()) await c();
});

/** A build-index logging everything (trace) into logText, with or without configured upstream credentials. */
async function start(o: { configured?: UpstreamCredentials; ttl?: number } = {}): Promise<{ client: BuildIndexClient; url: string }> {
  const capture = new Writable({ write(chunk: Buffer, _enc, done) { logText += chunk.toString(); done(); } });
  const bi = await startBuildIndex(validateConfig<BuildIndexConfig>(buildIndexConfigSchema, {
    listen: { port: 0 }, db: join(fx.dir, 'index', 'tags.db'), origins: { urls: [fx.origin.url] },
    pullThrough: [{ namespace: '^upstream\\.local/', tagTtlSeconds: o.ttl ?? ttlSeconds }],
    registries: { 'upstream.local': { endpoints: [registry.url], ...(o.configured ?? {}) } },
  }), { logger: createLogger({ name: 'build-index', level: 'trace', destination: capture }), now: () => clock });
  const client = createBuildIndexClient({ urls: [bi.url], logger: silentLogger() });
  closers.push(() => bi.close(), () => client.close());
  return { client, url: bi.url };
}

const as = (credentials: UpstreamCredentials) => ({ credentials });
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: Error & { code?: string; category?: string }) => e);
const code = async (p: Promise<unknown>) => (await failure(p))?.code ?? 'resolved';
const metric = async (url: string, name: string) => {
  const line = (await (await fetch(`${url}/metrics`)).text()).split('\n').find((l) => l.startsWith(name));
  return line === undefined ? 0 : Number(line.split(' ').pop());
};
const upstreamAsked = (url: string, result: string) => metric(url, `krill_build_index_upstream_resolutions_total{result="${result}"`);

describe('pull-through tags with the caller\'s credentials', () => {
  it('resolves with the caller\'s credentials and answers the same ones from the cache within the TTL', async () => {
    const { client, url } = await start();
    expect((await client.getTag(repo, 'v1', undefined, as(alice))).digest).toBe(v1);
    expect((await client.getTag(repo, 'v1', undefined, as(alice))).digest).toBe(v1);
    expect(await upstreamAsked(url, 'ok')).toBe(1);
    expect(await metric(url, 'krill_build_index_tag_gets_total{source="cache"')).toBe(1);
    clock += ttlSeconds * 1000;
    expect((await client.getTag(repo, 'v1', undefined, as(alice))).digest).toBe(v1);
    expect(await upstreamAsked(url, 'ok')).toBe(2);
  });

  it('answers a wrong password with 401 Unauthenticated naming the user, never the password', async () => {
    const { client, url } = await start();
    const res = await fetch(`${url}/tags?repo=${encodeURIComponent(repo)}&tag=v1`, {
      headers: { [CREDENTIALS_HEADER]: formatCredentialsHeader({ username: 'alice', password: 'hunter2' }) },
    });
    expect(res.status).toBe(401);
    const body = (await res.json()) as { category: string; code: string; message: string };
    expect(body).toMatchObject({ category: 'Unauthenticated', code: 'ERR_UPSTREAM_UNAUTHORIZED' });
    expect(body.message).toContain(`upstream registry upstream.local (${registry.url}) rejected the caller's credentials for user "alice"`);
    expect(body.message).not.toContain('hunter2');
    const err = await failure(client.getTag(repo, 'v1', undefined, as({ username: 'alice', password: 'hunter2' })));
    expect(err).toMatchObject({ category: 'Unauthenticated', code: 'ERR_UPSTREAM_UNAUTHORIZED' });
    expect(err!.message).not.toContain('hunter2');
  });

  it('still asks upstream for a lookup with no or other credentials after a successful one', async () => {
    const { client, url } = await start();
    expect((await client.getTag(repo, 'v1', undefined, as(alice))).digest).toBe(v1);
    // No credentials configured, none given: upstream refuses anonymous access.
    expect(await code(client.getTag(repo, 'v1'))).toBe('ERR_UPSTREAM_UNAUTHORIZED');
    expect(await code(client.getTag(repo, 'v1', undefined, as({ ...alice, password: 'wrong' })))).toBe('ERR_UPSTREAM_UNAUTHORIZED');
    expect(await code(client.getTag(repo, 'v1', undefined, as(bob)))).toBe('ERR_UPSTREAM_UNAUTHORIZED');
    registry.setUsers({ [alice.username]: alice.password, [bob.username]: bob.password });
    expect((await client.getTag(repo, 'v1', undefined, as(bob))).digest).toBe(v1);
    expect(await upstreamAsked(url, 'ok')).toBe(2);
    expect(await upstreamAsked(url, 'unauthenticated')).toBe(3);
  });

  it('refuses a caller\'s wrong password although the configured credentials are right and their answer is fresh', async () => {
    const { client, url } = await start({ configured: alice });
    expect((await client.getTag(repo, 'v1')).digest).toBe(v1);
    expect(await code(client.getTag(repo, 'v1', undefined, as({ ...alice, password: 'wrong' })))).toBe('ERR_UPSTREAM_UNAUTHORIZED');
    // And the answer alice obtained with her own credentials does not answer lookups with none.
    expect((await client.getTag(repo, 'v1', undefined, as(alice))).digest).toBe(v1);
    expect((await client.getTag(repo, 'v1')).digest).toBe(v1);
    expect(await upstreamAsked(url, 'ok')).toBe(2);
    expect(await metric(url, 'krill_build_index_tag_gets_total{source="cache"')).toBe(1);
  });

  it('serves a stale answer only to the credentials that obtained it, and never once upstream refused them', async () => {
    registry.setUsers({ [alice.username]: alice.password, [bob.username]: bob.password });
    const { client, url } = await start();
    expect((await client.getTag(repo, 'v1', undefined, as(alice))).digest).toBe(v1);
    expect((await client.getTag(repo, 'v1', undefined, as(bob))).digest).toBe(v1);
    // Bob's password is changed upstream: his old one is refused and his cached answer dropped.
    registry.setUsers({ [alice.username]: alice.password, [bob.username]: 'bob-new-password' });
    clock += ttlSeconds * 1000;
    expect(await code(client.getTag(repo, 'v1', undefined, as(bob)))).toBe('ERR_UPSTREAM_UNAUTHORIZED');
    await registry.close();
    expect(await client.getTag(repo, 'v1', undefined, as(alice))).toMatchObject({ digest: v1 });
    expect(await metric(url, 'krill_build_index_stale_served_total')).toBe(1);
    expect(await code(client.getTag(repo, 'v1', undefined, as(bob)))).toBe('ERR_UPSTREAM_UNAVAILABLE');
    expect(await code(client.getTag(repo, 'v1', undefined, as({ username: 'carol', password: 'x' })))).toBe('ERR_UPSTREAM_UNAVAILABLE');
    expect(await code(client.getTag(repo, 'v1'))).toBe('ERR_UPSTREAM_UNAVAILABLE');
  });

  it('ignores the credentials for a local repository and refuses a malformed header', async () => {
    const { client, url } = await start();
    const local = await fx.image('team/app', 'local');
    await client.putTag('team/app', 'v1', local.manifest);
    expect((await client.getTag('team/app', 'v1', undefined, as({ ...alice, password: 'wrong' }))).digest).toBe(local.manifest);
    const res = await fetch(`${url}/tags?repo=team/app&tag=v1`, { headers: { [CREDENTIALS_HEADER]: 'Bearer not-basic-s3cr3t' } });
    expect(res.status).toBe(400);
    expect(await res.text()).not.toContain('s3cr3t');
    expect(await upstreamAsked(url, 'ok')).toBe(0);
  });

  it('never writes the credentials header to its log output', async () => {
    const { client, url } = await start({ configured: alice });
    const wrong = { ...alice, password: 'wrong-pass-7' };
    await client.getTag(repo, 'v1', undefined, as(alice));
    await failure(client.getTag(repo, 'v1', undefined, as(wrong)));
    await fetch(`${url}/tags?repo=${encodeURIComponent(repo)}&tag=v1`, { headers: { [CREDENTIALS_HEADER]: `Basic ${Buffer.from('nocolon-s3cr3t').toString('base64')}` } });
    await fetch(`${url}/no-such-route`, { headers: { [CREDENTIALS_HEADER]: formatCredentialsHeader(wrong) } });
    // Upstream gone, nothing cached for these: a 503 the build-index logs as a warning with its URL.
    await registry.close();
    await failure(client.getTag(repo, 'never-asked', undefined, as(wrong)));
    await new Promise((r) => setImmediate(r));
    expect(logText.match(/"msg":"request"/g)?.length).toBeGreaterThanOrEqual(5);
    expect(logText).toContain('request failed');
    for (const secret of [alice.password, wrong.password, 'nocolon-s3cr3t', formatCredentialsHeader(alice).slice(6), formatCredentialsHeader(wrong).slice(6)]) {
      expect(logText).not.toContain(secret);
    }
  });

  it('takes the header out of the request before any handler, or a log line it writes, can see it', async () => {
    const capture = new Writable({ write(chunk: Buffer, _enc, done) { logText += chunk.toString(); done(); } });
    const service = createHttpService({ name: 'build-index', logger: createLogger({ name: 'build-index', level: 'trace', destination: capture }) });
    const store = openTagStore({ path: join(fx.dir, 'routes', 'tags.db') });
    closers.push(async () => store.close(), () => service.close());
    const registryClient = createRegistryClient({ hosts: {}, logger: silentLogger() });
    const resolver = createTagResolver({ store, rules: [], registry: registryClient, logger: silentLogger(), metrics: createBuildIndexMetrics(new Registry()) });
    registerBuildIndexRoutes(service.app, { store, origins: fx.client, resolver, metrics: createBuildIndexMetrics(new Registry()) });
    // A route added later, as careless as can be: it logs and answers every header it got.
    service.app.get('/echo', async (req) => {
      req.log.info({ headers: req.headers, rawHeaders: req.raw.rawHeaders }, 'echo');
      return { headers: req.headers, rawHeaders: req.raw.rawHeaders };
    });
    const url = await service.listen('127.0.0.1', 0);
    const header = formatCredentialsHeader(alice);
    const echoed = await (await fetch(`${url}/echo`, { headers: { [CREDENTIALS_HEADER]: header } })).text();
    expect(logText).toContain('"msg":"echo"');
    for (const text of [echoed, logText]) {
      expect(text).not.toContain(header.slice(6));
      expect(text).not.toContain(alice.password);
    }
  });
});

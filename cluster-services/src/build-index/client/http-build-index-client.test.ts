import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger, validateConfig, type Digest } from '@krill/lib';
import { buildIndexConfigSchema, type BuildIndexConfig } from '../config.js';
import { startBuildIndex } from '../server/build-index-server.js';
import { startOriginFixture, type OriginFixture } from '../testing/origin-fixture.js';
import { createBuildIndexClient } from './http-build-index-client.js';

const logger = silentLogger();
const repo = 'team/app';
let fx: OriginFixture;
let closers: Array<() => Promise<void>>;
let a: string;
let b: string;
let digest: Digest;

beforeEach(async () => {
  fx = await startOriginFixture({ logger });
  closers = [() => fx.close()];
  a = await startIndex('a');
  b = await startIndex('b');
  digest = (await fx.image(repo, 'img')).manifest;
});
afterEach(async () => {
  for (const c of closers.reverse()) await c();
});

/** A real build-index with a database of its own. */
async function startIndex(name: string): Promise<string> {
  const bi = await startBuildIndex(validateConfig<BuildIndexConfig>(buildIndexConfigSchema, {
    listen: { port: 0 }, db: join(fx.dir, name, 'tags.db'), origins: { urls: [fx.origin.url] },
  }), { logger, originClient: fx.client });
  closers.push(() => bi.close());
  return bi.url;
}

/** A server that fails the way a broken build-index or the load balancer before it does. */
async function startBroken(answer: 'html-500' | 'json-503' | 'hang'): Promise<string> {
  const server: Server = createServer((_req, res) => {
    if (answer === 'hang') return;
    if (answer === 'html-500') return void res.writeHead(500, { 'content-type': 'text/html' }).end('<h1>Internal Server Error</h1>');
    res.writeHead(503, { 'content-type': 'application/json' })
      .end(JSON.stringify({ category: 'Unavailable', code: 'ERR_UPSTREAM_UNAVAILABLE', message: 'upstream registry docker.io: connect ECONNREFUSED' }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** A server that records the credentials header of each request and answers 401 as the build-index does. */
async function startRefusing(): Promise<{ url: string; seen: Array<string | undefined> }> {
  const seen: Array<string | undefined> = [];
  const server: Server = createServer((req, res) => {
    seen.push(req.headers['x-krill-upstream-credentials'] as string | undefined);
    res.writeHead(401, { 'content-type': 'application/json' })
      .end(JSON.stringify({ category: 'Unauthenticated', code: 'ERR_UPSTREAM_UNAUTHORIZED', message: 'upstream registry upstream.local rejected the caller\'s credentials for user "alice"' }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen };
}

/** A URL nobody listens on any more. */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

function client(urls: string[], timeoutMs?: number) {
  const c = createBuildIndexClient({ urls, logger, ...(timeoutMs ? { timeoutMs } : {}) });
  closers.push(() => c.close());
  return c;
}

const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: { code?: string }) => e.code);

describe('build-index client', () => {
  it('fails over past an unreachable build-index and past 5xx answers', async () => {
    const urls = [await deadUrl(), await startBroken('html-500'), await startBroken('json-503'), a];
    const c = client(urls);
    await c.putTag(repo, 'v1', digest);
    expect((await c.getTag(repo, 'v1')).digest).toBe(digest);
    expect(await c.listTags(repo)).toEqual({ items: ['v1'] });
    expect(await c.listRepositories()).toEqual({ items: [repo] });
  });

  it('takes a 4xx as the answer without asking the next build-index', async () => {
    await client([b]).putTag(repo, 'only-on-b', digest);
    expect(await code(client([a, b]).getTag(repo, 'only-on-b'))).toBe('ERR_TAG_NOT_FOUND');
    expect((await client([b, a]).getTag(repo, 'only-on-b')).digest).toBe(digest);
  });

  it('throws the last answered error with its code when every build-index failed', async () => {
    const c = client([await startBroken('html-500'), await startBroken('json-503'), await deadUrl()]);
    const err = await c.getTag(repo, 'v1').catch((e: { code?: string; category?: string; message: string }) => e);
    expect(err).toMatchObject({ code: 'ERR_UPSTREAM_UNAVAILABLE', category: 'Unavailable' });
    expect(err.message).toContain('ECONNREFUSED');
    expect(await code(client([await startBroken('html-500')]).getTag(repo, 'v1'))).toBe('ERR_HTTP_500');
  });

  it('says no build-index answered when none was reachable', async () => {
    const err = await client([await deadUrl(), await deadUrl()]).getTag(repo, 'v1').catch((e: { code?: string; message: string }) => e);
    expect(err).toMatchObject({ code: 'ERR_BUILD_INDEX_UNAVAILABLE' });
    expect(err.message).toContain('no build-index answered');
    expect(await code(client([]).getTag(repo, 'v1'))).toBe('ERR_BUILD_INDEX_UNAVAILABLE');
  });

  it('gives up on a build-index that does not answer within timeoutMs and moves on', async () => {
    const c = client([await startBroken('hang'), a], 300);
    await c.putTag(repo, 'v1', digest);
    expect((await c.getTag(repo, 'v1')).digest).toBe(digest);
  });

  it('stops at once, without failing over, when the caller aborts', async () => {
    const c = client([await startBroken('hang'), a]);
    const signal = AbortSignal.timeout(100);
    const started = Date.now();
    expect(await code(c.getTag(repo, 'v1', signal))).toBe('ERR_CANCELED');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('sends the caller\'s credentials and takes Unauthenticated as the answer, without failing over', async () => {
    const first = await startRefusing();
    const second = await startRefusing();
    const c = client([first.url, second.url, a]);
    const err = await c.getTag('upstream.local/app', 'v1', undefined, { credentials: { username: 'alice', password: 'pw' } }).catch((e: { code?: string; category?: string }) => e);
    expect(err).toMatchObject({ category: 'Unauthenticated', code: 'ERR_UPSTREAM_UNAUTHORIZED' });
    expect(first.seen).toEqual([`Basic ${Buffer.from('alice:pw').toString('base64')}`]);
    expect(second.seen).toEqual([]);
    // An identity token travels as username '' (containerd's ParseAuth); no credentials, no header.
    await code(c.getTag('upstream.local/app', 'v1', undefined, { credentials: { username: '', password: 'id-token' } }));
    await code(c.getTag('upstream.local/app', 'v1'));
    expect(first.seen.slice(1)).toEqual([`Basic ${Buffer.from(':id-token').toString('base64')}`, undefined]);
    expect(await code(c.getTag(repo, 'v1', undefined, { credentials: { username: 'a:b', password: 'pw' } }))).toBe('ERR_CREDENTIALS_INVALID');
    expect(first.seen).toHaveLength(3);
  });
});

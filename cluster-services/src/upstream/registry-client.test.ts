import { createHash } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { MediaType, sha256, silentLogger } from '@krill/lib';
import { createRegistryBackend } from '../backend/registry/index.js';
import { createRegistryClient } from './http-registry-client.js';
import { resolveNamespace } from './hosts.js';

const logger = silentLogger();
let servers: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  servers.push(app);
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
}

const blob = Buffer.from('layer bytes '.repeat(1000));
const blobDigest = sha256(blob);
const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: blobDigest, size: blob.length }, layers: [] }));

/**
 * A registry that speaks distribution's token auth: 401 with a Bearer challenge until a token
 * from its realm is presented; blob GETs redirect to a storage server on another port.
 */
async function tokenRegistry(storage: string | undefined) {
  const seen = { tokens: 0, storageAuth: [] as Array<string | undefined> };
  const app = Fastify();
  let base = '';
  app.get('/token', async (req, reply) => {
    if (req.headers.authorization !== `Basic ${Buffer.from('alice:secret').toString('base64')}`) return reply.code(401).send();
    seen.tokens++;
    return { token: `tok-${(req.query as { scope?: string }).scope}`, expires_in: 300 };
  });
  app.route({
    method: ['GET', 'HEAD'], url: '/v2/*', handler: async (req, reply) => {
      if (!req.headers.authorization?.startsWith('Bearer tok-repository:team/app:pull')) {
        return reply.code(401).header('www-authenticate', `Bearer realm="${base}/token",service="test",scope="repository:team/app:pull"`).send();
      }
      if (req.url === '/v2/team/app/manifests/v1') return reply.header('docker-content-digest', sha256(manifest)).header('content-type', MediaType.OciManifest).send(manifest);
      if (req.url === `/v2/team/app/blobs/${blobDigest}`) {
        if (storage) return reply.code(307).header('location', `${storage}/bucket/${blobDigest}?sig=1`).send();
        return reply.header('content-length', blob.length).send(blob);
      }
      return reply.code(404).send();
    },
  });
  base = await listen(app);
  return { base, seen };
}

describe('upstream registry client', () => {
  it('maps namespaces to registries and repositories', () => {
    expect(resolveNamespace('upstream.local/team/app', {})).toMatchObject({ registry: 'upstream.local', repository: 'team/app', endpoints: ['https://upstream.local'] });
    expect(resolveNamespace('docker.io/busybox', {})).toMatchObject({ repository: 'library/busybox', endpoints: ['https://registry-1.docker.io'] });
    expect(resolveNamespace('localhost/x', { localhost: { endpoints: ['http://127.0.0.1:5000'] } }).endpoints).toEqual(['http://127.0.0.1:5000']);
    expect(() => resolveNamespace('team/app', {})).toThrow(expect.objectContaining({ code: 'ERR_UPSTREAM_NAMESPACE' }));
  });

  it('obtains a bearer token once and reuses it; follows a redirect without leaking the token', async () => {
    const storage = Fastify();
    const storageAuth: Array<string | undefined> = [];
    storage.get('/bucket/*', async (req) => {
      storageAuth.push(req.headers.authorization);
      return blob;
    });
    const { base, seen } = await tokenRegistry(await listen(storage));
    const client = createRegistryClient({ hosts: { 'upstream.local': { endpoints: [base], username: 'alice', password: 'secret' } }, logger });
    expect(await client.resolve('upstream.local/team/app', 'v1')).toMatchObject({ digest: sha256(manifest), mediaType: MediaType.OciManifest });
    const body = await client.fetch('upstream.local/team/app', blobDigest);
    const h = createHash('sha256');
    for await (const c of body) h.update(c as Buffer);
    expect(`sha256:${h.digest('hex')}`).toBe(blobDigest);
    await client.resolve('upstream.local/team/app', 'v1');
    expect(seen.tokens).toBe(1);
    expect(storageAuth).toEqual([undefined]);
  });

  it('names the registry, endpoint and user when credentials are refused, never the password', async () => {
    const { base } = await tokenRegistry(undefined);
    const client = createRegistryClient({ hosts: { 'upstream.local': { endpoints: [base], username: 'alice', password: 'hunter2' } }, logger });
    const err = await client.resolve('upstream.local/team/app', 'v1').catch((e: Error & { code?: string }) => e);
    expect(err).toMatchObject({ code: 'ERR_UPSTREAM_UNAUTHORIZED' });
    expect(err!.message).toBe(`upstream registry upstream.local (${base}) rejected the credentials of user "alice"`);
    expect(err!.message).not.toContain('hunter2');
    const anonymous = createRegistryClient({ hosts: { 'upstream.local': { endpoints: [base] } }, logger });
    expect(await anonymous.stat('upstream.local/team/app', blobDigest).catch((e: { code?: string }) => e.code)).toBe('ERR_UPSTREAM_UNAUTHORIZED');
  });

  it('falls back to the next endpoint when one is down, and reports a missing tag', async () => {
    const { base } = await tokenRegistry(undefined);
    const client = createRegistryClient({ hosts: { 'upstream.local': { endpoints: ['http://127.0.0.1:1', base], username: 'alice', password: 'secret' } }, logger });
    expect((await client.stat('upstream.local/team/app', blobDigest)).size).toBe(blob.length);
    expect(await client.resolve('upstream.local/team/app', 'nope').catch((e: { code?: string }) => e.code)).toBe('ERR_UPSTREAM_NOT_FOUND');
    const down = createRegistryClient({ hosts: { 'upstream.local': { endpoints: ['http://127.0.0.1:1'] } }, logger });
    expect(await down.resolve('upstream.local/team/app', 'v1').catch((e: { code?: string }) => e.code)).toBe('ERR_UPSTREAM_UNAVAILABLE');
  });

  it('the registry backend reads through the client and refuses writes', async () => {
    const { base } = await tokenRegistry(undefined);
    const backend = createRegistryBackend({ registries: { 'upstream.local': { endpoints: [base], username: 'alice', password: 'secret' } }, logger });
    expect(backend.readOnly).toBe(true);
    expect(await backend.stat('upstream.local/team/app', blobDigest)).toEqual({ size: blob.length });
    const { Readable } = await import('node:stream');
    expect(await backend.upload('upstream.local/team/app', blobDigest, Readable.from([blob]), blob.length).catch((e: { code?: string }) => e.code)).toBe('ERR_BACKEND_READ_ONLY');
  });
});

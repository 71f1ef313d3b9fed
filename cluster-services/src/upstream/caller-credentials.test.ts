import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { MediaType, sha256, silentLogger } from '@krill/lib';
import { BoundedMap } from './bounded-map.js';
import { createRegistryClient } from './http-registry-client.js';
import type { UpstreamCredentials } from './registry-client.js';

/**
 * A caller's own credentials (ResolveOptions.credentials) against small registries on port 0
 * that challenge as distribution does: Basic (htpasswd) or Bearer tokens from a realm.
 */
const logger = silentLogger();
let servers: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, layers: [] }));
const users: Record<string, string> = { alice: 'secret', bob: 'bob-pass', carol: 'carol-pass' };
/** The identity token the realm accepts, as a refresh token (POST) or a Basic password (GET). */
const identityToken = 'id-token-xyz';
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const userOf = (authorization: string | undefined) => {
  const [u, p] = Buffer.from((authorization ?? '').replace(/^Basic /, ''), 'base64').toString().split(':');
  return u !== undefined && users[u] !== undefined && users[u] === p ? u : p === identityToken ? '(identity token)' : undefined;
};

/**
 * `scheme: 'basic'` answers manifests to any user in `users` but carol (403: no access to the
 * repository); `'bearer'` to tokens its realm issued, GET with Basic or, with `oauthPost`, POST
 * with a refresh token. `seen` records who asked what.
 */
async function registry(scheme: 'basic' | 'bearer', o: { oauthPost?: boolean } = {}) {
  const seen = { manifests: [] as Array<string | undefined>, tokenGets: [] as Array<string | undefined>, tokenPosts: 0 };
  const issued = new Set<string>();
  const app = Fastify();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, new URLSearchParams(body as string)));
  let base = '';
  app.get('/token', async (req, reply) => {
    const who = userOf(req.headers.authorization);
    seen.tokenGets.push(who);
    if (!who) return reply.code(401).send();
    issued.add(`tok-${who}`);
    return { token: `tok-${who}`, expires_in: 300 };
  });
  app.post('/token', async (req, reply) => {
    if (!o.oauthPost) return reply.code(404).send();
    seen.tokenPosts++;
    const form = req.body as URLSearchParams;
    if (form.get('grant_type') !== 'refresh_token' || form.get('refresh_token') !== identityToken) return reply.code(401).send();
    issued.add('tok-oauth');
    return { access_token: 'tok-oauth', expires_in: 300 };
  });
  app.route({
    method: ['GET', 'HEAD'], url: '/v2/team/app/manifests/:ref', handler: async (req, reply) => {
      const authorization = req.headers.authorization;
      let who: string | undefined;
      if (scheme === 'basic') who = userOf(authorization);
      else if (authorization?.startsWith('Bearer ') && issued.has(authorization.slice(7))) who = authorization.slice(11);
      seen.manifests.push(who);
      if (!who) {
        const challenge = scheme === 'basic' ? 'Basic realm="test"' : `Bearer realm="${base}/token",service="test",scope="repository:team/app:pull"`;
        return reply.code(401).header('www-authenticate', challenge).send();
      }
      if (who === 'carol') return reply.code(403).send();
      return reply.header('docker-content-digest', sha256(manifest)).header('content-type', MediaType.OciManifest).send(manifest);
    },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  servers.push(app);
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  return { base, seen };
}

const clientOf = (base: string, configured = true) => createRegistryClient({
  hosts: { 'upstream.local': { endpoints: [base], ...(configured ? { username: 'alice', password: 'secret' } : {}) } }, logger,
});
const as = (username: string, password: string): { credentials: UpstreamCredentials } => ({ credentials: { username, password } });
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: Error & { code?: string; category?: string }) => e);

describe('upstream registry client with a caller\'s credentials', () => {
  it('asks with the caller\'s credentials only, never the configured ones or their Authorization', async () => {
    const { base, seen } = await registry('basic');
    const client = clientOf(base);
    // The configured user's Basic Authorization now works and is remembered for this repository.
    expect((await client.resolve('upstream.local/team/app', 'v1')).digest).toBe(sha256(manifest));
    const err = await failure(client.resolve('upstream.local/team/app', 'v1', undefined, as('bob', 'hunter2')));
    expect(err).toMatchObject({ code: 'ERR_UPSTREAM_UNAUTHORIZED', category: 'Unauthenticated' });
    expect(err!.message).toBe(`upstream registry upstream.local (${base}) rejected the caller's credentials for user "bob"`);
    expect(err!.message).not.toContain('hunter2');
    expect((await client.resolve('upstream.local/team/app', 'v1', undefined, as('bob', 'bob-pass'))).digest).toBe(sha256(manifest));
    // Bob's Authorization that worked is not offered for other credentials either.
    expect((await failure(client.resolve('upstream.local/team/app', 'v1', undefined, as('bob', 'wrong'))))?.code).toBe('ERR_UPSTREAM_UNAUTHORIZED');
    expect(seen.manifests).toEqual([undefined, 'alice', undefined, undefined, undefined, 'bob', undefined, undefined]);
  });

  it('takes a 403 as a refusal naming the user', async () => {
    const { base } = await registry('basic');
    const err = await failure(clientOf(base).resolve('upstream.local/team/app', 'v1', undefined, as('carol', 'carol-pass')));
    expect(err).toMatchObject({ code: 'ERR_UPSTREAM_UNAUTHORIZED' });
    expect(err!.message).toContain('user "carol"');
    expect(err!.message).not.toContain('carol-pass');
  });

  it('obtains a bearer token per caller, reuses it for the same credentials, and never lends one to others', async () => {
    const { base, seen } = await registry('bearer');
    const client = clientOf(base);
    await client.resolve('upstream.local/team/app', 'v1');
    const err = await failure(client.resolve('upstream.local/team/app', 'v1', undefined, as('bob', 'hunter2')));
    expect(err).toMatchObject({ code: 'ERR_UPSTREAM_UNAUTHORIZED' });
    expect(err!.message).not.toContain('hunter2');
    await client.resolve('upstream.local/team/app', 'v1', undefined, as('bob', 'bob-pass'));
    await client.resolve('upstream.local/team/app', 'v1', undefined, as('bob', 'bob-pass'));
    // Anonymous access by a caller gets nothing from the configured user's or bob's tokens.
    expect((await failure(client.resolve('upstream.local/team/app', 'v1', undefined, as('', ''))))?.message).toContain("rejected the caller's anonymous access");
    expect(seen.tokenGets).toEqual(['alice', undefined, 'bob', undefined]);
    // Bob's second lookup went straight to the manifest with his token: no 401 round trip.
    expect(seen.manifests.filter((w) => w === 'bob')).toHaveLength(2);
  });

  it('offers an identity token as an OAuth2 refresh token, or as a Basic password where the realm has no POST', async () => {
    const oauth = await registry('bearer', { oauthPost: true });
    expect((await clientOf(oauth.base).resolve('upstream.local/team/app', 'v1', undefined, as('', identityToken))).digest).toBe(sha256(manifest));
    expect(oauth.seen).toMatchObject({ tokenPosts: 1, tokenGets: [] });
    const plain = await registry('bearer');
    expect((await clientOf(plain.base, false).resolve('upstream.local/team/app', 'v1', undefined, as('<token>', identityToken))).digest).toBe(sha256(manifest));
    expect(plain.seen.tokenGets).toEqual(['(identity token)']);
    const err = await failure(clientOf(oauth.base).resolve('upstream.local/team/app', 'v1', undefined, as('', 'revoked-token')));
    expect(err!.message).toBe(`upstream registry upstream.local (${oauth.base}) rejected the caller's identity token`);
  });

  it('bounds a cache keyed by callers, dropping the least recently used', () => {
    const m = new BoundedMap<string, number>(2);
    m.set('a', 1);
    m.set('b', 2);
    expect(m.get('a')).toBe(1);
    m.set('c', 3);
    expect([m.get('a'), m.get('b'), m.get('c'), m.size]).toEqual([1, undefined, 3, 2]);
  });
});

import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHttpBackend, instrumentBackend, type Backend } from '@krill/cluster-services';
import { createHttpService, isDigest, sha256, silentLogger, type Digest, type HttpService } from '@krill/lib';
import { codeOf, defineBackendSuite, hashStream } from './backend-suite.js';

interface FileServer {
  base: string;
  dir: string;
  /** Requests seen, as `METHOD /path`, to check which way the backend went. */
  seen: string[];
  put(digest: Digest, body: Readable): Promise<void>;
  close(): Promise<void>;
}

/**
 * A blob file server: `/blobs/<digest>` serves files (HEAD and GET); `/r/<namespace>/<digest>`
 * redirects there; `/nohead/<digest>` refuses HEAD and honours `Range: bytes=0-0`;
 * `/auth/<digest>` wants a bearer token; `/fail/...` answers 500; `/chain/<n>/...` redirects to n+1 forever; `/loop/...` to itself.
 */
async function startFileServer(): Promise<FileServer> {
  const dir = await mkdtemp(join(tmpdir(), 'krill-http-backend-'));
  const service: HttpService = createHttpService({ name: 'blob-files', logger: silentLogger() });
  const { app } = service;
  const seen: string[] = [];
  app.addHook('onRequest', async (req) => {
    seen.push(`${req.method} ${req.url}`);
  });
  const file = async (digest: string) => {
    if (!isDigest(digest)) return undefined;
    const path = join(dir, digest.slice(7));
    return stat(path).then((st) => ({ path, size: st.size }), () => undefined);
  };
  app.get<{ Params: { digest: string } }>('/blobs/:digest', async (req, reply) => {
    const f = await file(req.params.digest);
    if (!f) return reply.code(404).send({ error: 'not found' });
    return reply.header('content-length', f.size).type('application/octet-stream').send(createReadStream(f.path));
  });
  app.get<{ Params: { '*': string } }>('/r/*', async (req, reply) => {
    return reply.redirect(`/blobs/${req.params['*'].split('/').pop()}`, 302);
  });
  app.head('/nohead/:digest', async (_req, reply) => reply.code(405).send());
  app.get<{ Params: { digest: string } }>('/nohead/:digest', { exposeHeadRoute: false }, async (req, reply) => {
    const f = await file(req.params.digest);
    if (!f) return reply.code(404).send({ error: 'not found' });
    if (req.headers.range !== 'bytes=0-0') return reply.header('content-length', f.size).send(createReadStream(f.path));
    if (f.size === 0) return reply.code(416).header('content-range', 'bytes */0').send();
    return reply.code(206).header('content-range', `bytes 0-0/${f.size}`).send(createReadStream(f.path, { start: 0, end: 0 }));
  });
  app.get<{ Params: { digest: string } }>('/auth/:digest', async (req, reply) => {
    if (req.headers.authorization !== 'Bearer t0k') return reply.code(401).send({ error: 'who are you' });
    return reply.redirect(`/blobs/${req.params.digest}`, 302);
  });
  app.get('/fail/:digest', async (_req, reply) => reply.code(500).send({ error: 'boom' }));
  app.get<{ Params: { n: string } }>('/chain/:n/*', async (req, reply) => reply.redirect(`/chain/${Number(req.params.n) + 1}/x`, 302));
  app.get('/loop/*', async (req, reply) => reply.redirect(req.url, 302));
  const base = await service.listen('127.0.0.1', 0);
  return {
    base,
    dir,
    seen,
    async put(digest, body) {
      await pipeline(body, createWriteStream(join(dir, digest.slice(7))));
    },
    async close() {
      await service.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

defineBackendSuite(
  'http (through a redirect)',
  async () => {
    const server = await startFileServer();
    const backend = instrumentBackend(createHttpBackend({ downloadUrl: `${server.base}/r/{namespace}/{digest}`, logger: silentLogger() }));
    return {
      backend,
      seed: (digest, body) => server.put(digest, body),
      async cleanup() {
        await backend.close();
        await server.close();
      },
    };
  },
  { readOnly: true },
);

describe('http backend', () => {
  let server: FileServer;
  let backend: Backend | undefined;
  const bytes = Buffer.from('hello, http backend');
  const digest = sha256(bytes);
  const open = (downloadUrl: string, headers?: Record<string, string>): Backend => {
    backend = createHttpBackend({ downloadUrl, logger: silentLogger(), timeoutMs: 5000, ...(headers ? { headers } : {}) });
    return backend;
  };

  beforeEach(async () => {
    server = await startFileServer();
    await server.put(digest, Readable.from([bytes]));
  });
  afterEach(async () => {
    await backend?.close();
    backend = undefined;
    await server.close();
  });

  it('falls back to a ranged GET when HEAD is refused, for a blob and an empty one', async () => {
    const b = open(`${server.base}/nohead/{digest}`);
    expect(await b.stat('team/app', digest)).toEqual({ size: bytes.length });
    expect(server.seen).toContain(`GET /nohead/${digest}`);
    const empty = sha256(new Uint8Array(0));
    await server.put(empty, Readable.from([]));
    expect(await b.stat('team/app', empty)).toEqual({ size: 0 });
    expect(await codeOf(b.stat('team/app', sha256('absent')))).toBe('ERR_BACKEND_BLOB_NOT_FOUND');
  });

  it('fills {namespace} and {hex} into the URL template and stats with HEAD through the redirect', async () => {
    const b = open(`${server.base}/r/{namespace}/x/sha256:{hex}`);
    expect(await b.stat('team/app', digest)).toEqual({ size: bytes.length });
    expect(server.seen).toContain(`HEAD /blobs/${digest}`);
    expect(await hashStream(await b.download('registry.local:5000/team/app', digest))).toEqual({ size: bytes.length, digest });
    // Each namespace component is percent-encoded, so the port's colon arrives as %3A.
    expect(server.seen).toContain(`GET /r/registry.local%3A5000/team/app/x/${digest}`);
  });

  it('sends the configured headers, and maps 401 to ERR_BACKEND_UNAUTHORIZED', async () => {
    expect(await codeOf(open(`${server.base}/auth/{digest}`).download('team/app', digest))).toBe('ERR_BACKEND_UNAUTHORIZED');
    await backend!.close();
    const b = open(`${server.base}/auth/{digest}`, { authorization: 'Bearer t0k' });
    expect(await hashStream(await b.download('team/app', digest))).toEqual({ size: bytes.length, digest });
  });

  it('maps 5xx to ERR_BACKEND_UNAVAILABLE, and too many redirects or a loop to ERR_BACKEND_REJECTED', async () => {
    expect(await codeOf(open(`${server.base}/fail/{digest}`).download('team/app', digest))).toBe('ERR_BACKEND_UNAVAILABLE');
    await backend!.close();
    expect(await codeOf(open(`${server.base}/chain/0/{digest}`).download('team/app', digest))).toBe('ERR_BACKEND_REJECTED');
    // Five redirects followed, then the sixth answer is given up on: six requests in all.
    expect(server.seen.filter((r) => r.startsWith('GET /chain/'))).toHaveLength(6);
    await backend!.close();
    expect(await codeOf(open(`${server.base}/loop/{digest}`).stat('team/app', digest))).toBe('ERR_BACKEND_REJECTED');
  });

  it('refuses list with ERR_BACKEND_UNSUPPORTED and a template without {digest} or {hex}', async () => {
    expect(await codeOf(open(`${server.base}/blobs/{digest}`).list())).toBe('ERR_BACKEND_UNSUPPORTED');
    expect(() => createHttpBackend({ downloadUrl: `${server.base}/blobs/latest`, logger: silentLogger() })).toThrow(/downloadUrl/);
  });
});

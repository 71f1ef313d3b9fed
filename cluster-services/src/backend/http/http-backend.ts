import type { Readable } from 'node:stream';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { FailedPreconditionError, NotFoundError, validateConfig, type Digest, type KrillError, type Logger, type Schema } from '@krill/lib';
import type { Backend, BackendBlobInfo, ListPage } from '../backend.js';
import { validateDigest, validateNamespace } from '../blob-key.js';
import { mapHttpError, statusError, totalFromContentRange } from './http-errors.js';

export interface HttpBackendConfig {
  /**
   * Where a blob is fetched from, with `{namespace}`, `{digest}` (`sha256:<hex>`) and `{hex}`
   * replaced: `http://files.local/blobs/{digest}`. It must contain `{digest}` or `{hex}`.
   */
  downloadUrl: string;
  /** Sent with every request, e.g. an `authorization` header; redacted from logs. */
  headers: Record<string, string>;
  /** Fails a request that waits this long for response headers, or between two body chunks. */
  timeoutMs: number;
}

export const httpBackendSchema: Schema = {
  type: 'object',
  description: 'Read-only HTTP backend: blobs are fetched from a URL template.',
  properties: {
    downloadUrl: {
      type: 'string',
      pattern: '^https?://.*\\{(digest|hex)\\}',
      description: 'URL template with {namespace}, {digest} and {hex}; must contain {digest} or {hex}.',
    },
    headers: { type: 'object', additionalProperties: { type: 'string' }, default: {} },
    // Thirty seconds outlasts a slow file server's first byte without hiding a dead one for long.
    timeoutMs: { type: 'integer', minimum: 100, default: 30_000 },
  },
  required: ['downloadUrl'],
  additionalProperties: false,
};

export interface HttpBackendOptions extends Partial<HttpBackendConfig> {
  downloadUrl: string;
  logger: Logger;
}

/** Error pages and ranged answers are read up to this much, so the connection can be reused. */
const DUMP_LIMIT_BYTES = 64 * 1024;

/** A blob server may send a client to storage, and that storage to a CDN; five hops is generous. */
const MAX_REDIRECTIONS = 5;

/**
 * The read-only HTTP backend. stat is a HEAD read from Content-Length, falling back to a GET of
 * `Range: bytes=0-0` read from Content-Range for servers that answer HEAD badly; download is a
 * GET. Redirects are followed (at most five; undici drops credentials on a cross-origin hop).
 * Uploads are FailedPrecondition ERR_BACKEND_READ_ONLY, list ERR_BACKEND_UNSUPPORTED.
 */
export function createHttpBackend(options: HttpBackendOptions): Backend {
  const { logger, ...rest } = options;
  const config = validateConfig<HttpBackendConfig>(httpBackendSchema, rest, 'http backend options');
  const agent = new Agent();
  const dispatcher = agent.compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTIONS }));

  function urlOf(namespace: string, digest: Digest): string {
    const ns = namespace.split('/').map(encodeURIComponent).join('/');
    return config.downloadUrl.replaceAll('{namespace}', ns).replaceAll('{digest}', digest).replaceAll('{hex}', digest.slice(7));
  }

  function send(url: string, method: 'GET' | 'HEAD', extra: Record<string, string>, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    return request(url, {
      dispatcher,
      method,
      headers: { ...config.headers, ...extra },
      headersTimeout: config.timeoutMs,
      bodyTimeout: config.timeoutMs,
      ...(signal ? { signal } : {}),
    });
  }

  async function stat(namespace: string, digest: Digest, signal?: AbortSignal): Promise<BackendBlobInfo> {
    validateNamespace(namespace);
    const url = urlOf(namespace, validateDigest(digest));
    const context = `http stat ${digest}`;
    try {
      const head = await send(url, 'HEAD', {}, signal);
      await head.body.dump({ limit: DUMP_LIMIT_BYTES });
      const length = Number(head.headers['content-length']);
      if (head.statusCode === 200 && head.headers['content-length'] !== undefined && Number.isSafeInteger(length)) return { size: length };
      if (head.statusCode === 404) throw notFound(digest);
      if (head.statusCode !== 200 && head.statusCode !== 405 && head.statusCode !== 501) throw statusError(head.statusCode, context);
      return await rangedStat(url, digest, context, signal);
    } catch (err) {
      throw mapHttpError(err, context);
    }
  }

  async function rangedStat(url: string, digest: Digest, context: string, signal?: AbortSignal): Promise<BackendBlobInfo> {
    const r = await send(url, 'GET', { range: 'bytes=0-0' }, signal);
    // Only the headers matter: one byte is drained, and a server that ignored Range is cut off.
    await r.body.dump({ limit: DUMP_LIMIT_BYTES });
    if (r.statusCode === 206 || r.statusCode === 416) {
      const total = totalFromContentRange(r.headers['content-range']);
      if (total !== undefined) return { size: total };
    }
    if (r.statusCode === 200) {
      const length = Number(r.headers['content-length']);
      if (r.headers['content-length'] !== undefined && Number.isSafeInteger(length)) return { size: length };
    }
    if (r.statusCode === 404) throw notFound(digest);
    throw statusError(r.statusCode, `${context}: the server gave neither Content-Length nor Content-Range`);
  }

  return {
    kind: 'http',
    readOnly: true,
    stat,

    async download(namespace: string, digest: Digest, signal?: AbortSignal): Promise<Readable> {
      validateNamespace(namespace);
      const context = `http download ${digest}`;
      try {
        const r = await send(urlOf(namespace, validateDigest(digest)), 'GET', {}, signal);
        if (r.statusCode === 200) return r.body;
        await r.body.dump({ limit: DUMP_LIMIT_BYTES });
        if (r.statusCode === 404) throw notFound(digest);
        throw statusError(r.statusCode, context);
      } catch (err) {
        throw mapHttpError(err, context);
      }
    },

    async upload(_namespace: string, digest: Digest, body: Readable): Promise<void> {
      body.destroy();
      throw new FailedPreconditionError(`http backend is read-only: cannot upload ${digest}`, { code: 'ERR_BACKEND_READ_ONLY' });
    },

    async list(): Promise<ListPage> {
      throw new FailedPreconditionError('http backend cannot list blobs', { code: 'ERR_BACKEND_UNSUPPORTED' });
    },

    async close(): Promise<void> {
      await agent.close().catch((err: unknown) => logger.debug({ err }, 'http backend: closing the agent'));
    },
  };
}

function notFound(digest: Digest): KrillError {
  return new NotFoundError(`http backend: blob ${digest} not found`, { code: 'ERR_BACKEND_BLOB_NOT_FOUND' });
}

import type { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import {
  InvalidArgumentError, UnavailableError, createHashRing, errorFromBody, isKrillError,
  type Digest, type KrillError, type Logger, type Metainfo,
} from '@krill/lib';
import type { BlobSource, OriginClient } from './origin-client.js';

export interface OriginClientOptions {
  /** Base URLs of every origin. */
  origins: string[];
  replicas?: number;
  logger: Logger;
  /** Time to wait for response headers, in ms; bodies of any length may take longer. */
  timeoutMs?: number;
}

type Attempt<T> = (origin: string) => Promise<T>;

/** The origin client over HTTP (see OriginClient). */
export function createOriginClient(options: OriginClientOptions): OriginClient {
  const ring = createHashRing({ nodes: options.origins, replicas: options.replicas ?? 3 });
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, headersTimeout: options.timeoutMs ?? 60_000, bodyTimeout: 300_000, connections: 64 });
  const log = options.logger;

  /** Tries `nodes` in order; a network error, 5xx or (when `nextOn404`) 404 moves to the next. */
  async function firstOf<T>(what: string, nodes: string[], attempt: Attempt<T>, nextOn404: boolean): Promise<T> {
    let last: unknown;
    for (const node of nodes) {
      try {
        return await attempt(node);
      } catch (err) {
        last = err;
        const krill = isKrillError(err) ? err : undefined;
        if (krill && krill.category !== 'Unavailable' && !(nextOn404 && krill.category === 'NotFound')) throw err;
        log.debug({ peer: node, err: (err as Error).message }, `${what}: trying the next origin`);
      }
    }
    if (isKrillError(last) && last.category === 'NotFound') throw last;
    throw new UnavailableError(`${what}: no origin answered (${(last as Error | undefined)?.message ?? 'no origins'})`, { code: 'ERR_ORIGIN_UNAVAILABLE', cause: last });
  }

  async function call(method: Dispatcher.HttpMethod, url: string, what: string, extra: Partial<Dispatcher.RequestOptions> = {}): Promise<Dispatcher.ResponseData<unknown>> {
    let res: Dispatcher.ResponseData<unknown>;
    try {
      res = (await request(url, { method, dispatcher, ...extra } as Parameters<typeof request>[1])) as Dispatcher.ResponseData<unknown>;
    } catch (err) {
      throw new UnavailableError(`${what}: ${(err as Error).message}`, { code: 'ERR_ORIGIN_UNAVAILABLE', cause: err });
    }
    if (res.statusCode >= 400) throw await failure(res, what);
    return res;
  }

  const blobUrl = (origin: string, digest: Digest, ns: string | undefined, local: boolean) =>
    `${origin}/blobs/${digest}?${ns === undefined ? '' : `namespace=${encodeURIComponent(ns)}`}${local ? '&local=1' : ''}`;

  /** Reads prefer origins that hold the blob; only then is one owner asked to fetch it from the backend. */
  async function read<T>(what: string, digest: Digest, attempt: (origin: string, local: boolean) => Promise<T>): Promise<T> {
    const ranked = ring.ranked(digest);
    try {
      return await firstOf(what, ranked, (o) => attempt(o, true), true);
    } catch (err) {
      if (!(isKrillError(err) && err.category === 'NotFound')) throw err;
    }
    return firstOf(what, ranked.slice(0, ring.replicas), (o) => attempt(o, false), false);
  }

  const client: OriginClient = {
    owners: (digest) => ring.owners(digest),
    async stat(namespace, digest, signal) {
      return read(`stat ${digest}`, digest, async (o, local) => {
        const res = await call('HEAD', blobUrl(o, digest, namespace, local), `origin ${o} stat ${digest}`, signal ? { signal } : {});
        await res.body.dump();
        return { size: Number(res.headers['content-length']) };
      });
    },
    async download(namespace, digest, opts = {}) {
      return read(`download ${digest}`, digest, async (o, local) => {
        const headers: Record<string, string> = opts.range ? { range: `bytes=${opts.range.start}-${opts.range.end}` } : {};
        // 1 MiB body buffers: a GiB streams through in a thousand chunks instead of sixteen thousand.
        const res = await call('GET', blobUrl(o, digest, namespace, local), `origin ${o} download ${digest}`, { headers, highWaterMark: 1024 * 1024, ...(opts.signal ? { signal: opts.signal } : {}) });
        const range = /\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
        return { size: range ? Number(range[1]) : Number(res.headers['content-length']), body: res.body as unknown as Readable };
      });
    },
    async fetchBytes(namespace, digest, maxBytes, signal) {
      const { size, body } = await client.download(namespace, digest, signal ? { signal } : {});
      if (size > maxBytes) {
        body.destroy();
        throw new InvalidArgumentError(`blob ${digest} is ${size} bytes, more than the ${maxBytes} allowed here`, { code: 'ERR_SIZE_INVALID' });
      }
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    },
    async upload(namespace, digest, source: BlobSource, signal) {
      const nodes = ring.ranked(digest);
      await firstOf(`upload ${digest}`, nodes, async (o) => {
        const body = await source.open();
        const res = await call('PUT', `${o}/blobs/${digest}?namespace=${encodeURIComponent(namespace)}`, `origin ${o} upload ${digest}`, {
          body, headers: { 'content-length': String(source.size), 'content-type': 'application/octet-stream' }, ...(signal ? { signal } : {}),
        }).catch((err) => {
          body.destroy();
          throw err;
        });
        await res.body.dump();
      }, false);
    },
    async metainfo(namespace, digest, signal) {
      return read(`metainfo ${digest}`, digest, async (o, local) => {
        const url = `${o}/blobs/${digest}/metainfo${local ? '' : `?namespace=${encodeURIComponent(namespace)}`}`;
        const res = await call('GET', url, `origin ${o} metainfo ${digest}`, signal ? { signal } : {});
        return (await res.body.json()) as Metainfo;
      });
    },
    async close() {
      await dispatcher.close();
    },
  };
  return client;
}

async function failure(res: Dispatcher.ResponseData<unknown>, what: string): Promise<KrillError> {
  let body: unknown;
  try {
    body = await res.body.json();
  } catch {
    // HEAD answers carry no body; a 404 there is a missing blob like any other.
    body = res.statusCode === 404 ? { category: 'NotFound', code: 'ERR_BLOB_NOT_FOUND', message: 'blob not found' } : undefined;
  }
  return errorFromBody(res.statusCode, body, what);
}

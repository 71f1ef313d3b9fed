import type { Readable } from 'node:stream';
import { Agent } from 'undici';
import {
  InvalidArgumentError, UnavailableError, createLiveRing, isKrillError, toMembership,
  type Digest, type Logger, type Membership, type Metainfo,
} from '@krill/lib';
import { blobUrl, call, firstOf } from './attempts.js';
import type { BlobSource, OriginClient } from './origin-client.js';
import { ResumingBody, type Reopen } from './resuming-body.js';

export interface OriginClientOptions {
  /**
   * Base URLs of every origin, or a Membership that follows DNS (see lib's membership.ts); the
   * ring is swapped whole when it changes, and the client closes the Membership on close.
   */
  origins: readonly string[] | Membership;
  replicas?: number;
  logger: Logger;
  /** Time to wait for response headers, in ms; bodies of any length may take longer. Default 60 s. */
  timeoutMs?: number;
  /**
   * Time to wait for the headers of a read that may make the origin fetch the blob from its
   * backend first (the origin answers once the whole blob is verified in its store). Default 10
   * minutes: a GiB from a backend at 2 MB/s.
   */
  missTimeoutMs?: number;
}

/** 1 MiB body buffers: a GiB streams through in a thousand chunks instead of sixteen thousand. */
const BODY_BUFFER = 1024 * 1024;

/** The origin client over HTTP (see OriginClient). */
export function createOriginClient(options: OriginClientOptions): OriginClient {
  const log = options.logger;
  const rings = createLiveRing({ membership: toMembership(options.origins, 'origins', log), replicas: options.replicas ?? 3, code: 'ERR_ORIGIN_UNAVAILABLE' });
  // Bodies stall only when an origin does; five minutes without a byte means it is gone.
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, headersTimeout: options.timeoutMs ?? 60_000, bodyTimeout: 300_000, connections: 64 });
  const missTimeoutMs = options.missTimeoutMs ?? 600_000;

  /** Reads prefer origins that hold the blob; only then is one owner asked to fetch it from the backend. */
  async function read<T>(what: string, digest: Digest, attempt: (origin: string, local: boolean) => Promise<T>): Promise<T> {
    const ring = await rings.get();
    const ranked = ring.ranked(digest);
    try {
      return await firstOf(log, what, ranked, (o) => attempt(o, true), true);
    } catch (err) {
      if (!(isKrillError(err) && err.category === 'NotFound')) throw err;
    }
    return firstOf(log, what, ranked.slice(0, ring.replicas), (o) => attempt(o, false), false);
  }

  /** GETs the blob (or the inclusive range) from one origin. */
  async function get(origin: string, namespace: string, digest: Digest, local: boolean, range: { start: number; end: number } | undefined, signal?: AbortSignal) {
    const headers: Record<string, string> = range ? { range: `bytes=${range.start}-${range.end}` } : {};
    const res = await call(dispatcher, 'GET', blobUrl(origin, digest, namespace, local), `origin ${origin} download ${digest}`, {
      headers, highWaterMark: BODY_BUFFER, ...(local ? {} : { headersTimeout: missTimeoutMs }), ...(signal ? { signal } : {}),
    });
    const total = /\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
    return { origin, size: total ? Number(total[1]) : Number(res.headers['content-length']), body: res.body as unknown as Readable };
  }

  /**
   * When the origin serving a download breaks off, the rest is read with a Range request from
   * the other origins that hold the blob, so a reader survives the loss of the origin it was
   * reading from. The bytes are the same on every origin (content-addressed, verified).
   */
  function resumer(namespace: string, digest: Digest, firstOrigin: string, end: number, signal?: AbortSignal): Reopen {
    const failed = new Set<string>([firstOrigin]);
    return async (from, cause) => {
      if (signal?.aborted) throw cause;
      log.warn({ digest, err: cause.message, offset: from }, 'download broke off; resuming from another origin');
      // The ring as it is now: the membership may have changed since the download began.
      const others = (rings.current()?.ranked(digest) ?? []).filter((o) => !failed.has(o));
      try {
        return (await firstOf(log, `resume ${digest}`, others, (o) => {
          failed.add(o);
          return get(o, namespace, digest, true, { start: from, end }, signal);
        }, true)).body;
      } catch (err) {
        throw new UnavailableError(`download ${digest} broke off at byte ${from} (${cause.message}) and no other origin could resume it`, { code: 'ERR_ORIGIN_UNAVAILABLE', cause: err });
      }
    };
  }

  const client: OriginClient = {
    owners: (digest) => rings.current()?.owners(digest) ?? [],
    async stat(namespace, digest, signal) {
      const { size } = await client.locate(namespace, digest, signal);
      return { size };
    },
    async download(namespace, digest, opts = {}) {
      const first = await read(`download ${digest}`, digest, (o, local) => get(o, namespace, digest, local, opts.range, opts.signal));
      const start = opts.range?.start ?? 0;
      const end = opts.range ? Math.min(opts.range.end, first.size - 1) : first.size - 1;
      const body = new ResumingBody(first.body, start, end, resumer(namespace, digest, first.origin, end, opts.signal), BODY_BUFFER);
      return { size: first.size, body };
    },
    async peerEndpoint(origin, signal) {
      const res = await call(dispatcher, 'GET', `${origin}/peer`, `origin ${origin} peer endpoint`, signal ? { signal } : {});
      const body = (await res.body.json()) as { ip?: unknown; port?: unknown; peerId?: unknown };
      if (typeof body.ip !== 'string' || typeof body.port !== 'number' || typeof body.peerId !== 'string') {
        throw new UnavailableError(`origin ${origin} answered /peer with ${JSON.stringify(body)}`, { code: 'ERR_ORIGIN_UNAVAILABLE' });
      }
      return { ip: body.ip, port: body.port, peerId: body.peerId };
    },
    async locate(namespace, digest, signal) {
      return read(`locate ${digest}`, digest, async (o, local) => {
        const res = await call(dispatcher, 'HEAD', blobUrl(o, digest, namespace, local), `origin ${o} stat ${digest}`, signal ? { signal } : {});
        await res.body.dump();
        return { origin: o, size: Number(res.headers['content-length']) };
      });
    },
    async fetchBytes(namespace, digest, maxBytes, signal) {
      const tooBig = (n: number) => new InvalidArgumentError(`blob ${digest} is ${n} bytes or more, more than the ${maxBytes} allowed here`, { code: 'ERR_SIZE_INVALID' });
      const { size, body } = await client.download(namespace, digest, signal ? { signal } : {});
      if (size > maxBytes) {
        body.destroy();
        throw tooBig(size);
      }
      const chunks: Buffer[] = [];
      let got = 0;
      for await (const c of body) {
        got += (c as Buffer).length;
        // The origin announced the size; bytes beyond it are refused all the same.
        if (got > maxBytes) {
          body.destroy();
          throw tooBig(got);
        }
        chunks.push(c as Buffer);
      }
      return Buffer.concat(chunks);
    },
    async upload(namespace, digest, source: BlobSource, signal) {
      await firstOf(log, `upload ${digest}`, (await rings.get()).ranked(digest), async (o) => {
        const body = await source.open();
        const res = await call(dispatcher, 'PUT', `${o}/blobs/${digest}?namespace=${encodeURIComponent(namespace)}`, `origin ${o} upload ${digest}`, {
          body, headers: { 'content-length': String(source.size), 'content-type': 'application/octet-stream' }, ...(signal ? { signal } : {}),
        }).catch((err: unknown) => {
          body.destroy();
          throw err;
        });
        await res.body.dump();
      }, false);
    },
    async openUpload(namespace, key, signal) {
      return firstOf(log, 'open upload', (await rings.get()).ranked(key), async (o) => {
        const res = await call(dispatcher, 'POST', `${o}/uploads?namespace=${encodeURIComponent(namespace)}`, `origin ${o} open upload`, signal ? { signal } : {});
        const { id } = (await res.body.json()) as { id: string };
        return { origin: o, id };
      }, false);
    },
    async appendUpload(upload, offset, body, signal) {
      // No Content-Length: the body is chunked, so the origin sees the chunk end only when `body`
      // ends, and a body destroyed before that is cut back on the origin, never kept short.
      // `reset`: the connection is closed after the chunk, never reused. An origin that refuses a
      // chunk (a full disk) answers before the body has ended and drains the rest; a next request
      // sent on that socket was read as more of the body and never answered (60 s, then a
      // headers timeout). One connection per chunk costs nothing next to a chunk's bytes.
      const res = await call(dispatcher, 'PATCH', `${upload.origin}/uploads/${upload.id}?atomic=1`, `origin ${upload.origin} append upload`, {
        body, reset: true, headers: { 'upload-offset': String(offset), 'content-type': 'application/octet-stream' }, ...(signal ? { signal } : {}),
      }).catch((err: unknown) => {
        body.destroy();
        throw err;
      });
      await res.body.dump();
      return Number(res.headers['upload-offset']);
    },
    async commitUpload(upload, namespace, digest, signal) {
      // `wait`: an append this client gave up on may still be being cut back on the origin.
      const url = `${upload.origin}/uploads/${upload.id}/commit?digest=${encodeURIComponent(digest)}&namespace=${encodeURIComponent(namespace)}&wait=1`;
      const res = await call(dispatcher, 'PUT', url, `origin ${upload.origin} commit ${digest}`, signal ? { signal } : {});
      await res.body.dump();
    },
    async abortUpload(upload) {
      try {
        // Bounded, so a hung origin cannot hold up a proxy's shutdown; the origin sweeps what is left.
        const res = await call(dispatcher, 'DELETE', `${upload.origin}/uploads/${upload.id}`, `origin ${upload.origin} abort upload`, { signal: AbortSignal.timeout(15_000) });
        await res.body.dump();
      } catch (err) {
        log.debug({ peer: upload.origin, err: (err as Error).message }, 'abort upload failed');
      }
    },
    async metainfo(namespace, digest, signal) {
      return read(`metainfo ${digest}`, digest, async (o, local) => {
        const url = `${o}/blobs/${digest}/metainfo${local ? '' : `?namespace=${encodeURIComponent(namespace)}`}`;
        const res = await call(dispatcher, 'GET', url, `origin ${o} metainfo ${digest}`, { ...(local ? {} : { headersTimeout: missTimeoutMs }), ...(signal ? { signal } : {}) });
        return (await res.body.json()) as Metainfo;
      });
    },
    async close() {
      rings.close();
      // Downloads still being read get a few seconds to finish; a body its reader abandoned
      // without destroying it would otherwise hold close forever.
      let timer: NodeJS.Timeout | undefined;
      const bounded = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), 5_000); });
      if ((await Promise.race([dispatcher.close(), bounded])) === 'timeout') await dispatcher.destroy();
      clearTimeout(timer);
    },
  };
  return client;
}


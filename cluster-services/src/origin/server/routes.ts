import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Transform, pipeline, type Readable } from 'node:stream';
import {
  InvalidArgumentError, NotFoundError, parseDigest, parseRange, useJsonErrors,
  type Digest, type HashRing, type Logger,
} from '@krill/lib';
import type { BlobStore } from '../store/blob-store.js';
import type { WritebackQueue } from '../writeback/writeback-queue.js';
import type { OriginSeeder } from '../seeder/seeder.js';
import type { MissFetcher } from './fetch-on-miss.js';
import { sendFileRange } from './send-file.js';

export interface OriginRouteDeps {
  store: BlobStore;
  writeback: WritebackQueue;
  fetcher: MissFetcher;
  ring: () => HashRing;
  /** Replicates an accepted blob to the other owners, in the background. */
  replicate(namespace: string, digest: Digest): void;
  replicaDelayMs: number;
  /** The P2P seeder, when configured. */
  seeder?: OriginSeeder;
  logger: Logger;
}

type Query = { namespace?: string; digest?: string; replica?: string; local?: string; atomic?: string; wait?: string };

/**
 * The origin's HTTP blob API (internal: only the origin client calls it).
 * - `HEAD|GET /blobs/:digest[?namespace=ns][&local=1]`: size / bytes (Range → 206). With a
 *   namespace and without `local`, a blob missing here is fetched from the backend first.
 * - `GET /blobs/:digest/metainfo[?namespace=ns]`: with a namespace, a blob missing here is
 *   fetched first; with the seeder, a blob whose backend keeps a metainfo sidecar is answered
 *   from the sidecar at once and streamed in to be seeded.
 * - `GET /blobs/:digest/locations`, `DELETE /blobs/:digest`.
 * - `GET /peer` → `{ ip, port, peerId }` (hex): the seeder's endpoint; NotFound
 *   ERR_PEER_NOT_CONFIGURED when the origin does not seed over P2P.
 * - `PUT /blobs/:digest?namespace=ns[&replica=1]`: the whole blob in one streamed body.
 * - `POST /uploads?namespace=ns` → `{ id }`; `PATCH /uploads/:id[?atomic=1]` with `Upload-Offset: n` or
 *   `Content-Range: start-end` (where the chunk goes; without either it is appended; with
 *   `atomic` a chunk that breaks off is discarded whole, see UploadStore.append);
 *   `GET /uploads/:id` → `Upload-Offset`; `PUT /uploads/:id/commit?digest=&namespace=[&wait=1]`
 *   (`wait`: a busy upload is waited for rather than refused);
 *   `DELETE /uploads/:id`.
 * Errors are JSON `{ category, code, message }` with the category's HTTP status.
 */
export function registerOriginRoutes(app: FastifyInstance, d: OriginRouteDeps): void {
  // Blob bodies are streamed to disk as they arrive; no parser may buffer them.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
  useJsonErrors(app);

  const digestOf = (req: FastifyRequest) => parseDigest((req.params as { digest: string }).digest);
  const query = (req: FastifyRequest) => req.query as Query;
  const namespaceOf = (req: FastifyRequest, required: boolean) => {
    const ns = query(req).namespace;
    if (required && (ns === undefined || ns === '')) throw new InvalidArgumentError('query parameter namespace is required', { code: 'ERR_NAMESPACE_INVALID' });
    return ns === '' ? undefined : ns;
  };

  async function serveBlob(req: FastifyRequest, reply: FastifyReply, head: boolean) {
    const digest = digestOf(req);
    const ns = namespaceOf(req, false);
    const local = query(req).local === '1';
    if (head) {
      const size = local || ns === undefined ? (await d.store.stat(digest)).size : await d.fetcher.size(ns, digest);
      return reply.header('content-length', size).header('docker-content-digest', digest).code(200).send();
    }
    if (!local && ns !== undefined) await d.fetcher.ensure(ns, digest);
    const { size } = await d.store.stat(digest);
    const range = parseRange(req.headers.range, size);
    // Held, not opened as a stream: the file is sent from reused buffers (send-file.ts), and
    // neither eviction nor a delete takes it mid-transfer.
    const hold = await d.store.hold(digest);
    const headers: Record<string, string | number> = {
      'docker-content-digest': digest, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream',
      'content-length': range ? range.end - range.start + 1 : size,
      ...(range ? { 'content-range': `bytes ${range.start}-${range.end}/${size}` } : {}),
    };
    reply.hijack();
    try {
      reply.raw.writeHead(range ? 206 : 200, headers);
      if (size > 0) await sendFileRange(reply.raw, hold.path, range?.start ?? 0, range?.end ?? size - 1);
      else reply.raw.end();
    } finally {
      hold.release();
    }
  }

  app.head('/blobs/:digest', (req, reply) => serveBlob(req, reply, true));
  app.get('/blobs/:digest', (req, reply) => serveBlob(req, reply, false));

  app.get('/blobs/:digest/metainfo', async (req) => {
    const digest = digestOf(req);
    const ns = namespaceOf(req, false);
    if (ns !== undefined && d.seeder) return d.seeder.metainfo(ns, digest);
    if (ns !== undefined) await d.fetcher.ensure(ns, digest);
    return d.store.metainfo(digest);
  });

  app.get('/peer', async () => {
    if (!d.seeder) throw new NotFoundError('this origin does not seed over P2P (no peer config)', { code: 'ERR_PEER_NOT_CONFIGURED' });
    return d.seeder.endpoint;
  });

  app.get('/blobs/:digest/locations', async (req) => ({ owners: d.ring().owners(digestOf(req)) }));

  app.delete('/blobs/:digest', async (req, reply) => {
    await d.store.delete(digestOf(req));
    return reply.code(204).send();
  });

  app.put('/blobs/:digest', async (req, reply) => {
    const digest = digestOf(req);
    const ns = namespaceOf(req, true)!;
    const replica = query(req).replica === '1';
    const size = contentLength(req);
    const info = await d.store.put(digest, req.body as Readable, { ...(size === undefined ? {} : { size }), pin: true });
    accepted(ns, digest, replica);
    return reply.code(201).send({ digest, ...info });
  });

  app.post('/uploads', async (req, reply) => {
    namespaceOf(req, true);
    const id = await d.store.startUpload();
    return reply.code(201).header('location', `/uploads/${id}`).header('upload-offset', 0).send({ id });
  });

  app.get('/uploads/:id', async (req, reply) => {
    const size = await d.store.uploadSize((req.params as { id: string }).id);
    return reply.code(204).header('upload-offset', size).send();
  });

  app.patch('/uploads/:id', async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const chunk = chunkOf(req);
    const offset = chunk.start ?? await d.store.uploadSize(id);
    let body = req.body as Readable;
    const atomic = query(req).atomic === '1';
    if (chunk.length !== undefined) body = pipeline(body, exactly(chunk.length, id, atomic), () => undefined);
    const size = await d.store.append(id, offset, body, { atomic });
    if (chunk.length !== undefined && size !== offset + chunk.length) {
      throw new InvalidArgumentError(`upload ${id}: the chunk declared ${chunk.length} bytes but ${size - offset} arrived; resume at ${size}`, { code: 'ERR_SIZE_INVALID' });
    }
    return reply.code(204).header('upload-offset', size).send();
  });

  app.put('/uploads/:id/commit', async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const digest = parseDigest(query(req).digest ?? '');
    const ns = namespaceOf(req, true)!;
    const info = await d.store.commit(id, digest, { pin: true, wait: query(req).wait === '1' });
    accepted(ns, digest, false);
    return reply.code(201).send({ digest, ...info });
  });

  app.delete('/uploads/:id', async (req, reply) => {
    await d.store.abort((req.params as { id: string }).id);
    return reply.code(204).send();
  });

  /** A blob accepted here is durable once its write-back is queued; copies go out afterwards. */
  function accepted(namespace: string, digest: Digest, replica: boolean): void {
    d.writeback.enqueue(namespace, digest, replica ? d.replicaDelayMs : 0);
    if (!replica) d.replicate(namespace, digest);
  }
}

function contentLength(req: FastifyRequest): number | undefined {
  const h = req.headers['content-length'];
  if (h === undefined) return undefined;
  const n = Number(h);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`Content-Length ${JSON.stringify(h)} is invalid`, { code: 'ERR_SIZE_INVALID' });
  return n;
}

/**
 * Where a PATCH chunk goes: `Upload-Offset: n`, or `Content-Range: start-end` (inclusive, as the
 * OCI distribution spec writes it; `bytes start-end/total` is accepted too), which also fixes
 * the chunk's length.
 */
function chunkOf(req: FastifyRequest): { start?: number; length?: number } {
  const offset = req.headers['upload-offset'];
  const range = req.headers['content-range'];
  if (range !== undefined) {
    const m = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(String(range).trim());
    const start = Number(m?.[1]);
    const end = Number(m?.[2]);
    if (!m || !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) {
      throw new InvalidArgumentError(`Content-Range ${JSON.stringify(range)} is invalid; expected start-end`, { code: 'ERR_UPLOAD_OFFSET' });
    }
    return { start, length: end - start + 1 };
  }
  if (offset === undefined) return {};
  const n = Number(offset);
  if (!/^\d+$/.test(String(offset)) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`Upload-Offset ${JSON.stringify(offset)} is invalid`, { code: 'ERR_UPLOAD_OFFSET' });
  return { start: n };
}

/**
 * Passes at most `length` bytes; more is an error (ERR_SIZE_INVALID), so a chunk cannot overrun
 * its range. With `whole` fewer is an error too, at the body's end, so an atomic append discards
 * a short chunk instead of keeping it.
 */
function exactly(length: number, id: string, whole: boolean): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > length) done(new InvalidArgumentError(`upload ${id}: the chunk is longer than its Content-Range (${length} bytes)`, { code: 'ERR_SIZE_INVALID' }));
      else done(null, chunk);
    },
    flush(done) {
      if (whole && seen !== length) done(new InvalidArgumentError(`upload ${id}: the chunk held ${seen} bytes, not the ${length} of its Content-Range; it was discarded`, { code: 'ERR_SIZE_INVALID' }));
      else done();
    },
  });
}

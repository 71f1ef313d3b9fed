import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { KrillError, isCategory, parseDigest, parseRange, parseRepository, type Digest } from '@krill/lib';
import type { ProxyContext } from './context.js';

/**
 * `HEAD|GET /v2/<name>/blobs/<digest>` (end-2, and Range reads). With `blobs.redirect` a GET is
 * a 307 to the origin that holds the blob (the client repeats its Range there). Otherwise the
 * origin's response body is handed to fastify, which pipes it to the client with backpressure
 * and destroys either side when the other fails; nothing is buffered beyond the streams' own
 * buffers.
 */
export async function getBlob(ctx: ProxyContext, req: FastifyRequest, reply: FastifyReply, name: string, ref: string): Promise<FastifyReply> {
  const digest = parseDigest(ref);
  reply.header('docker-content-digest', digest).header('accept-ranges', 'bytes').header('content-type', 'application/octet-stream');
  if (req.method === 'HEAD') {
    const { size } = await ctx.origins.stat(name, digest);
    return reply.code(200).header('content-length', size).send();
  }
  if (ctx.redirect) return redirectBlob(ctx, reply, ctx.redirect, name, digest);
  const header = req.headers.range;
  if (header !== undefined) {
    const { size } = await ctx.origins.stat(name, digest);
    const range = parseRange(header, size)!;
    const { body } = await ctx.origins.download(name, digest, { range });
    countPulled(ctx, reply, range.end - range.start + 1);
    return reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`).header('content-length', range.end - range.start + 1).send(body);
  }
  const { size, body } = await ctx.origins.download(name, digest);
  countPulled(ctx, reply, size);
  return reply.code(200).header('content-length', size).send(body);
}

/** `blobs.redirect`: a 307 to where the blob is, in the form of the origin's own blob URL. */
async function redirectBlob(ctx: ProxyContext, reply: FastifyReply, publicUrl: (origin: string) => string, name: string, digest: Digest): Promise<FastifyReply> {
  const { origin } = await ctx.origins.locate(name, digest);
  ctx.metrics.blobRedirects.inc();
  // With the namespace and without `local`, an origin that lost the blob meanwhile fetches it
  // from the namespace's backend rather than answering 404.
  const location = `${publicUrl(origin)}/blobs/${digest}?namespace=${encodeURIComponent(name)}`;
  return reply.code(307).header('location', location).header('content-length', 0).send();
}

/** `POST /v2/<name>/blobs/uploads/`: monolithic (`?digest=`), mount (`?mount=&from=`), or a new session (end-4a/4b, end-11). */
export async function startUpload(ctx: ProxyContext, req: FastifyRequest, reply: FastifyReply, name: string): Promise<FastifyReply> {
  const q = req.query as { digest?: string; mount?: string; from?: string };
  if (q.mount !== undefined) {
    const digest = parseDigest(q.mount);
    const from = q.from === undefined ? name : parseRepository(q.from);
    if (await mount(ctx, name, from, digest)) {
      req.raw.resume();
      return blobCreated(reply, name, digest);
    }
  }
  const id = await ctx.uploads.start(name);
  if (q.digest !== undefined && q.mount === undefined) return finishUpload(ctx, req, reply, name, id, q.digest, true);
  req.raw.resume();
  return reply.code(202).header('location', `/v2/${name}/blobs/uploads/${id}`).header('docker-upload-uuid', id).header('range', '0-0').header('content-length', 0).send();
}

/**
 * Cross-repository mount: false when `from` does not have the blob (the caller then opens an
 * ordinary session, as the spec allows). Origins store blobs by digest, but each namespace may
 * write back to, and fetch on a miss from, a different backend; so the blob is uploaded again
 * under `name`, streamed from the origins. An owner that holds it already drains the body
 * without hashing it and queues the write-back for the new namespace.
 */
async function mount(ctx: ProxyContext, name: string, from: string, digest: Digest): Promise<boolean> {
  let size: number;
  try {
    ({ size } = await ctx.origins.stat(from, digest));
  } catch (err) {
    if (isCategory(err, 'NotFound')) return false;
    throw err;
  }
  if (from !== name) {
    await ctx.origins.upload(name, digest, { size, open: async () => (await ctx.origins.download(from, digest)).body });
  }
  ctx.logger.info({ ref: name, digest, from }, 'blob mounted');
  return true;
}

/**
 * `PATCH /v2/<name>/blobs/uploads/<id>`: a streamed chunk (end-5). With `Content-Range:
 * <start>-<end>` the chunk must begin at the bytes received so far and hold exactly
 * end-start+1 bytes (checked against Content-Length before reading, and against what arrives),
 * else 416 RANGE_INVALID; without it the body is appended.
 */
export async function patchUpload(ctx: ProxyContext, req: FastifyRequest, reply: FastifyReply, name: string, id: string): Promise<FastifyReply> {
  ctx.uploads.get(name, id);
  const cr = req.headers['content-range'];
  const options: { start?: number; length?: number } = {};
  if (cr !== undefined) {
    // The spec's form is `<start>-<end>`; docker and some clients prefix `bytes ` or add `/<total>`.
    const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(String(cr).trim());
    const start = Number(m?.[1]);
    const end = Number(m?.[2]);
    if (!m || end < start) throw new KrillError('InvalidArgument', 'ERR_RANGE_INVALID', `Content-Range ${JSON.stringify(cr)} is not of the form <start>-<end>`);
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) !== end - start + 1) {
      throw new KrillError('InvalidArgument', 'ERR_UPLOAD_OFFSET', `Content-Range ${cr} declares ${end - start + 1} bytes but Content-Length is ${declared}`);
    }
    options.start = start;
    options.length = end - start + 1;
  }
  const size = await ctx.uploads.append(name, id, req.raw as Readable, options);
  return uploadProgress(reply, name, id, size, 202);
}

/** `GET /v2/<name>/blobs/uploads/<id>`: progress (end-13). */
export async function uploadStatus(ctx: ProxyContext, reply: FastifyReply, name: string, id: string): Promise<FastifyReply> {
  return uploadProgress(reply, name, id, ctx.uploads.get(name, id).size, 204);
}

/** `DELETE /v2/<name>/blobs/uploads/<id>`: cancel. */
export async function cancelUpload(ctx: ProxyContext, reply: FastifyReply, name: string, id: string): Promise<FastifyReply> {
  ctx.uploads.get(name, id);
  await ctx.uploads.remove(id);
  return reply.code(204).send();
}

/**
 * `PUT /v2/<name>/blobs/uploads/<id>?digest=` (end-6), with an optional last chunk: commits the
 * origin upload the chunks streamed into (the origin verifies it against the digest) and only
 * then answers 201. A mismatch discards the upload: nothing is stored. An origin that fails here
 * is a 5xx and ends the session; the client starts the upload again.
 */
export async function finishUpload(ctx: ProxyContext, req: FastifyRequest, reply: FastifyReply, name: string, id: string, digestParam: string | undefined, monolithic = false): Promise<FastifyReply> {
  let digest;
  try {
    digest = parseDigest(digestParam ?? '');
  } catch (err) {
    req.raw.resume();
    if (monolithic) await ctx.uploads.remove(id);
    throw err;
  }
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  const started = performance.now();
  try {
    if (hasBody) await ctx.uploads.append(name, id, req.raw as Readable);
    else req.raw.resume();
    const done = await ctx.uploads.finish(name, id);
    // The chunks went straight to an upload on one origin, which hashed them as they came; it
    // verifies them against the digest before anything becomes visible (ERR_DIGEST_MISMATCH
    // otherwise), then replicates the blob to its owners.
    try {
      await ctx.origins.commitUpload(done.remote, name, digest);
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_DIGEST_MISMATCH') ctx.metrics.blobCommits.inc({ result: 'digest_mismatch' });
      throw err;
    }
    ctx.metrics.blobCommits.inc({ result: 'ok' });
    ctx.metrics.blobBytes.inc({ direction: 'push' }, done.size);
    ctx.logger.info({ ref: name, digest, size: done.size, ms: Math.round(performance.now() - started) }, 'blob pushed');
  } catch (err) {
    if (!isCategory(err, 'InvalidArgument')) ctx.metrics.blobCommits.inc({ result: 'failed' });
    // A failed finish ends the session: nothing half-stored, and the client starts again.
    await ctx.uploads.remove(id);
    throw err;
  }
  await ctx.uploads.remove(id, true);
  return blobCreated(reply, name, digest);
}

function countPulled(ctx: ProxyContext, reply: FastifyReply, bytes: number): void {
  // 'finish' means every byte was handed to the kernel; an aborted pull is not counted.
  reply.raw.once('finish', () => ctx.metrics.blobBytes.inc({ direction: 'pull' }, bytes));
}

function blobCreated(reply: FastifyReply, name: string, digest: string): FastifyReply {
  return reply.code(201).header('location', `/v2/${name}/blobs/${digest}`).header('docker-content-digest', digest).header('content-length', 0).send();
}

function uploadProgress(reply: FastifyReply, name: string, id: string, size: number, status: number): FastifyReply {
  // The spec's Range is inclusive; an empty upload reports 0-0 as distribution does.
  return reply.code(status).header('location', `/v2/${name}/blobs/uploads/${id}`).header('docker-upload-uuid', id)
    .header('range', `0-${Math.max(0, size - 1)}`).header('content-length', 0).send();
}

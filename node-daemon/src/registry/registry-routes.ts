import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  InvalidArgumentError, KrillError, MAX_MANIFEST_BYTES, isCategory, isDigest, manifestMediaType, parseDigest, parseRange, parseTag,
  type Digest, type Logger,
} from '@krill/lib';
import { pageParams, parseV2Path, toOciError, type BuildIndexClient, type OciContext } from '@krill/cluster-services';
import type { Agent, BlobHandle } from '../agent/agent.js';

export interface RegistryDeps {
  agent: Agent;
  buildIndex: BuildIndexClient;
  logger: Logger;
  /** Called once per blob body sent, with the bytes sent (for metrics). */
  onServed?: (bytes: number) => void;
}

/**
 * The node's local registry, read only (OCI distribution spec, end-1, end-2, end-3): `GET /v2/`,
 * manifests by tag and by digest, blobs by digest, HEAD, and single Range requests. Tags
 * resolve through the build-index (which asks upstream for pull-through repositories); every
 * blob, manifests included, comes through the agent, and a response starts streaming before
 * the blob is complete. Errors are the spec's error JSON. Writes answer UNSUPPORTED.
 */
export function registerRegistryRoutes(app: FastifyInstance, d: RegistryDeps): void {
  const handle = async (req: FastifyRequest, reply: FastifyReply) => {
    reply.header('docker-distribution-api-version', 'registry/2.0');
    let context: OciContext = 'base';
    try {
      const path = parseV2Path(req.url.split('?')[0]!);
      if (path?.kind === 'base') return reply.code(200).header('content-type', 'application/json').send('{}');
      if (path?.kind === 'manifest') {
        context = 'manifest';
        return await manifest(req, reply, path.name, path.reference);
      }
      if (path?.kind === 'blob') {
        context = 'blob';
        return await blob(req, reply, path.name, parseDigest(path.digest));
      }
      if (path?.kind === 'tags') {
        context = 'tags';
        return await tags(req, reply, path.name);
      }
      return reply.code(404).send({ errors: [{ code: 'UNSUPPORTED', message: `this node's registry is read only and serves no ${req.url.split('?')[0]}` }] });
    } catch (err) {
      const oci = toOciError(err, context);
      if (oci.status >= 500) req.log.warn({ err: (err as Error).message, url: req.url }, 'request failed');
      if (reply.sent) return reply;
      return reply.code(oci.status).header('content-type', 'application/json').send(oci.body);
    }
  };
  // HEAD is handled here, not by fastify's implicit HEAD route, which would drop Content-Length.
  for (const url of ['/v2', '/v2/*']) app.route({ method: ['GET', 'HEAD'], url, handler: handle, exposeHeadRoute: false });

  async function manifest(req: FastifyRequest, reply: FastifyReply, name: string, reference: string): Promise<FastifyReply> {
    const digest: Digest = reference.includes(':') ? parseDigest(reference) : (await d.buildIndex.getTag(name, parseTag(reference))).digest;
    if (!isDigest(digest)) throw new InvalidArgumentError(`build-index answered an invalid digest for ${name}:${reference}`, { code: 'ERR_MANIFEST_INVALID' });
    const h = await openBlob(name, digest, 'manifest');
    try {
      if (h.size > MAX_MANIFEST_BYTES) throw new InvalidArgumentError(`manifest ${digest} is ${h.size} bytes, more than ${MAX_MANIFEST_BYTES}`, { code: 'ERR_MANIFEST_INVALID' });
      const chunks: Buffer[] = [];
      for await (const c of h.read()) chunks.push(c as Buffer);
      const bytes = Buffer.concat(chunks);
      reply.code(200).header('content-type', manifestMediaType(bytes)).header('docker-content-digest', digest).header('content-length', bytes.length);
      return req.method === 'HEAD' ? reply.send() : reply.send(bytes);
    } finally {
      h.release();
    }
  }

  /** `GET /v2/<name>/tags/list` (end-8a), one page of up to `n` (at most 1000, as distribution). */
  async function tags(req: FastifyRequest, reply: FastifyReply, name: string): Promise<FastifyReply> {
    const p = pageParams(req.query as { n?: string; last?: string });
    const page = p.limit === 0 ? { items: [] } : await d.buildIndex.listTags(name, p);
    return reply.code(200).send({ name, tags: page.items });
  }

  async function blob(req: FastifyRequest, reply: FastifyReply, name: string, digest: Digest): Promise<FastifyReply> {
    const h = await openBlob(name, digest, 'blob');
    reply.header('docker-content-digest', digest).header('accept-ranges', 'bytes').header('content-type', 'application/octet-stream');
    if (req.method === 'HEAD') {
      h.release();
      return reply.code(200).header('content-length', h.size).send();
    }
    const range = parseRange(req.headers.range, h.size);
    const body = h.read(range);
    const length = range ? range.end - range.start + 1 : h.size;
    // The handle is held until the body is done, so the cache keeps the blob while it is read.
    reply.raw.once('close', () => {
      h.release();
      if (reply.raw.writableFinished) d.onServed?.(length);
    });
    if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${h.size}`);
    else reply.code(200);
    return reply.header('content-length', length).send(body);
  }

  async function openBlob(name: string, digest: Digest, what: 'manifest' | 'blob'): Promise<BlobHandle> {
    try {
      return await d.agent.open(name, digest);
    } catch (err) {
      if (what === 'manifest' && isCategory(err, 'NotFound')) throw new KrillError('NotFound', 'ERR_MANIFEST_NOT_FOUND', `manifest ${digest} of ${name} is unknown`, { cause: err });
      throw err;
    }
  }
}

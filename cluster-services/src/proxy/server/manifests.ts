import type { FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import {
  InvalidArgumentError, KrillError, MAX_MANIFEST_BYTES, isCategory, isDigest, parseDigest, parseManifest, parseTag, sha256, manifestMediaType,
  type Digest,
} from '@krill/lib';
import type { Page } from '../../build-index/index.js';
import type { ProxyContext } from './context.js';
import { pageParams } from './paths.js';

/** References of one manifest checked at once: enough to hide latency without flooding the origins. */
const STAT_CONCURRENCY = 8;

/**
 * Reads a manifest body of at most MAX_MANIFEST_BYTES. Larger is 413 with MANIFEST_INVALID: the
 * distribution spec (v1.1, "Pushing Manifests") says a registry that limits manifest size SHOULD
 * answer 413 and names no error code for it; MANIFEST_INVALID is the code distribution itself
 * gives an unreadable manifest body, and SIZE_INVALID is defined for blob uploads only.
 */
async function readCapped(req: FastifyRequest): Promise<Buffer> {
  const tooLarge = () => new KrillError('InvalidArgument', 'ERR_MANIFEST_TOO_LARGE', `manifest is larger than ${MAX_MANIFEST_BYTES} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > MAX_MANIFEST_BYTES) throw tooLarge();
  // Events rather than `for await`: leaving an async iterator destroys the request, and with it
  // the connection the error answer has to go out on. The caller drains what is left.
  return new Promise((resolve, reject) => {
    const body = req.raw;
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (err?: Error) => {
      body.off('data', onData).off('end', onEnd).off('error', stop);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > MAX_MANIFEST_BYTES) stop(tooLarge());
      else chunks.push(c);
    };
    const onEnd = () => stop();
    body.on('data', onData).on('end', onEnd).on('error', stop);
  });
}

/**
 * `PUT /v2/<name>/manifests/<reference>` (end-7): a manifest or index of at most 4 MiB whose
 * every reference is already on the origins, stored as a blob, then the tag set. Nothing is
 * stored when any check fails.
 */
export async function putManifest(ctx: ProxyContext, req: FastifyRequest, reply: FastifyReply, name: string, reference: string): Promise<FastifyReply> {
  const byDigest = reference.startsWith('sha256:') || reference.includes(':');
  const expected = byDigest ? parseDigest(reference) : undefined;
  const tag = byDigest ? undefined : parseTag(reference);
  const bytes = await readCapped(req);
  const digest = sha256(bytes);
  if (expected && expected !== digest) {
    throw new InvalidArgumentError(`manifest hashes to ${digest}, not ${expected}`, { code: 'ERR_DIGEST_MISMATCH' });
  }
  const manifest = parseManifest(bytes, req.headers['content-type']);
  const refs = manifest.references;
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(STAT_CONCURRENCY, refs.length) }, async () => {
    while (next < refs.length) {
      const ref = refs[next++]!;
      try {
        await ctx.origins.stat(name, ref.digest);
      } catch (err) {
        if (!isCategory(err, 'NotFound')) throw err;
        const e = new KrillError('InvalidArgument', 'ERR_MANIFEST_BLOB_UNKNOWN', `manifest references ${ref.digest}, which was not pushed to ${name}`);
        (e as KrillError & { detail: unknown }).detail = { digest: ref.digest };
        throw e;
      }
    }
  }));
  await ctx.origins.upload(name, digest, { size: bytes.length, open: () => Readable.from([bytes]) });
  if (tag !== undefined) await ctx.buildIndex.putTag(name, tag, digest);
  ctx.metrics.manifestPushes.inc({ kind: manifest.isIndex ? 'index' : 'manifest' });
  ctx.logger.info({ ref: `${name}:${reference}`, digest, mediaType: manifest.mediaType }, 'manifest pushed');
  return reply.code(201).header('location', `/v2/${name}/manifests/${digest}`).header('docker-content-digest', digest).header('content-length', 0).send();
}

/** `GET|HEAD /v2/<name>/manifests/<reference>` (end-3): tags resolve through the build-index. */
export async function getManifest(ctx: ProxyContext, req: FastifyRequest, reply: FastifyReply, name: string, reference: string): Promise<FastifyReply> {
  let digest: Digest;
  if (reference.includes(':')) digest = parseDigest(reference);
  else digest = (await ctx.buildIndex.getTag(name, parseTag(reference))).digest;
  if (!isDigest(digest)) throw new InvalidArgumentError(`build-index answered an invalid digest for ${name}:${reference}`, { code: 'ERR_MANIFEST_INVALID' });
  let bytes: Buffer;
  try {
    bytes = await ctx.origins.fetchBytes(name, digest, MAX_MANIFEST_BYTES);
  } catch (err) {
    if (isCategory(err, 'NotFound')) throw new KrillError('NotFound', 'ERR_MANIFEST_NOT_FOUND', `manifest ${digest} of ${name} is unknown`, { cause: err });
    throw err;
  }
  reply.code(200).header('content-type', manifestMediaType(bytes)).header('docker-content-digest', digest).header('content-length', bytes.length);
  return req.method === 'HEAD' ? reply.send() : reply.send(bytes);
}

/** `GET /v2/<name>/tags/list` (end-8a/8b), with `n`, `last` and a Link header to the next page. */
export async function listTags(ctx: ProxyContext, req: FastifyRequest, reply: FastifyReply, name: string): Promise<FastifyReply> {
  const p = pageParams(req.query as { n?: string; last?: string });
  // `n=0` asks for no entries, and distribution answers an empty list; the build-index takes limit >= 1.
  const page: Page<string> = p.limit === 0 ? { items: [] } : await ctx.buildIndex.listTags(name, p);
  // A repository without local tags answers an empty list, not NAME_UNKNOWN: a pull-through
  // repository has its tags upstream, and skopeo lists tags before it reads a manifest.
  if (page.next !== undefined) reply.header('link', `</v2/${name}/tags/list?n=${p.limit}&last=${encodeURIComponent(page.next)}>; rel="next"`);
  return reply.code(200).send({ name, tags: page.items });
}

/** `GET /v2/_catalog`, with `n`, `last` and a Link header to the next page. */
export async function catalog(ctx: ProxyContext, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const p = pageParams(req.query as { n?: string; last?: string });
  const page: Page<string> = p.limit === 0 ? { items: [] } : await ctx.buildIndex.listRepositories(p);
  if (page.next !== undefined) reply.header('link', `</v2/_catalog?n=${p.limit}&last=${encodeURIComponent(page.next)}>; rel="next"`);
  return reply.code(200).send({ repositories: page.items });
}

import type { FastifyReply, FastifyRequest } from 'fastify';
import { InvalidArgumentError, KrillError, createHttpService, createMembership, type Logger, type MemberResolver } from '@krill/lib';
import { createBuildIndexClient, type BuildIndexClient } from '../../build-index/index.js';
import { createOriginClient, type OriginClient } from '../../origin/index.js';
import type { ProxyConfig } from '../config.js';
import { cancelUpload, finishUpload, getBlob, patchUpload, startUpload, uploadStatus } from './blobs.js';
import type { ProxyContext } from './context.js';
import { catalog, getManifest, listTags, putManifest } from './manifests.js';
import { toOciError, type OciContext } from './oci-errors.js';
import { parseV2Path, type V2Path } from './paths.js';
import { createProxyMetrics } from './proxy-metrics.js';
import { UploadSessions } from './upload-sessions.js';

const unsupported = (method: string, what: string) => new KrillError('InvalidArgument', 'ERR_UNSUPPORTED', `${method} is not supported on ${what}`);

/** Routes one parsed /v2/ request to its handler. */
async function dispatch(ctx: ProxyContext, req: FastifyRequest, reply: FastifyReply, path: V2Path): Promise<FastifyReply> {
  const m = req.method;
  switch (path.kind) {
    case 'base':
      return reply.code(200).header('content-type', 'application/json').send('{}');
    case 'catalog':
      if (m === 'GET') return catalog(ctx, req, reply);
      break;
    case 'tags':
      if (m === 'GET') return listTags(ctx, req, reply, path.name);
      break;
    case 'manifest':
      if (m === 'GET' || m === 'HEAD') return getManifest(ctx, req, reply, path.name, path.reference);
      if (m === 'PUT') return putManifest(ctx, req, reply, path.name, path.reference);
      break;
    case 'blob':
      if (m === 'GET' || m === 'HEAD') return getBlob(ctx, req, reply, path.name, path.digest);
      break;
    case 'uploads':
      if (m === 'POST') return startUpload(ctx, req, reply, path.name);
      break;
    case 'upload':
      if (m === 'PATCH') return patchUpload(ctx, req, reply, path.name, path.id);
      if (m === 'PUT') return finishUpload(ctx, req, reply, path.name, path.id, (req.query as { digest?: string }).digest);
      if (m === 'GET') return uploadStatus(ctx, reply, path.name, path.id);
      if (m === 'DELETE') return cancelUpload(ctx, reply, path.name, path.id);
      break;
  }
  req.raw.resume();
  throw unsupported(m, path.kind);
}

const CONTEXT: Record<V2Path['kind'], OciContext> = {
  base: 'base', catalog: 'tags', tags: 'tags', manifest: 'manifest', blob: 'blob', uploads: 'upload', upload: 'upload',
};

/** Maps an origin's URL to the one clients reach it at (`blobs.originUrls`, by position). */
function publicOrigins(config: ProxyConfig): (origin: string) => string {
  if (config.blobs.originUrls && config.origins.dns) {
    throw new InvalidArgumentError('blobs.originUrls pairs with origins.urls by position and cannot be used with origins.dns: resolved origins are redirected to at their own addresses', { code: 'ERR_CONFIG_INVALID' });
  }
  const pub = config.blobs.originUrls ?? config.origins.urls;
  if (pub.length !== config.origins.urls.length) {
    throw new InvalidArgumentError(`blobs.originUrls has ${pub.length} URLs but origins.urls has ${config.origins.urls.length}; they must correspond one to one`, { code: 'ERR_CONFIG_INVALID' });
  }
  const map = new Map(config.origins.urls.map((u, i) => [u, pub[i]!.replace(/\/+$/, '')]));
  return (origin) => map.get(origin) ?? origin;
}

/** Serves the OCI distribution API over the origins and the build-index. */
export async function startProxy(config: ProxyConfig, deps: {
  logger: Logger; originClient?: OriginClient; buildIndexClient?: BuildIndexClient;
  /** Resolves `origins.dns`; node:dns by default. */
  dnsResolver?: MemberResolver;
}): Promise<{ url: string; close(): Promise<void> }> {
  const logger = deps.logger;
  // Checked first: a bad pairing must fail before anything is started.
  const redirect = config.blobs.redirect ? publicOrigins(config) : undefined;
  const origins = deps.originClient ?? createOriginClient({
    origins: createMembership({ what: 'origins', ...config.origins, resolver: deps.dnsResolver, logger }), replicas: config.origins.replicas, logger,
  });
  const buildIndex = deps.buildIndexClient ?? createBuildIndexClient({ urls: config.buildIndex.urls, logger });
  const uploads = await UploadSessions.open(config.uploadDir, config.uploadTtlSeconds * 1000, origins);
  const service = createHttpService({ name: 'proxy', logger, shutdownTimeoutMs: config.shutdownTimeoutMs });
  const metrics = createProxyMetrics(service.metrics, () => uploads.count);
  const ctx: ProxyContext = { origins, buildIndex, uploads, logger, metrics, redirect };
  const app = service.app;
  // Bodies (blobs, manifests) are read by the handlers from the raw request, never buffered by fastify.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
  const handle = async (req: FastifyRequest, reply: FastifyReply) => {
    reply.header('docker-distribution-api-version', 'registry/2.0');
    let context: OciContext = 'base';
    try {
      const path = parseV2Path(req.url.split('?')[0]!);
      if (!path) {
        req.raw.resume();
        return reply.code(404).send({ errors: [{ code: 'NOT_FOUND', message: `no endpoint at ${req.url.split('?')[0]}` }] });
      }
      context = CONTEXT[path.kind];
      return await dispatch(ctx, req, reply, path);
    } catch (err) {
      const oci = toOciError(err, context);
      if (oci.status >= 500) req.log.warn({ err: (err as Error).message, url: req.url }, 'request failed');
      else req.log.debug({ err: (err as Error).message, url: req.url, code: oci.body.errors[0]!.code }, 'request refused');
      if (!req.raw.readableEnded) req.raw.resume();
      return reply.code(oci.status).header('content-type', 'application/json').send(oci.body);
    }
  };
  app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'], url: '/v2', handler: handle, exposeHeadRoute: false });
  app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'], url: '/v2/*', handler: handle, exposeHeadRoute: false });
  const url = await service.listen(config.listen.host, config.listen.port);
  let closing: Promise<void> | undefined;
  return {
    url,
    close() {
      closing ??= (async () => {
        await service.close();
        await uploads.close();
        if (!deps.originClient) await origins.close();
        if (!deps.buildIndexClient) await buildIndex.close();
      })();
      return closing;
    },
  };
}

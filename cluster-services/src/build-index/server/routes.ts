import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  FailedPreconditionError, InvalidArgumentError, NotFoundError, parseDigest, parseRepository, parseTag, useJsonErrors,
  type Digest,
} from '@krill/lib';
import type { OriginClient } from '../../origin/index.js';
import type { UpstreamCredentials } from '../../upstream/index.js';
import { CREDENTIALS_HEADER, parseCredentialsHeader } from '../credentials-header.js';
import type { TagStore } from '../store/tag-store.js';
import { checkDependencies } from './dependencies.js';
import { putResultOf, type BuildIndexMetrics } from './metrics.js';
import type { TagResolver } from './resolver.js';

/** Pages are capped so one request cannot ask for a whole catalog at once; distribution caps at 1000 too. */
export const MAX_PAGE = 1000;
/** The page size when the caller names none, as the build-index client documents. */
export const DEFAULT_PAGE = 100;

export interface RouteDeps {
  store: TagStore;
  origins: OriginClient;
  resolver: TagResolver;
  metrics: BuildIndexMetrics;
}

/**
 * The build-index API; only its client calls it. Repository names contain slashes, so names
 * travel as query parameters (URL-encoded):
 * - `PUT /tags?repo=R&tag=T` with `{ "digest": "sha256:…" }` → 201 `{ digest, mediaType }`, once
 *   the manifest and everything it references are on the origins;
 * - `GET /tags?repo=R&tag=T` → `{ digest, mediaType?, source }`; for a pull-through repository
 *   with the caller's registry credentials in `x-krill-upstream-credentials` (see
 *   credentials-header.ts), upstream is asked with those (see TagResolver), and its refusal is
 *   401 Unauthenticated; a local repository ignores them. `DELETE /tags?repo=R&tag=T` → 204;
 * - `GET /repositories/tags?repo=R&last=&limit=` and `GET /repositories?last=&limit=` →
 *   `{ items, next? }` in lexical order, like the distribution spec's `n` and `last`.
 * Errors are JSON `{ category, code, message }` (lib's errorBody) with the category's status.
 */
export function registerBuildIndexRoutes(app: FastifyInstance, d: RouteDeps): void {
  useJsonErrors(app);
  const credentials = new WeakMap<FastifyRequest, string>();
  // First thing on every route: the credentials leave the request's headers, so no log line or
  // error report that shows headers, now or added later, can hold them.
  app.addHook('onRequest', async (req) => {
    const value = takeHeader(req);
    if (value !== undefined) credentials.set(req, value);
  });

  app.put('/tags', async (req, reply) => {
    try {
      const { repo, tag } = refOf(req);
      const digest = digestOf(req.body);
      refuseIfPullThrough(d.resolver, repo, tag);
      const manifest = await checkDependencies({ origins: d.origins, repo, digest, signal: signalOf(reply) });
      d.store.put(repo, tag, digest, manifest.mediaType);
      d.metrics.tagPuts.inc({ result: 'ok' });
      req.log.info({ ref: `${repo}:${tag}`, digest }, 'tag set');
      return reply.code(201).send({ digest, mediaType: manifest.mediaType });
    } catch (err) {
      d.metrics.tagPuts.inc({ result: putResultOf(err) });
      throw err;
    }
  });

  app.get('/tags', async (req) => {
    const { repo, tag } = refOf(req);
    const raw = credentials.get(req);
    const caller: UpstreamCredentials | undefined = raw === undefined ? undefined : parseCredentialsHeader(raw);
    return d.resolver.resolve(repo, tag, { credentials: caller });
  });

  app.delete('/tags', async (req, reply) => {
    const { repo, tag } = refOf(req);
    refuseIfPullThrough(d.resolver, repo, tag);
    if (!d.store.delete(repo, tag)) throw new NotFoundError(`tag ${repo}:${tag} does not exist`, { code: 'ERR_TAG_NOT_FOUND' });
    req.log.info({ ref: `${repo}:${tag}` }, 'tag deleted');
    return reply.code(204).send();
  });

  // Pull-through repositories list nothing here: their tags live upstream and are never stored.
  app.get('/repositories/tags', async (req) => {
    const repo = parseRepository(param(req, 'repo') ?? '');
    return d.store.listTags(repo, pageOf(req));
  });

  app.get('/repositories', async (req) => d.store.listRepositories(pageOf(req)));
}

/**
 * Removes the credentials header from the request (the parsed headers, and the raw list Node
 * keeps beside them) and returns its value; a header given twice arrives joined by ", ", which
 * no Basic value contains, and so is refused when parsed.
 */
function takeHeader(req: FastifyRequest): string | undefined {
  const value = req.raw.headers[CREDENTIALS_HEADER];
  if (value === undefined) return undefined;
  delete req.raw.headers[CREDENTIALS_HEADER];
  const raw = req.raw.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === CREDENTIALS_HEADER) raw[i + 1] = '[redacted]';
  return Array.isArray(value) ? value.join(', ') : value;
}

function refOf(req: FastifyRequest): { repo: string; tag: string } {
  return { repo: parseRepository(param(req, 'repo') ?? ''), tag: parseTag(param(req, 'tag') ?? '') };
}

function digestOf(body: unknown): Digest {
  const digest = (body as { digest?: unknown } | null | undefined)?.digest;
  if (typeof digest !== 'string') throw new InvalidArgumentError('the body must be JSON { "digest": "sha256:<hex>" }', { code: 'ERR_DIGEST_INVALID' });
  return parseDigest(digest);
}

function refuseIfPullThrough(resolver: TagResolver, repo: string, tag: string): void {
  if (!resolver.isPullThrough(repo)) return;
  throw new FailedPreconditionError(`${repo}:${tag}: repository ${repo} is served by pull-through from its upstream registry; its tags are changed there`, { code: 'ERR_TAG_PULL_THROUGH' });
}

function pageOf(req: FastifyRequest): { limit: number; last: string | undefined } {
  const raw = param(req, 'limit');
  const limit = raw === undefined ? DEFAULT_PAGE : Number(raw);
  if (!Number.isInteger(limit) || limit < 1) {
    throw new InvalidArgumentError(`limit ${JSON.stringify(raw)} must be a positive integer`, { code: 'ERR_LIMIT_INVALID' });
  }
  return { limit: Math.min(limit, MAX_PAGE), last: param(req, 'last') };
}

/** A query parameter given at most once. */
function param(req: FastifyRequest, name: string): string | undefined {
  const value = (req.query as Record<string, unknown>)[name];
  if (value === undefined || typeof value === 'string') return value;
  throw new InvalidArgumentError(`query parameter ${name} must be given once`, { code: 'ERR_QUERY_INVALID' });
}

/** Aborted when the caller goes away before the answer, so its dependency check stops. */
function signalOf(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Counter } from 'prom-client';
import {
  InvalidArgumentError, NotFoundError, parseDigest, parseRepository, parseTag, useJsonErrors,
} from '@krill/lib';
import type { OriginClient } from '../../origin/index.js';
import type { TagStore } from '../store/tag-store.js';
import { checkDependencies } from './dependencies.js';
import type { createTagResolver } from './resolver.js';

/** Pages are capped so one request cannot ask for a whole catalog at once (distribution caps at 1000 too). */
const MAX_PAGE = 1000;
const DEFAULT_PAGE = 100;

type Q = { repo?: string; tag?: string; last?: string; limit?: string };

/**
 * The build-index API (internal: only its client calls it). Repository names contain slashes, so
 * they travel as query parameters:
 * - `PUT /tags?repo=&tag=` with `{ "digest": "sha256:…" }`; `GET|DELETE /tags?repo=&tag=`;
 * - `GET /repositories/tags?repo=&last=&limit=`; `GET /repositories?last=&limit=` → `{ items, next? }`.
 * Errors are JSON `{ category, code, message }` with the category's HTTP status.
 */
export function registerBuildIndexRoutes(app: FastifyInstance, d: {
  store: TagStore; origins: OriginClient; resolver: ReturnType<typeof createTagResolver>; puts: Counter;
}): void {
  useJsonErrors(app);
  const q = (req: FastifyRequest) => req.query as Q;
  const repoOf = (req: FastifyRequest) => parseRepository(q(req).repo ?? '');
  const tagOf = (req: FastifyRequest) => parseTag(q(req).tag ?? '');
  const limitOf = (req: FastifyRequest) => {
    const raw = q(req).limit;
    const n = raw === undefined ? DEFAULT_PAGE : Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`limit ${JSON.stringify(raw)} must be a positive integer`, { code: 'ERR_LIMIT_INVALID' });
    return Math.min(n, MAX_PAGE);
  };

  app.put('/tags', async (req, reply) => {
    const repo = repoOf(req);
    const tag = tagOf(req);
    const body = req.body as { digest?: unknown; mediaType?: unknown } | undefined;
    const digest = parseDigest(typeof body?.digest === 'string' ? body.digest : '');
    await checkDependencies(d.origins, repo, digest);
    d.store.put(repo, tag, digest, typeof body?.mediaType === 'string' ? body.mediaType : undefined);
    d.puts.inc();
    req.log.info({ ref: `${repo}:${tag}`, digest }, 'tag set');
    return reply.code(201).send({ digest });
  });

  app.get('/tags', async (req) => d.resolver.resolve(repoOf(req), tagOf(req)));

  app.delete('/tags', async (req, reply) => {
    const repo = repoOf(req);
    const tag = tagOf(req);
    if (!d.store.delete(repo, tag)) throw new NotFoundError(`tag ${repo}:${tag} does not exist`, { code: 'ERR_TAG_NOT_FOUND' });
    return reply.code(204).send();
  });

  app.get('/repositories/tags', async (req) => d.store.listTags(repoOf(req), limitOf(req), q(req).last));
  app.get('/repositories', async (req) => d.store.listRepositories(limitOf(req), q(req).last));
}

import { InvalidArgumentError, parseRepository } from '@krill/lib';

/** A request path under /v2/ taken apart (distribution spec "Endpoints"). */
export type V2Path =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string };

const ROUTES: Array<[RegExp, (m: RegExpExecArray) => V2Path]> = [
  [/^(.+)\/blobs\/uploads\/?$/, (m) => ({ kind: 'uploads', name: m[1]! })],
  [/^(.+)\/blobs\/uploads\/([^/]+)$/, (m) => ({ kind: 'upload', name: m[1]!, id: m[2]! })],
  [/^(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: 'blob', name: m[1]!, digest: m[2]! })],
  [/^(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: 'manifest', name: m[1]!, reference: m[2]! })],
  [/^(.+)\/tags\/list$/, (m) => ({ kind: 'tags', name: m[1]! })],
];

/**
 * Parses the path (without the query) after `/v2/`. Repository names hold slashes, so the
 * endpoint is found from the end. The name is validated: InvalidArgument ERR_NAME_INVALID.
 * Undefined for a path that is no endpoint.
 */
export function parseV2Path(rawPath: string): V2Path | undefined {
  let path: string;
  try {
    path = decodeURIComponent(rawPath.replace(/^\/v2\/?/, ''));
  } catch {
    throw new InvalidArgumentError(`path ${JSON.stringify(rawPath)} is not valid percent-encoding`, { code: 'ERR_NAME_INVALID' });
  }
  if (path === '') return { kind: 'base' };
  if (path === '_catalog') return { kind: 'catalog' };
  for (const [re, make] of ROUTES) {
    const m = re.exec(path);
    if (m) {
      const parsed = make(m);
      parseRepository((parsed as { name: string }).name);
      return parsed;
    }
  }
  return undefined;
}

/** Page sizes for tag lists and the catalog; distribution caps `n` at 1000 too. */
const MAX_PAGE = 1000;

/**
 * The `n` and `last` query parameters of a paged list (spec end-8b, catalog): `n` defaults to
 * 100 and is capped at 1000; InvalidArgument ERR_PAGINATION_INVALID when it is not a
 * non-negative integer.
 */
export function pageParams(q: { n?: string; last?: string }): { limit: number; last?: string } {
  const n = q.n === undefined ? 100 : Number(q.n);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`n ${JSON.stringify(q.n)} must be a non-negative integer`, { code: 'ERR_PAGINATION_INVALID' });
  return { limit: Math.min(n, MAX_PAGE), ...(q.last ? { last: q.last } : {}) };
}

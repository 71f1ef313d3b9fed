import { Agent, request, type Dispatcher } from 'undici';
import {
  CanceledError, InternalError, UnavailableError, errorFromBody, isDigest, type Digest, type KrillError, type Logger,
} from '@krill/lib';
import { CREDENTIALS_HEADER, formatCredentialsHeader } from '../credentials-header.js';
import type { BuildIndexClient, Page } from './build-index-client.js';

export interface BuildIndexClientOptions {
  /** Base URLs of the build-indexes, tried in order. */
  urls: string[];
  logger: Logger;
  /** Time to connect, and to wait for an answer's headers and body, in ms (default 30 s). */
  timeoutMs?: number;
}

/**
 * A put waits for its dependency check: a few hundred origin stats for real images, eight at a
 * time. 30 s covers that on a loaded cluster and still fails over before a kubelet gives up.
 */
const DEFAULT_TIMEOUT_MS = 30_000;
/** Idle connections are kept this long: tag lookups come in bursts, one per image pulled. */
const KEEP_ALIVE_MS = 30_000;

type Query = Record<string, string | number | undefined>;

interface CallOptions {
  body?: unknown;
  /** Request headers; the caller's credentials travel here and are never logged. */
  headers?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * The build-index client over HTTP (see BuildIndexClient). Each call tries the URLs in order and
 * moves to the next on a network error or a 5xx; a 4xx is the answer (so a 401, upstream's
 * refusal of the caller's credentials, is thrown as Unauthenticated at once). Errors are rebuilt from
 * the server's JSON with errorFromBody, so their codes survive; when some build-index answered
 * with a 5xx, the last such answer is thrown, and when none answered at all, Unavailable
 * ERR_BUILD_INDEX_UNAVAILABLE. An aborted signal gives Canceled without trying further.
 */
export function createBuildIndexClient(options: BuildIndexClientOptions): BuildIndexClient {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const dispatcher = new Agent({ keepAliveTimeout: KEEP_ALIVE_MS, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connect: { timeout: timeoutMs } });
  const log = options.logger;

  async function once(base: string, method: Dispatcher.HttpMethod, path: string, c: CallOptions): Promise<{ status: number; json: unknown }> {
    const res = await request(`${base}${path}`, {
      method, dispatcher, ...(c.signal ? { signal: c.signal } : {}),
      headers: { ...c.headers, ...(c.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(c.body === undefined ? {} : { body: JSON.stringify(c.body) }),
    });
    const text = await res.body.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      // Not krill's JSON (a load balancer's error page, say): the status alone decides.
      json = undefined;
    }
    return { status: res.statusCode, json };
  }

  async function call(method: Dispatcher.HttpMethod, path: string, query: Query, c: CallOptions = {}): Promise<unknown> {
    const { signal } = c;
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) qs.set(k, String(v));
    const what = `build-index ${method} ${path}`;
    let unreachable: unknown;
    let answered: KrillError | undefined;
    for (const base of options.urls) {
      let res: { status: number; json: unknown };
      try {
        res = await once(base, method, `${path}?${qs}`, c);
      } catch (err) {
        if (signal?.aborted) throw new CanceledError(`${what}: canceled`, { code: 'ERR_CANCELED', cause: err });
        unreachable = err;
        log.warn({ url: base, err: (err as Error).message }, 'build-index unreachable; trying the next');
        continue;
      }
      if (res.status < 400) return res.json;
      const err = errorFromBody(res.status, res.json, what);
      if (res.status < 500) throw err;
      answered = err;
      log.warn({ url: base, status: res.status, code: err.code, err: err.message }, 'build-index failed; trying the next');
    }
    if (answered) throw answered;
    const reason = unreachable === undefined ? 'no build-index URL configured' : (unreachable as Error).message;
    throw new UnavailableError(`${what}: no build-index answered: ${reason}`, { code: 'ERR_BUILD_INDEX_UNAVAILABLE', cause: unreachable });
  }

  return {
    async putTag(repo, tag, digest, signal) {
      await call('PUT', '/tags', { repo, tag }, { body: { digest }, signal });
    },
    async getTag(repo, tag, signal, o = {}) {
      const headers = o.credentials ? { [CREDENTIALS_HEADER]: formatCredentialsHeader(o.credentials) } : undefined;
      const json = (await call('GET', '/tags', { repo, tag }, { signal, headers })) as { digest?: unknown; mediaType?: unknown } | undefined;
      if (!isDigest(json?.digest)) throw new InternalError(`build-index answered ${repo}:${tag} without a valid digest`, { code: 'ERR_BUILD_INDEX_RESPONSE' });
      return { digest: json.digest as Digest, ...(typeof json.mediaType === 'string' ? { mediaType: json.mediaType } : {}) };
    },
    listTags: async (repo, o = {}) => toPage(await call('GET', '/repositories/tags', { repo, limit: o.limit, last: o.last }, { signal: o.signal })),
    listRepositories: async (o = {}) => toPage(await call('GET', '/repositories', { limit: o.limit, last: o.last }, { signal: o.signal })),
    close: () => dispatcher.close(),
  };
}

function toPage(json: unknown): Page<string> {
  const p = json as { items?: unknown; next?: unknown } | undefined;
  if (!Array.isArray(p?.items) || !p.items.every((x) => typeof x === 'string')) {
    throw new InternalError('build-index answered a list without items', { code: 'ERR_BUILD_INDEX_RESPONSE' });
  }
  return typeof p.next === 'string' ? { items: p.items as string[], next: p.next } : { items: p.items as string[] };
}

import { Agent, request, type Dispatcher } from 'undici';
import { UnavailableError, errorFromBody, isKrillError, type Digest, type Logger } from '@krill/lib';
import type { BuildIndexClient, Page } from './build-index-client.js';

export interface BuildIndexClientOptions {
  urls: string[];
  logger: Logger;
  timeoutMs?: number;
}

/** The build-index client over HTTP: tries each build-index in turn on network errors and 5xx. */
export function createBuildIndexClient(options: BuildIndexClientOptions): BuildIndexClient {
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, headersTimeout: options.timeoutMs ?? 30_000, bodyTimeout: options.timeoutMs ?? 30_000 });

  async function call<T>(method: Dispatcher.HttpMethod, path: string, params: Record<string, string | number | undefined>, body?: unknown, signal?: AbortSignal): Promise<T> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) qs.set(k, String(v));
    let last: unknown;
    for (const base of options.urls) {
      try {
        const res = await request(`${base}${path}?${qs}`, {
          method, dispatcher, ...(signal ? { signal } : {}),
          ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
        });
        const text = await res.body.text();
        const json = text ? (JSON.parse(text) as unknown) : undefined;
        if (res.statusCode >= 400) throw errorFromBody(res.statusCode, json, `build-index ${method} ${path}`);
        return json as T;
      } catch (err) {
        last = err;
        if (isKrillError(err) && err.category !== 'Unavailable') throw err;
        options.logger.debug({ url: base, err: (err as Error).message }, 'build-index failed; trying the next');
      }
    }
    throw new UnavailableError(`no build-index answered: ${(last as Error | undefined)?.message ?? 'none configured'}`, { code: 'ERR_BUILD_INDEX_UNAVAILABLE', cause: last });
  }

  return {
    async putTag(repo, tag, digest, signal) {
      await call('PUT', '/tags', { repo, tag }, { digest }, signal);
    },
    getTag: (repo, tag, signal) => call<{ digest: Digest; mediaType?: string }>('GET', '/tags', { repo, tag }, undefined, signal),
    listTags: async (repo, o = {}) => toPage(await call('GET', '/repositories/tags', { repo, limit: o.limit, last: o.last }, undefined, o.signal)),
    listRepositories: async (o = {}) => toPage(await call('GET', '/repositories', { limit: o.limit, last: o.last }, undefined, o.signal)),
    close: () => dispatcher.close(),
  };
}

function toPage(p: { items: string[]; next?: string }): Page<string> {
  return p.next === undefined ? { items: p.items } : { items: p.items, next: p.next };
}

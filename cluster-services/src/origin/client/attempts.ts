import { request, type Dispatcher } from 'undici';
import { UnavailableError, errorFromBody, isKrillError, type Digest, type KrillError, type Logger } from '@krill/lib';

/** The URL of a blob on one origin; `local` asks it not to fetch from its backend on a miss. */
export const blobUrl = (origin: string, digest: Digest, ns: string | undefined, local: boolean) =>
  `${origin}/blobs/${digest}?${ns === undefined ? '' : `namespace=${encodeURIComponent(ns)}`}${local ? '&local=1' : ''}`;

/**
 * Tries `nodes` in order and returns the first success. A network error or a 5xx (Unavailable,
 * or any error the origin answered with a status of 500 or more) moves to the next node, and so
 * does a 404 when `nextOn404`; anything else (bad input, refused credentials) is final.
 */
export async function firstOf<T>(log: Logger, what: string, nodes: string[], attempt: (node: string) => Promise<T>, nextOn404: boolean): Promise<T> {
  let last: unknown;
  for (const node of nodes) {
    try {
      return await attempt(node);
    } catch (err) {
      last = err;
      if ((err as Error).name === 'AbortError') throw err;
      const krill = isKrillError(err) ? err : undefined;
      const retry = !krill || krill.category === 'Unavailable' || (nextOn404 && krill.category === 'NotFound') || serverFault.has(krill);
      if (!retry) throw err;
      log.debug({ peer: node, err: (err as Error).message }, `${what}: trying the next origin`);
    }
  }
  if (isKrillError(last) && last.category === 'NotFound') throw last;
  throw new UnavailableError(`${what}: no origin answered (${(last as Error | undefined)?.message ?? 'no origins'})`, { code: 'ERR_ORIGIN_UNAVAILABLE', cause: last });
}

/** Errors an origin answered with a 5xx status: its fault, so another origin may do better. */
const serverFault = new WeakSet<KrillError>();

/** One HTTP request; a network error is Unavailable, an error status the origin's error rebuilt. */
export async function call(dispatcher: Dispatcher, method: Dispatcher.HttpMethod, url: string, what: string, extra: Partial<Dispatcher.RequestOptions> = {}): Promise<Dispatcher.ResponseData<unknown>> {
  let res: Dispatcher.ResponseData<unknown>;
  try {
    res = (await request(url, { method, dispatcher, ...extra } as Parameters<typeof request>[1])) as Dispatcher.ResponseData<unknown>;
  } catch (err) {
    // The caller's abort is not the origin's fault: it ends the whole operation, not this attempt.
    if (isKrillError(err) || (extra.signal as AbortSignal | undefined)?.aborted) throw err;
    throw new UnavailableError(`${what}: ${(err as Error).message}`, { code: 'ERR_ORIGIN_UNAVAILABLE', cause: err });
  }
  if (res.statusCode >= 400) throw await failure(res, what);
  return res;
}

async function failure(res: Dispatcher.ResponseData<unknown>, what: string): Promise<KrillError> {
  let body: unknown;
  try {
    body = await res.body.json();
  } catch {
    // HEAD answers carry no body; a 404 there is a missing blob like any other.
    body = res.statusCode === 404 ? { category: 'NotFound', code: 'ERR_BLOB_NOT_FOUND', message: 'blob not found' } : undefined;
  }
  const err = errorFromBody(res.statusCode, body, what);
  if (res.statusCode >= 500) serverFault.add(err);
  return err;
}

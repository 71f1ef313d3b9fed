import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import {
  InvalidArgumentError, KrillError, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, NotFoundError, UnavailableError,
  isDigest, isKrillError, type Digest, type Logger,
} from '@krill/lib';
import { Authenticator, parseChallenge, type Identity } from './auth.js';
import { resolveNamespace, type UpstreamRef } from './hosts.js';
import type { ManifestHead, RegistryClient, RegistryHosts, UpstreamCredentials } from './registry-client.js';

export interface RegistryClientOptions {
  hosts: RegistryHosts;
  logger: Logger;
  /** Default time to wait for response headers, in ms (a host's timeoutMs overrides it). */
  timeoutMs?: number;
}

/** Redirects to blob storage (S3, a CDN) are followed this many times, as browsers and Docker do. */
const MAX_REDIRECTS = 5;
const ACCEPT_MANIFESTS = MANIFEST_MEDIA_TYPES.join(', ');

type Response = Dispatcher.ResponseData<unknown>;

interface CallOptions {
  accept?: string | undefined;
  signal?: AbortSignal | undefined;
  /** The caller's credentials, used instead of the configured ones (see ResolveOptions). */
  credentials?: UpstreamCredentials | undefined;
}

/** The upstream registry client over HTTP (see RegistryClient). */
export function createRegistryClient(options: RegistryClientOptions): RegistryClient {
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, headersTimeout: options.timeoutMs ?? 30_000, bodyTimeout: 300_000 });
  const auth = new Authenticator(dispatcher);
  const log = options.logger;

  async function once(url: string, method: Dispatcher.HttpMethod, headers: Record<string, string>, ref: UpstreamRef, signal?: AbortSignal): Promise<Response> {
    try {
      return (await request(url, {
        method, dispatcher, headers, ...(signal ? { signal } : {}),
        ...(ref.host.timeoutMs ? { headersTimeout: ref.host.timeoutMs } : {}),
      } as Parameters<typeof request>[1])) as Response;
    } catch (err) {
      throw new UnavailableError(`upstream registry ${ref.registry} (${new URL(url).origin}): ${(err as Error).message}`, { code: 'ERR_UPSTREAM_UNAVAILABLE', cause: err });
    }
  }

  /**
   * One call on one endpoint as one identity: answers a 401 challenge once, takes a 401 or 403
   * after that (or a 403 at once) as the registry's refusal, then follows redirects.
   */
  async function onEndpoint(ref: UpstreamRef, id: Identity, endpoint: string, method: Dispatcher.HttpMethod, path: string, c: CallOptions): Promise<Response> {
    const base: Record<string, string> = c.accept ? { accept: c.accept } : {};
    let authorization = auth.known(ref, id);
    let url = `${endpoint.replace(/\/$/, '')}/v2/${ref.repository}/${path}`;
    let res = await once(url, method, authorization ? { ...base, authorization } : base, ref, c.signal);
    if (res.statusCode === 401) {
      await res.body.dump();
      authorization = await auth.authorize(ref, id, endpoint, parseChallenge(res.headers['www-authenticate']));
      res = await once(url, method, { ...base, authorization }, ref, c.signal);
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump();
      auth.remember(ref, id, undefined);
      throw auth.denied(ref, id, endpoint);
    }
    if (authorization) auth.remember(ref, id, authorization);
    const origin = new URL(url).origin;
    for (let hops = 0; res.statusCode >= 300 && res.statusCode < 400 && res.headers['location']; hops++) {
      await res.body.dump();
      if (hops >= MAX_REDIRECTS) throw new UnavailableError(`upstream registry ${ref.registry}: more than ${MAX_REDIRECTS} redirects for ${path}`, { code: 'ERR_UPSTREAM_UNAVAILABLE' });
      url = new URL(String(res.headers['location']), url).toString();
      // Credentials for the registry are never sent to another host (pre-signed storage URLs).
      const sameOrigin = new URL(url).origin === origin;
      res = await once(url, method, sameOrigin && authorization ? { ...base, authorization } : base, ref, c.signal);
    }
    return res;
  }

  /** Tries the registry's endpoints in order; network errors and 5xx move to the next. */
  async function call(namespace: string, method: Dispatcher.HttpMethod, path: string, c: CallOptions = {}): Promise<Response> {
    const ref = resolveNamespace(namespace, options.hosts);
    const id = auth.identity(ref, c.credentials);
    let last: unknown;
    for (const endpoint of ref.endpoints) {
      try {
        const res = await onEndpoint(ref, id, endpoint, method, path, c);
        if (res.statusCode >= 500) {
          await res.body.dump();
          throw new UnavailableError(`upstream registry ${ref.registry} (${endpoint}) answered HTTP ${res.statusCode} for ${path}`, { code: 'ERR_UPSTREAM_UNAVAILABLE' });
        }
        return res;
      } catch (err) {
        if (!(isKrillError(err) && err.category === 'Unavailable')) throw err;
        last = err;
        log.warn({ registry: ref.registry, endpoint, err: (err as Error).message }, 'upstream endpoint failed; trying the next');
      }
    }
    throw last as KrillError;
  }

  async function expectOk(res: Response, namespace: string, what: string): Promise<Response> {
    if (res.statusCode === 200) return res;
    await res.body.dump();
    if (res.statusCode === 404) throw new NotFoundError(`upstream ${namespace}: ${what} not found`, { code: 'ERR_UPSTREAM_NOT_FOUND' });
    throw new UnavailableError(`upstream ${namespace}: ${what}: HTTP ${res.statusCode}`, { code: 'ERR_UPSTREAM_UNAVAILABLE' });
  }

  const client: RegistryClient = {
    async resolve(namespace, reference, signal, o = {}) {
      if (reference.startsWith('sha256:') && !isDigest(reference)) throw new InvalidArgumentError(`digest ${reference} is invalid`, { code: 'ERR_DIGEST_INVALID' });
      const c: CallOptions = { accept: ACCEPT_MANIFESTS, signal, credentials: o.credentials };
      const head = await expectOk(await call(namespace, 'HEAD', `manifests/${reference}`, c), namespace, `manifest ${reference}`);
      await head.body.dump();
      const mediaType = String(head.headers['content-type'] ?? '').split(';')[0]!;
      const digest = head.headers['docker-content-digest'];
      if (typeof digest === 'string' && isDigest(digest) && (!isDigest(reference) || digest === reference)) {
        return { digest, mediaType, size: Number(head.headers['content-length'] ?? 0) };
      }
      // No digest header: fetch the manifest and hash it ourselves.
      const res = await expectOk(await call(namespace, 'GET', `manifests/${reference}`, c), namespace, `manifest ${reference}`);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of res.body) {
        size += (c as Buffer).length;
        if (size > MAX_MANIFEST_BYTES) throw new InvalidArgumentError(`upstream ${namespace}: manifest ${reference} is larger than ${MAX_MANIFEST_BYTES} bytes`, { code: 'ERR_SIZE_INVALID' });
        chunks.push(c as Buffer);
      }
      const body = Buffer.concat(chunks);
      const computed: Digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
      if (isDigest(reference) && computed !== reference) {
        throw new InvalidArgumentError(`upstream ${namespace}: manifest ${reference} hashes to ${computed}`, { code: 'ERR_DIGEST_MISMATCH' });
      }
      const result: ManifestHead = { digest: computed, mediaType: String(res.headers['content-type'] ?? '').split(';')[0]!, size: body.length };
      return result;
    },
    async stat(namespace, digest, signal) {
      let res = await call(namespace, 'HEAD', `blobs/${digest}`, { signal });
      if (res.statusCode === 404) {
        await res.body.dump();
        res = await call(namespace, 'HEAD', `manifests/${digest}`, { accept: ACCEPT_MANIFESTS, signal });
      }
      await (await expectOk(res, namespace, `blob ${digest}`)).body.dump();
      return { size: Number(res.headers['content-length'] ?? 0) };
    },
    async fetch(namespace, digest, signal) {
      let res = await call(namespace, 'GET', `blobs/${digest}`, { signal });
      if (res.statusCode === 404) {
        await res.body.dump();
        res = await call(namespace, 'GET', `manifests/${digest}`, { accept: ACCEPT_MANIFESTS, signal });
      }
      return (await expectOk(res, namespace, `blob ${digest}`)).body as unknown as Readable;
    },
  };
  return client;
}

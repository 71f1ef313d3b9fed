import { createHmac, randomBytes } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import { UnauthenticatedError, UnavailableError, type KrillError } from '@krill/lib';
import { BoundedMap } from './bounded-map.js';
import type { UpstreamRef } from './hosts.js';
import type { UpstreamCredentials } from './registry-client.js';

/** A parsed `WWW-Authenticate` challenge (RFC 9110 §11.6.1). */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  if (!h) return undefined;
  const m = /^(\w+)\s*(.*)$/.exec(h.trim());
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = p[2] ?? p[3] ?? '';
  return { scheme: m[1]!.toLowerCase(), params };
}

/** Whom a call speaks for: a registry's configured credentials, or a caller's own. */
export interface Identity {
  /** Separates the caches: `config`, or an HMAC of the caller's credentials. */
  key: string;
  caller: boolean;
  /** The Basic Authorization to offer, if any. */
  basic?: string;
  /** An identity token, offered to Bearer realms as an OAuth2 refresh token. */
  refreshToken?: string;
  /** Names the user for error messages; never the secret. */
  who: string;
}

interface CachedToken {
  token: string;
  expires: number;
}

/**
 * Caller identities (distinct credentials × repositories) cached at most this many at a time:
 * a cluster's pull secrets times the repositories they pull fit, and one entry is ~300 bytes.
 * Past it the oldest caller just obtains a token again.
 */
const MAX_CALLER_ENTRIES = 4096;
/** Realms without distribution's OAuth2 POST answer these (containerd: GCR 404, Artifactory 401, ACR 400). */
const NO_OAUTH_POST = [400, 401, 404, 405];

const basicOf = (username: string, password: string) => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

/**
 * Answers registry challenges: Basic with the identity's credentials; Bearer by fetching a token
 * from the realm (with Basic credentials or an identity token), cached per identity, registry
 * and scope until it expires (distribution's token spec: `expires_in`, default 60 s). Tokens and
 * Authorizations obtained for one identity are never offered for another: the configured ones
 * and each caller's (keyed by an HMAC with a per-process key, so the key reveals nothing) live
 * apart, and callers' are bounded in number.
 */
export class Authenticator {
  private readonly hmacKey = randomBytes(32);
  private readonly configTokens = new Map<string, CachedToken>();
  private readonly callerTokens = new BoundedMap<string, CachedToken>(MAX_CALLER_ENTRIES);
  // The Authorization that last worked per identity and repository saves a 401 round trip per call.
  private readonly configAuth = new Map<string, string>();
  private readonly callerAuth = new BoundedMap<string, string>(MAX_CALLER_ENTRIES);

  constructor(private readonly dispatcher: Dispatcher) {}

  /** The identity a call speaks for: the caller's credentials when given, else the registry's configured ones. */
  identity(ref: UpstreamRef, credentials?: UpstreamCredentials): Identity {
    if (!credentials) {
      const { username, password } = ref.host;
      if (username === undefined) return { key: 'config', caller: false, who: 'anonymous access (no credentials are configured)' };
      return { key: 'config', caller: false, basic: basicOf(username, password ?? ''), who: `the credentials of user ${JSON.stringify(username)}` };
    }
    const { username, password } = credentials;
    const key = createHmac('sha256', this.hmacKey).update(`${username}\0${password}`).digest('base64url');
    if (username === '' && password === '') return { key, caller: true, who: "the caller's anonymous access" };
    if ((username === '' || username === '<token>') && password !== '') {
      return { key, caller: true, basic: basicOf(username, password), refreshToken: password, who: "the caller's identity token" };
    }
    return { key, caller: true, basic: basicOf(username, password), who: `the caller's credentials for user ${JSON.stringify(username)}` };
  }

  /** The Authorization that last worked for this identity on this repository, if any. */
  known(ref: UpstreamRef, id: Identity): string | undefined {
    return id.caller ? this.callerAuth.get(`${id.key}\0${ref.registry}\0${ref.repository}`) : this.configAuth.get(`${ref.registry}\0${ref.repository}`);
  }

  remember(ref: UpstreamRef, id: Identity, authorization: string | undefined): void {
    const key = id.caller ? `${id.key}\0${ref.registry}\0${ref.repository}` : `${ref.registry}\0${ref.repository}`;
    const map = id.caller ? this.callerAuth : this.configAuth;
    if (authorization === undefined) map.delete(key);
    else map.set(key, authorization);
  }

  /** Unauthenticated ERR_UPSTREAM_UNAUTHORIZED naming the registry, the endpoint and the user. */
  denied(ref: UpstreamRef, id: Identity, endpoint: string): KrillError {
    return new UnauthenticatedError(`upstream registry ${ref.registry} (${endpoint}) rejected ${id.who}`, { code: 'ERR_UPSTREAM_UNAUTHORIZED' });
  }

  /** The Authorization to retry with after a 401, or throws Unauthenticated when there is none to offer. */
  async authorize(ref: UpstreamRef, id: Identity, endpoint: string, challenge: Challenge | undefined): Promise<string> {
    if (challenge?.scheme === 'basic') {
      if (!id.basic) throw this.denied(ref, id, endpoint);
      return id.basic;
    }
    if (challenge?.scheme !== 'bearer' || !challenge.params['realm']) throw this.denied(ref, id, endpoint);
    const { realm, service = '', scope = '' } = challenge.params;
    const tokens = id.caller ? this.callerTokens : this.configTokens;
    const key = `${id.key}\0${ref.registry}\0${service}\0${scope}`;
    const cached = tokens.get(key);
    if (cached && cached.expires > Date.now()) return `Bearer ${cached.token}`;
    const fetched = await this.fetchToken(ref, id, endpoint, realm, service, scope);
    tokens.set(key, fetched);
    return `Bearer ${fetched.token}`;
  }

  private async fetchToken(ref: UpstreamRef, id: Identity, endpoint: string, realm: string, service: string, scope: string): Promise<CachedToken> {
    let res: Dispatcher.ResponseData | undefined;
    if (id.refreshToken !== undefined) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: id.refreshToken, client_id: 'krill', service, scope });
      res = await this.send(ref, new URL(realm), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
      if (NO_OAUTH_POST.includes(res.statusCode)) {
        await res.body.dump();
        res = undefined;
      }
    }
    if (!res) {
      const url = new URL(realm);
      if (service) url.searchParams.set('service', service);
      if (scope) url.searchParams.set('scope', scope);
      res = await this.send(ref, url, { headers: id.basic ? { authorization: id.basic } : {} });
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump();
      throw this.denied(ref, id, endpoint);
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new UnavailableError(`upstream registry ${ref.registry}: token endpoint answered HTTP ${res.statusCode}`, { code: 'ERR_UPSTREAM_UNAVAILABLE' });
    }
    const body = (await res.body.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new UnavailableError(`upstream registry ${ref.registry}: token endpoint gave no token`, { code: 'ERR_UPSTREAM_UNAVAILABLE' });
    // Renew 5 s early so a token never expires between being read here and used.
    return { token, expires: Date.now() + Math.max(0, (body.expires_in ?? 60) - 5) * 1000 };
  }

  private async send(ref: UpstreamRef, url: URL, opts: { method?: 'POST'; headers: Record<string, string>; body?: string }): Promise<Dispatcher.ResponseData> {
    try {
      return await request(url, { dispatcher: this.dispatcher, ...opts });
    } catch (err) {
      throw new UnavailableError(`upstream registry ${ref.registry}: token endpoint ${url.origin}: ${(err as Error).message}`, { code: 'ERR_UPSTREAM_UNAVAILABLE', cause: err });
    }
  }
}

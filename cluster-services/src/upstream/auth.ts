import { request, type Dispatcher } from 'undici';
import { UnauthenticatedError, UnavailableError } from '@krill/lib';
import type { UpstreamRef } from './hosts.js';

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

interface CachedToken {
  token: string;
  expires: number;
}

/**
 * Answers registry challenges: Basic with the configured credentials; Bearer by fetching a token
 * from the realm (with Basic credentials if configured), cached per registry and scope until it
 * expires (distribution's token spec: `expires_in`, default 60 s).
 */
export class Authenticator {
  private readonly tokens = new Map<string, CachedToken>();

  constructor(private readonly dispatcher: Dispatcher) {}

  /** The Authorization header to retry with, or throws Unauthenticated when there is none to offer. */
  async authorize(ref: UpstreamRef, endpoint: string, challenge: Challenge | undefined, refused: boolean): Promise<string> {
    const { username, password } = ref.host;
    const basic = username !== undefined ? `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}` : undefined;
    const who = username !== undefined ? `the credentials of user ${JSON.stringify(username)}` : 'anonymous access (no credentials are configured)';
    const denied = () => new UnauthenticatedError(`upstream registry ${ref.registry} (${endpoint}) rejected ${who}`, { code: 'ERR_UPSTREAM_UNAUTHORIZED' });
    if (refused || !challenge) throw denied();
    if (challenge.scheme === 'basic') {
      if (!basic) throw denied();
      return basic;
    }
    if (challenge.scheme !== 'bearer' || !challenge.params['realm']) throw denied();
    const key = `${ref.registry}\0${challenge.params['service'] ?? ''}\0${challenge.params['scope'] ?? ''}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expires > Date.now()) return `Bearer ${cached.token}`;
    const url = new URL(challenge.params['realm']);
    if (challenge.params['service']) url.searchParams.set('service', challenge.params['service']);
    if (challenge.params['scope']) url.searchParams.set('scope', challenge.params['scope']);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { dispatcher: this.dispatcher, headers: basic ? { authorization: basic } : {} });
    } catch (err) {
      throw new UnavailableError(`upstream registry ${ref.registry}: token endpoint ${url.origin}: ${(err as Error).message}`, { code: 'ERR_UPSTREAM_UNAVAILABLE', cause: err });
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump();
      throw denied();
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new UnavailableError(`upstream registry ${ref.registry}: token endpoint answered HTTP ${res.statusCode}`, { code: 'ERR_UPSTREAM_UNAVAILABLE' });
    }
    const body = (await res.body.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new UnavailableError(`upstream registry ${ref.registry}: token endpoint gave no token`, { code: 'ERR_UPSTREAM_UNAVAILABLE' });
    // Renew 5 s early so a token never expires between being read here and used.
    this.tokens.set(key, { token, expires: Date.now() + Math.max(0, (body.expires_in ?? 60) - 5) * 1000 });
    return `Bearer ${token}`;
  }
}

import { InvalidArgumentError } from '@krill/lib';
import type { UpstreamCredentials } from '../upstream/index.js';

/**
 * The request header in which a tag lookup carries the caller's own registry credentials:
 * `Basic <base64 of username:password>`, the form of RFC 7617 §2. An identity token is username
 * '' (or '<token>') with the token as password (see UpstreamCredentials). It is not
 * `Authorization`, which would speak for the caller to the build-index itself; the build-index
 * takes it out of the request before anything can log it (see routes.ts).
 */
export const CREDENTIALS_HEADER = 'x-krill-upstream-credentials';

/**
 * Large enough for any registry's identity token (cloud ones run to a few KiB) and well under
 * Node's 16 KiB limit on all of a request's headers.
 */
const MAX_HEADER_CHARS = 12 * 1024;

export function formatCredentialsHeader(c: UpstreamCredentials): string {
  if (c.username.includes(':')) {
    throw new InvalidArgumentError(`registry username ${JSON.stringify(c.username)} contains ':', which Basic credentials cannot carry`, { code: 'ERR_CREDENTIALS_INVALID' });
  }
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
}

/** The credentials in the header's value; InvalidArgument ERR_CREDENTIALS_INVALID, never quoting it, when malformed. */
export function parseCredentialsHeader(value: string): UpstreamCredentials {
  const invalid = () => new InvalidArgumentError(`header ${CREDENTIALS_HEADER} must be "Basic <base64 of username:password>", given once`, { code: 'ERR_CREDENTIALS_INVALID' });
  const m = /^Basic ([A-Za-z0-9+/]+={0,2})$/.exec(value);
  if (!m || value.length > MAX_HEADER_CHARS) throw invalid();
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw invalid();
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

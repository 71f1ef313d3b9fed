import { InvalidArgumentError } from '@krill/lib';
import type { UpstreamCredentials } from '@krill/cluster-services';
import type { AuthConfig } from '@krill/proto';

/**
 * The credentials of a PullImage request that apply to `host`, read as containerd's CRI reads
 * them (`ParseAuth` in pkg/cri/server/image_pull.go): none when `serverAddress` names another
 * host; else username and password, or the identity token as the password, or the base64
 * `auth` field split at its first colon. A malformed `auth` is InvalidArgument naming the field,
 * never its value.
 */
export function callerCredentials(auth: AuthConfig | null | undefined, host: string): UpstreamCredentials | undefined {
  if (!auth) return undefined;
  if (auth.serverAddress) {
    const address = /^[a-z][a-z0-9+.-]*:\/\//i.test(auth.serverAddress) ? auth.serverAddress : `https://${auth.serverAddress}`;
    let serverHost: string;
    try {
      serverHost = new URL(address).host;
    } catch {
      return undefined;
    }
    if (serverHost !== host) return undefined;
  }
  if (auth.username) return { username: auth.username, password: auth.password ?? '' };
  if (auth.identityToken) return { username: '', password: auth.identityToken };
  if (auth.auth) {
    const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new InvalidArgumentError('PullImage auth.auth must be base64 of "user:password"', { code: 'ERR_AUTH_INVALID' });
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return undefined;
}

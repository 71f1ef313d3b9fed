import { networkInterfaces } from 'node:os';

/** Who this origin is, for recognising itself among the members DNS gives. */
export interface SelfIdentity {
  /** `advertiseUrl`, or the bound URL. */
  self: string;
  /** The URL the server is bound to (`http://0.0.0.0:15002` when listening on every address). */
  bound: string;
  /** `listen.host` as configured. */
  listenHost: string;
}

const WILDCARD = new Set(['0.0.0.0', '::', '']);

/**
 * The origin's ring when its membership comes from DNS: the configured and resolved origins,
 * with this origin in it exactly once. Clients put this origin on their rings under the URL DNS
 * gives (`http://<pod IP>:<port>`), so the origin must use that same URL for itself or it would
 * disagree with them about owners. A member is this origin when it is the advertised or bound
 * URL, or has the bound port and either the listen address or, listening on every address, one
 * of this host's. Not listed (DNS may leave out a pod that is not ready yet), it is added as
 * `self`: it stays an owner from its own point of view.
 */
export function clusterMembers(members: readonly string[], me: SelfIdentity): { nodes: string[]; self: string } {
  const isSelf = selfMatcher(me);
  const aliases = members.filter(isSelf);
  const self = aliases.includes(me.self) ? me.self : aliases[0] ?? me.self;
  return { nodes: [...members.filter((m) => !isSelf(m)), self], self };
}

function selfMatcher(me: SelfIdentity): (member: string) => boolean {
  const port = new URL(me.bound).port;
  // Addresses are read once per membership change: a pod keeps its IP for its whole life.
  const local = new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address)));
  return (member) => {
    if (member === me.self || member === me.bound) return true;
    let url: URL;
    try {
      url = new URL(member);
    } catch {
      return false;
    }
    if (url.port !== port) return false;
    const host = url.hostname.replace(/^\[|\]$/g, '');
    return host === me.listenHost || (WILDCARD.has(me.listenHost) && local.has(host));
  };
}

import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import { UnavailableError } from './errors.js';
import { createHashRing, type HashRing } from './hash-ring.js';
import type { Logger } from './logger.js';

/**
 * Who the members of a ring (the origins, the trackers) are: a static list of base URLs, the
 * addresses a DNS name (a Kubernetes headless Service) resolves to, or the union of both. The
 * DNS part is looked up again every `refreshMs`, so rings follow scaling and restarts.
 */

/** One SRV record: the member's host name and port. */
export interface SrvTarget {
  target: string;
  port: number;
}

/** Turns a name into IP addresses, or SRV targets. Errors reject; a name with no records may give []. */
export interface MemberResolver {
  resolve(name: string): Promise<string[]>;
  resolveSrv(name: string): Promise<SrvTarget[]>;
}

/** `dns:` beside `urls:` in every config that lists origins or trackers. */
export interface DnsMembersConfig {
  /**
   * The name to resolve, fully qualified: `krill-origin.krill.svc.cluster.local` for A records,
   * `_origin._tcp.krill-origin.krill.svc.cluster.local` for SRV.
   */
  name: string;
  /**
   * `A`: one member per address (A records, else AAAA), `<scheme>://<ip>:<port>`. `SRV`: one
   * member per record, `<scheme>://<target>:<port>`; a StatefulSet's pods keep their names
   * (`krill-origin-0.krill-origin.krill.svc.cluster.local`) across restarts, so their places on
   * the ring, and the blobs those places own, survive a pod's new address.
   */
  records: 'A' | 'SRV';
  /** The port every member serves on; required for A records, overrides the records' for SRV. */
  port?: number | undefined;
  scheme: 'http';
  refreshMs: number;
}

export interface MembersConfig {
  urls?: readonly string[] | undefined;
  dns?: DnsMembersConfig | undefined;
}

/**
 * The current members, as deduplicated base URLs. Safe to use concurrently; `close` stops
 * the refresh timer (the owner closes it: the client it was handed to, or whoever made it).
 */
export interface Membership {
  /** The members now: the static URLs plus the last good DNS answer. Empty only while no lookup has succeeded and no URL is static. */
  current(): readonly string[];
  /**
   * Looks the DNS name up now (joining a lookup already running) and settles when it is done,
   * successful or not. Resolves at once for a static list.
   */
  refresh(): Promise<void>;
  /** Called with the new members after every change; returns the unsubscribe function. */
  subscribe(listener: (members: readonly string[]) => void): () => void;
  /** What the members come from and why there are none, for error messages. */
  describe(): string;
  close(): void;
}

/** `http://10.0.0.5:15002`, `http://[fd00::5]:15002`. */
export function memberUrl(scheme: string, ip: string, port: number): string {
  return `${scheme}://${isIP(ip) === 6 ? `[${ip}]` : ip}:${port}`;
}

/** No records of that type (NODATA) or no such name (NXDOMAIN): an answer, not a failure. */
const NO_RECORDS = new Set<string>([dns.NODATA, dns.NOTFOUND]);

/**
 * node:dns's resolver (c-ares; no `search` list from resolv.conf, hence fully qualified names).
 * A records, or AAAA records when the name has no A record: a dual-stack pod has one address of
 * each family and must be one member, not two. `servers` (`127.0.0.1:5353`) replaces the system's.
 */
export function createDnsResolver(options: { servers?: string[]; timeoutMs?: number; tries?: number } = {}): MemberResolver {
  // Two tries of 2 s each, per family: a lost UDP packet is retried, and even both families
  // failing ends well before the 10 s default refresh.
  const resolver = new dns.Resolver({ timeout: options.timeoutMs ?? 2000, tries: options.tries ?? 2 });
  if (options.servers) resolver.setServers(options.servers);
  const lookup = async (family: 4 | 6, name: string): Promise<string[]> => {
    try {
      return family === 4 ? await resolver.resolve4(name) : await resolver.resolve6(name);
    } catch (err) {
      if (NO_RECORDS.has((err as NodeJS.ErrnoException).code ?? '')) return [];
      throw err;
    }
  };
  return {
    async resolve(name) {
      const v4 = await lookup(4, name);
      return v4.length > 0 ? v4 : lookup(6, name);
    },
    async resolveSrv(name) {
      try {
        return (await resolver.resolveSrv(name)).map((r) => ({ target: r.name, port: r.port }));
      } catch (err) {
        if (NO_RECORDS.has((err as NodeJS.ErrnoException).code ?? '')) return [];
        throw err;
      }
    },
  };
}

/** The members one DNS answer names, as base URLs. */
async function resolveMembers(resolver: MemberResolver, c: DnsMembersConfig): Promise<string[]> {
  if (c.records === 'SRV') {
    // Names compare as lower case without the root's dot, as the advertised URLs are written.
    return (await resolver.resolveSrv(c.name)).map((r) => `${c.scheme}://${r.target.replace(/\.$/, '').toLowerCase()}:${c.port ?? r.port}`);
  }
  if (c.port === undefined) throw new Error(`dns.port is required with A records (${c.name})`);
  const port = c.port;
  return (await resolver.resolve(c.name)).map((ip) => memberUrl(c.scheme, ip, port));
}

const unique = (urls: Iterable<string>) => [...new Set(urls)];

/**
 * Follows `dns` (when given) on a timer and keeps the union with `urls`. A failed lookup, or one
 * answering no address, keeps the last good list and says so in a warning: a DNS hiccup must
 * never empty a ring. Additions and removals are logged at info.
 */
export function createMembership(o: MembersConfig & { what: string; resolver?: MemberResolver | undefined; logger: Logger }): Membership {
  const fixed = unique(o.urls ?? []);
  let members: readonly string[] = fixed;
  const listeners = new Set<(members: readonly string[]) => void>();
  const dnsConfig = o.dns;
  if (!dnsConfig) {
    return {
      current: () => members,
      refresh: async () => {},
      subscribe: () => () => {},
      describe: () => `${o.what} ${fixed.length > 0 ? fixed.join(', ') : '(none configured)'}`,
      close() {},
    };
  }
  const resolver = o.resolver ?? createDnsResolver();
  const log = o.logger;
  const source = `DNS ${dnsConfig.records} records of ${dnsConfig.name}${dnsConfig.port === undefined ? '' : ` port ${dnsConfig.port}`}`;
  let lastError: string | undefined;
  let failures = 0;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const apply = (resolved: string[]) => {
    // Static URLs as given, then the resolved ones sorted: rendezvous owners do not depend on the
    // order, but a stable one makes the change log readable.
    const next = unique([...fixed, ...resolved.sort()]);
    if (failures > 0) log.info({ name: dnsConfig.name, failures }, `${o.what}: DNS lookup succeeded again`);
    failures = 0;
    lastError = undefined;
    const added = next.filter((m) => !members.includes(m));
    const removed = members.filter((m) => !next.includes(m));
    if (added.length === 0 && removed.length === 0) return;
    members = next;
    log.info({ name: dnsConfig.name, added, removed, members: next }, `${o.what} membership changed`);
    for (const l of listeners) l(next);
  };
  const fail = (why: string) => {
    lastError = why;
    failures++;
    const kept = members.length > 0 ? `keeping the last ${members.length} members` : `no ${o.what} known yet`;
    // The first failure of a run is a warning; repeats every refresh would only be noise.
    if (failures === 1) log.warn({ name: dnsConfig.name, err: why, members }, `${o.what}: DNS lookup of ${dnsConfig.name} failed; ${kept}`);
    else log.debug({ name: dnsConfig.name, err: why, failures }, `${o.what}: DNS lookup still failing; ${kept}`);
  };
  const lookup = async () => {
    try {
      const found = await resolveMembers(resolver, dnsConfig);
      if (closed) return;
      if (found.length === 0) fail(`the name has no ${dnsConfig.records === 'SRV' ? 'SRV records' : 'addresses'}`);
      else apply(found);
    } catch (err) {
      if (!closed) fail((err as Error).message);
    }
  };
  const refresh = (): Promise<void> => {
    running ??= lookup().finally(() => {
      running = undefined;
      schedule();
    });
    return running;
  };
  const schedule = () => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => void refresh(), dnsConfig.refreshMs);
    timer.unref();
  };
  void refresh();

  return {
    current: () => members,
    refresh,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    describe: () => `${o.what} from ${fixed.length > 0 ? `${fixed.join(', ')} and ` : ''}${source}${lastError ? ` (last lookup: ${lastError})` : ''}`,
    close() {
      closed = true;
      clearTimeout(timer);
      listeners.clear();
    },
  };
}

/** A hash ring over a Membership, swapped whole on every change. */
export interface LiveRing {
  /** The ring now; undefined while there are no members. */
  current(): HashRing | undefined;
  /**
   * The ring for one operation (take it once, so the whole operation sees one membership). With
   * no members yet, waits for a lookup first; Unavailable with `code` when there are still none.
   */
  get(): Promise<HashRing>;
  close(): void;
}

export function createLiveRing(o: { membership: Membership; replicas: number; code: string }): LiveRing {
  const build = (nodes: readonly string[]) => (nodes.length > 0 ? createHashRing({ nodes, replicas: o.replicas }) : undefined);
  let ring = build(o.membership.current());
  const unsubscribe = o.membership.subscribe((nodes) => {
    // A Membership never reports an empty list after a non-empty one, so the ring stays.
    ring = build(nodes) ?? ring;
  });
  return {
    current: () => ring,
    async get() {
      if (ring) return ring;
      await o.membership.refresh();
      if (ring) return ring;
      throw new UnavailableError(`no members known: ${o.membership.describe()}`, { code: o.code });
    },
    close() {
      unsubscribe();
      o.membership.close();
    },
  };
}

/** A static list or a Membership, as clients accept them. */
export function toMembership(members: readonly string[] | Membership, what: string, logger: Logger): Membership {
  return isMembership(members) ? members : createMembership({ what, urls: members, logger });
}

function isMembership(m: readonly string[] | Membership): m is Membership {
  return !Array.isArray(m);
}

import { createServer, type Server } from 'node:net';
import { listLinks, listNamespaces, listRouteDestinations, namespacePids, runBatch, signal, tryRunSync } from './commands.js';

/**
 * Which lab owns which names and addresses. Each live lab holds an index n in 0..511; everything
 * it makes is named from n and lives in 198.18.0.0/15's n-th /24:
 *
 *   bridge        krl<n>br   in the test process's namespace, gateway address .1
 *   host i        krl<n>h<i> the namespace, and the bridge-side end of its veth (the other end is
 *                            `eth0` inside the namespace), address .10+i
 *
 * so the longest name, krl511h244, is well under Linux's 15-character limit on interface names.
 *
 * A lab proves it is alive by listening on the abstract unix socket `krill-lab/<n>`. The kernel
 * frees that socket the moment the process dies, however it dies, so there is no state file to go
 * stale and no pid that may have been reused: whoever can bind the socket owns n, and anything
 * named krl<n>* it then finds was left by a dead lab and is removed. Abstract sockets are per
 * network namespace, so every lab must be created from the same one (the test processes' own).
 */

/** 198.18.0.0/15 holds 512 /24s. */
export const LAB_INDEXES = 512;
/** Host addresses start at .10, leaving .1 for the gateway and .2-.9 spare; .255 is broadcast. */
export const FIRST_HOST_OCTET = 10;
export const MAX_HOSTS = 254 - FIRST_HOST_OCTET + 1;

const NAME = /^krl(\d{1,3})(?:br|h\d{1,3})$/;

export interface LabNames {
  index: number;
  bridge: string;
  /** The namespace and bridge-side veth name of host i. */
  host(i: number): string;
  subnet: string;
  gatewayIp: string;
  hostIp(i: number): string;
}

export function labNames(index: number): LabNames {
  const prefix = `198.${18 + (index >> 8)}.${index & 255}`;
  return {
    index,
    bridge: `krl${index}br`,
    host: (i) => `krl${index}h${i}`,
    subnet: `${prefix}.0/24`,
    gatewayIp: `${prefix}.1`,
    hostIp: (i) => `${prefix}.${FIRST_HOST_OCTET + i}`,
  };
}

/** The lab index a kernel name belongs to, or undefined if the lab did not make it. */
export function indexOf(name: string): number | undefined {
  const m = NAME.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Tries to take index n; resolves with the held socket, or undefined if a live lab has it. */
export function tryClaim(index: number): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(undefined) : reject(err)));
    // unref: holding a claim must not keep a test process alive after its work is done.
    server.listen(`\0krill-lab/${index}`, () => resolve(server.unref()));
  });
}

export function release(claim: Server): Promise<void> {
  return new Promise((resolve) => claim.close(() => resolve()));
}

/**
 * Removes everything named krl<n>*: SIGKILLs the processes in its namespaces, deletes its veths
 * (which takes their peers and qdiscs along) and bridge, then its namespaces. Only the holder of
 * n's claim may call it. Resolves with the names still present afterwards, normally none.
 */
export async function teardownIndex(index: number): Promise<string[]> {
  const mine = (names: string[]) => names.filter((n) => indexOf(n) === index);
  const namespaces = mine(await listNamespaces());
  // `ip netns pids` has no batch form; a few at a time, like createLab's setup.
  for (let i = 0; i < namespaces.length; i += 8) {
    const pids = await Promise.all(namespaces.slice(i, i + 8).map(namespacePids));
    for (const pid of pids.flat()) signal(pid, 'SIGKILL');
  }
  // Host cables first, so the bridge is empty when it goes. -force: carry on past anything that
  // has gone already; what really stayed shows up in the final listing.
  const links = mine(await listLinks()).sort((a, b) => Number(a.endsWith('br')) - Number(b.endsWith('br')));
  await runBatch('ip', ['-force'], links.map((l) => ['link', 'del', l])).catch(() => undefined);
  await runBatch('ip', ['-force'], namespaces.map((ns) => ['netns', 'del', ns])).catch(() => undefined);
  return [...mine(await listNamespaces()), ...mine(await listLinks())];
}

/** teardownIndex for the `exit` hook: synchronous, and given the names rather than listing them. */
export function teardownSync(names: LabNames, hosts: number): void {
  for (let i = 0; i < hosts; i++) {
    for (const pid of (tryRunSync('ip', ['netns', 'pids', names.host(i)]) ?? '').split('\n').map(Number)) {
      if (pid > 0) signal(pid, 'SIGKILL');
    }
  }
  for (let i = 0; i < hosts; i++) tryRunSync('ip', ['link', 'del', names.host(i)]);
  tryRunSync('ip', ['link', 'del', names.bridge]);
  for (let i = 0; i < hosts; i++) tryRunSync('ip', ['netns', 'del', names.host(i)]);
}

/** Removes what dead labs left behind; returns the indexes it cleaned. */
export async function sweepStale(): Promise<number[]> {
  const seen = new Set<number>();
  for (const name of [...(await listNamespaces()), ...(await listLinks())]) {
    const index = indexOf(name);
    if (index !== undefined) seen.add(index);
  }
  const cleaned: number[] = [];
  for (const index of seen) {
    const claim = await tryClaim(index);
    if (!claim) continue;
    try {
      await teardownIndex(index);
      cleaned.push(index);
    } finally {
      await release(claim);
    }
  }
  return cleaned;
}

/**
 * Claims the lowest free index whose /24 no existing route touches (an operator may already use
 * part of 198.18.0.0/15), and clears anything a dead lab left under it.
 */
export async function claimIndex(): Promise<{ names: LabNames; claim: Server }> {
  const routes = (await listRouteDestinations()).filter((d) => d !== 'default');
  for (let index = 0; index < LAB_INDEXES; index++) {
    const names = labNames(index);
    if (routes.some((r) => overlaps(r, names.subnet))) continue;
    const claim = await tryClaim(index);
    if (!claim) continue;
    const left = await teardownIndex(index);
    if (left.length === 0) return { names, claim };
    await release(claim);
  }
  throw new Error('no free lab subnet in 198.18.0.0/15: every /24 is claimed by a live lab or routed elsewhere');
}

/** Whether two IPv4 prefixes (`a.b.c.d/len`, or a bare address for /32) share any address. */
export function overlaps(a: string, b: string): boolean {
  const [na, la] = parsePrefix(a);
  const [nb, lb] = parsePrefix(b);
  const len = Math.min(la, lb);
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return ((na & mask) >>> 0) === ((nb & mask) >>> 0);
}

function parsePrefix(p: string): [number, number] {
  const [addr = '', len] = p.split('/');
  const n = addr.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  return [n >>> 0, len === undefined ? 32 : Number(len)];
}

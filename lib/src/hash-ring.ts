import { createHash } from 'node:crypto';

/**
 * Rendezvous (highest-random-weight) hashing: every node scores every key, and a key's owners
 * are the nodes with the highest scores. Adding or removing a node moves only the keys it wins
 * or held, and every client computes the same owners with no coordination.
 */
export interface HashRing {
  readonly nodes: readonly string[];
  readonly replicas: number;
  /** The `replicas` owners of `key`, best first. */
  owners(key: string): string[];
  /** Every node, ordered by preference for `key`; the owners come first. */
  ranked(key: string): string[];
}

export interface HashRingOptions {
  /** Node identities, normally their base URLs; duplicates are ignored. */
  nodes: readonly string[];
  /** Owners per key; capped at the number of nodes. Kraken and krill default to 3. */
  replicas?: number;
}

export function createHashRing(options: HashRingOptions): HashRing {
  const nodes = [...new Set(options.nodes)];
  if (nodes.length === 0) throw new Error('hash ring: at least one node is required');
  const replicas = Math.max(1, Math.min(options.replicas ?? 3, nodes.length));
  const ranked = (key: string): string[] =>
    nodes
      .map((node) => ({ node, score: score(key, node) }))
      .sort((a, b) => (a.score < b.score ? 1 : a.score > b.score ? -1 : a.node < b.node ? -1 : 1))
      .map((s) => s.node);
  return {
    nodes,
    replicas,
    ranked,
    owners: (key) => ranked(key).slice(0, replicas),
  };
}

// The first 8 bytes of SHA-256(key, node) as an unsigned 64-bit score. All nodes weigh the same,
// so the plain maximum is the rendezvous choice; SHA-256 is in node:crypto and fast enough for the
// few calls per blob a client makes.
function score(key: string, node: string): bigint {
  return createHash('sha256').update(key).update('\0').update(node).digest().readBigUInt64BE(0);
}

import type { Digest } from '@krill/lib';
import type { PeerInfo, PeerStore } from './peer-store.js';
import { WireArena } from './peer-wire.js';

interface Entry {
  info: Readonly<PeerInfo>;
  /** Where the peer's 27 announce-stream bytes are in the store's WireArena (peer-wire.ts). */
  wire: number;
  expires: number;
  /** Which of the swarm's two arrays holds the entry, and where, so it can leave in O(1). */
  seeder: boolean;
  slot: number;
}

/**
 * A blob's swarm. `byId` is kept in order of last announce (a refresh moves a peer to the end)
 * and every peer lives `ttlMs` from its last announce, so the expired peers are always at its
 * front and pruning costs only what it removes. The two arrays hold the same entries for
 * sampling without walking the swarm.
 */
const infoOf = (e: Entry) => e.info;
const wireOf = (e: Entry) => e.wire;

interface Swarm {
  byId: Map<string, Entry>;
  seeders: Entry[];
  leechers: Entry[];
}

/**
 * The in-memory PeerStore (the only one: a tracker's state is rebuilt by the next round of
 * announces after a restart, within one announce interval).
 */
export function createPeerStore(o: { ttlMs: number; now?: () => number; random?: () => number }): PeerStore {
  const now = o.now ?? Date.now;
  const random = o.random ?? Math.random;
  const swarms = new Map<Digest, Swarm>();
  let peers = 0;
  const arena = new WireArena();
  // Swarms that nobody announces to any more are emptied by a sweep of all swarms once a TTL.
  let lastSweep = now();

  function remove(s: Swarm, e: Entry): void {
    arena.release(e.wire);
    const arr = e.seeder ? s.seeders : s.leechers;
    const last = arr.pop()!;
    if (last !== e) {
      arr[e.slot] = last;
      last.slot = e.slot;
    }
  }

  function prune(digest: Digest, s: Swarm, t: number): void {
    for (const [id, e] of s.byId) {
      if (e.expires > t) break;
      s.byId.delete(id);
      remove(s, e);
      peers--;
    }
    if (s.byId.size === 0) swarms.delete(digest);
  }

  // A scratch permutation for sampling, kept equal to 0, 1, 2, ... between calls: sampling swaps
  // in it and then undoes its swaps, so a handout costs O(limit) whatever the swarm's size and
  // touches only the entries it picks (on a swarm of thousands, memory reads are what cost).
  let perm = new Int32Array(0);
  // Where step i swapped perm[i] from, for the undo.
  let from = new Int32Array(0);

  /**
   * Appends to `out` up to `want` entries of `arr` drawn at random without replacement (a partial
   * Fisher-Yates shuffle of `perm`), skipping `caller` and any entry expired at `t` (possible
   * only if the clock went backwards).
   */
  function sample<T>(arr: Entry[], want: number, caller: Entry | undefined, t: number, out: T[], take: (e: Entry) => T): void {
    const n = arr.length;
    if (perm.length < n) {
      perm = new Int32Array(Math.max(n, 2 * perm.length));
      for (let i = 0; i < perm.length; i++) perm[i] = i;
      from = new Int32Array(perm.length);
    }
    const stop = out.length + want;
    let i = 0;
    for (; i < n && out.length < stop; i++) {
      const j = i + Math.floor(random() * (n - i));
      const pick = perm[j]!;
      perm[j] = perm[i]!;
      perm[i] = pick;
      from[i] = j;
      const e = arr[pick]!;
      if (e !== caller && e.expires > t) out.push(take(e));
    }
    while (i-- > 0) {
      const j = from[i]!;
      const x = perm[i]!;
      perm[i] = perm[j]!;
      perm[j] = x;
    }
  }

  function handout<T>(digest: Digest, except: string, limit: number, take: (e: Entry) => T): T[] {
    const s = swarms.get(digest);
    if (!s) return [];
    const t = now();
    prune(digest, s, t);
    const out: T[] = [];
    const caller = s.byId.get(except);
    sample(s.seeders, limit, caller, t, out, take);
    sample(s.leechers, limit - out.length, caller, t, out, take);
    return out;
  }

  return {
    upsert(digest, peer) {
      const t = now();
      if (t - lastSweep > o.ttlMs) {
        lastSweep = t;
        for (const [d, s] of swarms) prune(d, s, t);
      }
      let s = swarms.get(digest);
      if (!s) swarms.set(digest, (s = { byId: new Map(), seeders: [], leechers: [] }));
      const info = Object.freeze({ peerId: peer.peerId, ip: peer.ip, port: peer.port, complete: peer.complete, origin: peer.origin });
      const seeder = peer.complete || peer.origin;
      let e = s.byId.get(peer.peerId);
      if (e) {
        // Deleted and set again below, which moves the peer to the end of the expiry order.
        s.byId.delete(peer.peerId);
        if (e.seeder !== seeder) {
          remove(s, e);
          e = undefined;
        } else {
          e.info = info;
          arena.write(info, e.wire);
          e.expires = t + o.ttlMs;
        }
      } else {
        peers++;
      }
      if (!e) {
        const arr = seeder ? s.seeders : s.leechers;
        e = { info, wire: arena.alloc(info), expires: t + o.ttlMs, seeder, slot: arr.length };
        arr.push(e);
      }
      s.byId.set(peer.peerId, e);
    },
    handout: (digest, except, limit) => handout(digest, except, limit, infoOf),
    handoutWire: (digest, except, limit) => ({ bytes: arena.bytes, offsets: handout(digest, except, limit, wireOf) }),
    size() {
      const t = now();
      for (const [d, s] of swarms) prune(d, s, t);
      return { blobs: swarms.size, peers };
    },
  };
}

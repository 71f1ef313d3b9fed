import type { Digest } from '@krill/lib';

interface Entry {
  size: number;
  lastAccess: number;
}

/**
 * The in-memory index of stored blobs: sizes, last access and pins, for byte-capacity LRU
 * eviction. Rebuilt from the directory at start (last access from file mtimes).
 */
export class BlobIndex {
  private readonly entries = new Map<Digest, Entry>();
  private readonly pins = new Set<Digest>();
  /** Readers holding a blob's file open (the P2P seeder), counted: several may hold one blob. */
  private readonly holds = new Map<Digest, number>();
  private bytes = 0;

  get usedBytes(): number {
    return this.bytes;
  }

  get count(): number {
    return this.entries.size;
  }

  has(d: Digest): boolean {
    return this.entries.has(d);
  }

  size(d: Digest): number | undefined {
    return this.entries.get(d)?.size;
  }

  add(d: Digest, size: number, lastAccess = Date.now()): void {
    if (this.entries.has(d)) return;
    this.entries.set(d, { size, lastAccess });
    this.bytes += size;
  }

  remove(d: Digest): void {
    const e = this.entries.get(d);
    if (!e) return;
    this.entries.delete(d);
    this.bytes -= e.size;
  }

  touch(d: Digest, now = Date.now()): boolean {
    const e = this.entries.get(d);
    if (!e) return false;
    // Last access only orders eviction; updating it at most once a minute keeps reads cheap.
    if (now - e.lastAccess < 60_000) return false;
    e.lastAccess = now;
    return true;
  }

  /** A pinned blob (write-back pending) is never evicted; the write-back queue owns the pins. */
  pin(d: Digest): void {
    this.pins.add(d);
  }

  unpin(d: Digest): void {
    this.pins.delete(d);
  }

  isPinned(d: Digest): boolean {
    return this.pins.has(d);
  }

  /**
   * A held blob is not evicted either. Holds are apart from pins so that a reader letting go
   * never unpins a blob whose write-back is still pending.
   */
  hold(d: Digest): void {
    this.holds.set(d, (this.holds.get(d) ?? 0) + 1);
  }

  release(d: Digest): void {
    const n = (this.holds.get(d) ?? 0) - 1;
    if (n > 0) this.holds.set(d, n);
    else this.holds.delete(d);
  }

  isHeld(d: Digest): boolean {
    return this.holds.has(d);
  }

  /**
   * Unpinned, unheld blobs to evict, least recently used first, until `needed` more bytes would
   * fit; undefined when pinned and held blobs leave no room. The caller removes them at once.
   */
  victims(needed: number, capacity: number): Digest[] | undefined {
    let over = this.bytes + needed - capacity;
    if (over <= 0) return [];
    const out: Digest[] = [];
    const candidates = [...this.entries].filter(([d]) => !this.pins.has(d) && !this.holds.has(d)).sort((a, b) => a[1].lastAccess - b[1].lastAccess);
    for (const [d, e] of candidates) {
      out.push(d);
      over -= e.size;
      if (over <= 0) return out;
    }
    return undefined;
  }
}

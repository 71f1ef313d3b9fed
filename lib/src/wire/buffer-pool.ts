import { allocAlignedSlab, isAligned } from './aligned-memory.js';

/**
 * Piece-sized buffers, reused. Every piece a peer receives or sends passes through one buffer of
 * the piece length (1 or 4 MiB for most blobs); allocating a fresh one each time made V8 run a full
 * mark-compact every few dozen megabytes (a buffer's memory lives outside the JS heap and counts
 * towards the external-memory trigger), which took a third of an agent's CPU. A buffer is taken,
 * filled, used, and given back once nothing refers to it any more; one never given back is simply
 * collected. Idle buffers are kept up to `maxIdleBytes` in all; the rest are left to the GC.
 * Only sizes that are powers of two from 64 KiB up are pooled (piece lengths and message sizes
 * are): the odd-sized last piece of each blob would otherwise fill the idle room with buffers
 * nothing asks for again. Other sizes are plain allocations.
 *
 * Pooled sizes are page-aligned (see aligned-memory.ts), so a piece file can read and write them
 * with direct I/O.
 *
 * Giving back a buffer that is still in use would let its bytes change under the user: only the
 * code that knows the last use (the swarm after a piece is written, a wire after the socket took
 * the bytes) gives back.
 */
export class BufferPool {
  private readonly idle = new Map<number, Buffer[]>();
  private idleBytes = 0;
  /** Buffers of the newest slab of each size that were never handed out yet. */
  private readonly fresh = new Map<number, Buffer[]>();
  /** Buffers handed out that were taken from the pool rather than allocated (for tests and metrics). */
  reused = 0;

  constructor(readonly maxIdleBytes: number) {}

  /** A buffer of exactly `size` bytes, with arbitrary contents. */
  take(size: number): Buffer {
    if (!pooledSize(size)) return Buffer.allocUnsafe(size);
    const free = this.idle.get(size);
    const buf = free?.pop();
    if (buf) {
      this.idleBytes -= size;
      this.reused++;
      return buf;
    }
    let unused = this.fresh.get(size);
    if (!unused?.length) this.fresh.set(size, (unused = allocAlignedSlab(size)));
    return unused.pop()!;
  }

  /**
   * Returns a buffer taken from this pool (or any pool's) for reuse. Anything else (slices,
   * other buffers), and anything that would exceed the idle limit, is ignored.
   */
  give(buf: Buffer): void {
    if (!isAligned(buf) || !pooledSize(buf.length)) return;
    if (this.idleBytes + buf.length > this.maxIdleBytes) return;
    let free = this.idle.get(buf.length);
    if (!free) this.idle.set(buf.length, (free = []));
    free.push(buf);
    this.idleBytes += buf.length;
  }

  /** Bytes held idle now. */
  get idleSize(): number {
    return this.idleBytes;
  }
}

/** Powers of two from 64 KiB: the sizes worth keeping. */
function pooledSize(n: number): boolean {
  return n >= 64 * 1024 && (n & (n - 1)) === 0;
}

/**
 * The process's pool for piece payloads: 32 MiB idle at most (32 pieces of 1 MiB), about what a
 * busy swarm has in flight at once, so steady traffic allocates nothing.
 */
export const piecePool = new BufferPool(32 * 1024 * 1024);

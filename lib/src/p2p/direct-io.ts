import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { isAligned } from '../wire/aligned-memory.js';

/**
 * Offsets and lengths of direct transfers are multiples of this: 4 KiB, the largest logical
 * block size of the devices a node's disk is likely to be (most are 512 B).
 */
const BLOCK_BYTES = 4096;

/**
 * A second handle on a piece file, opened with O_DIRECT, for whole pieces in page-aligned
 * buffers (the piece pool's): they go between the process and the disk without passing through
 * the kernel's page cache. A blob is written once and each piece read back a few times at most
 * (for peers, the whole-blob hash, a reader), so caching them buys little, while every new
 * page-cache page costs an allocation and a copy (on a VM whose host takes freed memory back, a
 * fault in the host too: on the lab's machine, writing 500 MB into new page-cache pages took
 * 0.53-0.71 s of CPU, directly 0.04 s) and evicts the node's workloads' pages. The page cache
 * stays coherent: the kernel writes back and drops cached pages of a range before a direct
 * transfer over it, so the buffered handle may serve the unaligned rest (a blob's last piece,
 * small blobs) of the same file.
 *
 * Where the filesystem refuses O_DIRECT (tmpfs before Linux 6.6, some FUSE and network file
 * systems), or refuses a transfer as misaligned, everything goes through the buffered handle.
 */
export class DirectIo {
  private constructor(private handle: FileHandle | undefined) {}

  /** A direct handle on `path`, or one that declines everything when direct I/O is not to be had. */
  static async open(path: string, writable: boolean): Promise<DirectIo> {
    const flag = constants.O_DIRECT;
    if (flag === undefined) return new DirectIo(undefined);
    try {
      return new DirectIo(await open(path, (writable ? constants.O_RDWR : constants.O_RDONLY) | flag));
    } catch {
      return new DirectIo(undefined);
    }
  }

  /** Whether `buf` at `position` may go direct (it is then tried; see write and read). */
  fits(buf: Buffer, position: number): boolean {
    return this.handle !== undefined && position % BLOCK_BYTES === 0 && buf.length % BLOCK_BYTES === 0 && isAligned(buf);
  }

  /**
   * Writes `buf` whole at `position`; false, with nothing written, if the filesystem refused the
   * transfer (EINVAL: the caller writes it through the page cache instead, as every later one).
   * Other errors (a full disk) are thrown as they are.
   */
  async write(buf: Buffer, position: number): Promise<boolean> {
    return this.attempt(async (h) => {
      const { bytesWritten } = await h.write(buf, 0, buf.length, position);
      return bytesWritten === buf.length;
    });
  }

  /** Reads `buf.length` bytes at `position` into `buf`; false if refused as for write, or short. */
  async read(buf: Buffer, position: number): Promise<boolean> {
    return this.attempt(async (h) => (await h.read(buf, 0, buf.length, position)).bytesRead === buf.length);
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.close();
  }

  private async attempt(op: (h: FileHandle) => Promise<boolean>): Promise<boolean> {
    const h = this.handle;
    if (!h) return false;
    try {
      return await op(h);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      // Refused as misaligned or unsupported: not tried again on this file.
      this.handle = undefined;
      void h.close().catch(() => undefined);
      return false;
    }
  }
}

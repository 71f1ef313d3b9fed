import type { Readable } from 'node:stream';
import { InvalidArgumentError, piecePool, type Digest, type Metainfo, type PieceFile } from '@krill/lib';

/**
 * The largest piece a sidecar may declare: the largest of the piece length policy
 * (`pieceLengthFor` in lib/src/metainfo.ts), which is also what a peer accepts in a frame
 * before the handshake names the blob. A larger one could only come from a bad sidecar.
 */
const MAX_PIECE_BYTES = 16 * 1024 * 1024;
const HEX64 = /^[a-f0-9]{64}$/;

/**
 * Whether a backend's sidecar can describe the blob `digest` of `size` bytes: same digest and
 * length, a piece length within the policy and one well-formed hash per piece. It does not
 * prove the hashes right; every piece is verified against them as it arrives, and the whole
 * blob against its digest before the store takes it.
 */
export function sidecarFits(m: Metainfo | undefined, digest: Digest, size: number): m is Metainfo {
  if (!m || typeof m !== 'object' || m.digest !== digest || m.length !== size) return false;
  if (!Number.isSafeInteger(m.pieceLength) || m.pieceLength < 1 || m.pieceLength > MAX_PIECE_BYTES) return false;
  // An empty blob still has one (empty) piece, as PieceHasher makes it.
  const count = Math.max(1, Math.ceil(size / m.pieceLength));
  return Array.isArray(m.pieces) && m.pieces.length === count && m.pieces.every((p) => typeof p === 'string' && HEX64.test(p));
}

/**
 * Writes a blob's bytes, read in order from `body`, into `file` one piece at a time, each as
 * soon as its last byte has arrived. PieceFile verifies each against its SHA-256 before writing
 * it (InvalidArgument ERR_PIECE_CORRUPT otherwise) and emits `piece`, on which the swarm
 * announces it to its peers. A body longer or shorter than the metainfo's length is
 * InvalidArgument ERR_SIZE_INVALID. Pieces already present (an agent sent them first) are
 * skipped. The caller destroys `body`.
 */
export async function writePieces(body: Readable, file: PieceFile): Promise<void> {
  const { digest, length } = file.metainfo;
  let index = 0;
  let parts: Buffer[] = [];
  let buffered = 0;
  let received = 0;
  const drain = async () => {
    while (index < file.pieceCount && buffered >= file.pieceSize(index)) {
      const size = file.pieceSize(index);
      const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts, buffered);
      const rest = all.subarray(size);
      parts = rest.length > 0 ? [rest] : [];
      buffered = rest.length;
      // A copy, into a buffer of the piece pool: the piece must not pin the whole chunk it was
      // cut from, and a pool buffer is page-aligned, so the piece goes to disk directly (see
      // DirectIo) rather than through new page-cache pages.
      const piece = piecePool.take(size);
      all.copy(piece, 0, 0, size);
      try {
        await file.write(index, piece);
      } finally {
        piecePool.give(piece);
      }
      index++;
    }
  };
  for await (const chunk of body) {
    const c = chunk as Buffer;
    received += c.length;
    if (received > length) throw new InvalidArgumentError(`backend body of ${digest} is longer than its ${length} bytes`, { code: 'ERR_SIZE_INVALID' });
    parts.push(c);
    buffered += c.length;
    await drain();
  }
  await drain();
  if (index < file.pieceCount) {
    throw new InvalidArgumentError(`backend body of ${digest} ended after ${received} of ${length} bytes`, { code: 'ERR_SIZE_INVALID' });
  }
}

/** True when `p` resolves within `ms`; false when it is still running then; rejects as `p` does. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([p.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

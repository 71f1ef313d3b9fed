import type { Readable } from 'node:stream';
import type { Digest, Digester } from '@krill/lib';
import { sizeMismatch } from '../mismatch.js';

/**
 * Reads exactly `size` bytes from `body` as consecutive parts of `partSize` bytes (the last one
 * shorter), hashing everything into `digester`. It pulls from the stream only when the consumer
 * asks for the next part, so memory is one part being filled plus whatever parts the consumer
 * still holds. More than `size` bytes, or fewer, is InvalidArgument ERR_SIZE_INVALID; the
 * generator stops at the first excess byte instead of reading the rest.
 */
export async function* readParts(body: Readable, digest: Digest, size: number, partSize: number, digester: Digester): AsyncGenerator<Buffer> {
  let remaining = size;
  let part = Buffer.allocUnsafe(Math.min(partSize, remaining));
  let filled = 0;
  for await (const piece of body) {
    let chunk = typeof piece === 'string' ? Buffer.from(piece) : (piece as Buffer);
    if (digester.size + chunk.length > size) throw sizeMismatch(digest, size, `more than ${size}`);
    digester.update(chunk);
    while (chunk.length > 0) {
      const n = Math.min(chunk.length, part.length - filled);
      chunk.copy(part, filled, 0, n);
      filled += n;
      chunk = chunk.subarray(n);
      if (filled === part.length) {
        remaining -= filled;
        yield part;
        part = Buffer.allocUnsafe(Math.min(partSize, remaining));
        filled = 0;
      }
    }
  }
  if (digester.size !== size) throw sizeMismatch(digest, size, String(digester.size));
  if (size === 0) yield part;
}

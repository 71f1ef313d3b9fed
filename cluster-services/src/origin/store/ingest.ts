import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Digester, InvalidArgumentError, PieceHasher, pieceLengthFor, type Digest, type Metainfo } from '@krill/lib';

/** Read and write buffers for blob files: large enough that a GiB moves in ~1,000 syscalls. */
export const IO_CHUNK = 1024 * 1024;

/** A temporary blob directory holding a verified `data` file, ready to be renamed into place. */
export interface StagedBlob {
  dir: string;
  size: number;
}

/**
 * Streams `body` into `<tmpDir>/<random>/data` while computing the blob's SHA-256, then checks
 * it against `digest` and `size`. On any mismatch or stream error the directory is removed and
 * the error thrown, so nothing partial survives. Piece hashes are not computed here: SHA-256 is
 * the bottleneck of an upload on CPUs without SHA extensions, so they are computed once, when
 * first asked for (see the store's `metainfo`).
 */
export async function stageBlob(tmpRoot: string, digest: Digest, body: Readable, options: { size?: number; signal?: AbortSignal } = {}): Promise<StagedBlob> {
  const dir = join(tmpRoot, `${Date.now()}-${Math.random().toString(16).slice(2)}`);
  await mkdir(dir, { recursive: true });
  try {
    const digester = new Digester();
    const hash = new Transform({
      highWaterMark: IO_CHUNK,
      transform(chunk: Buffer, _enc, done) {
        digester.update(chunk);
        if (options.size !== undefined && digester.size > options.size) {
          done(new InvalidArgumentError(`blob ${digest}: more than the declared ${options.size} bytes`, { code: 'ERR_SIZE_INVALID' }));
          return;
        }
        done(null, chunk);
      },
    });
    await pipeline(body, hash, createWriteStream(join(dir, 'data'), { highWaterMark: IO_CHUNK }), options.signal ? { signal: options.signal } : {});
    if (options.size !== undefined && digester.size !== options.size) {
      throw new InvalidArgumentError(`blob ${digest}: got ${digester.size} bytes, expected ${options.size}`, { code: 'ERR_SIZE_INVALID' });
    }
    const actual = digester.digest();
    if (actual !== digest) {
      throw new InvalidArgumentError(`blob content hashes to ${actual}, not ${digest}`, { code: 'ERR_DIGEST_MISMATCH' });
    }
    return { dir, size: digester.size };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Computes the piece hashes of a file already on disk. */
export async function hashPieces(file: string, digest: Digest, size: number): Promise<Metainfo> {
  const pieces = new PieceHasher(pieceLengthFor(size));
  for await (const chunk of createReadStream(file, { highWaterMark: IO_CHUNK })) pieces.update(chunk as Buffer);
  return pieces.finish(digest);
}

/** Hashes a file: its digest and size. */
export async function hashFile(file: string): Promise<{ digest: Digest; size: number }> {
  const digester = new Digester();
  for await (const chunk of createReadStream(file, { highWaterMark: IO_CHUNK })) digester.update(chunk as Buffer);
  return { digest: digester.digest(), size: digester.size };
}

/** Hashes `body` without storing it; InvalidArgument (ERR_DIGEST_MISMATCH / ERR_SIZE_INVALID) on a mismatch. */
export async function verifyStream(digest: Digest, body: Readable, size?: number): Promise<void> {
  const digester = new Digester();
  for await (const chunk of body) digester.update(chunk as Buffer);
  if (size !== undefined && digester.size !== size) {
    throw new InvalidArgumentError(`blob ${digest}: got ${digester.size} bytes, expected ${size}`, { code: 'ERR_SIZE_INVALID' });
  }
  const actual = digester.digest();
  if (actual !== digest) throw new InvalidArgumentError(`blob content hashes to ${actual}, not ${digest}`, { code: 'ERR_DIGEST_MISMATCH' });
}

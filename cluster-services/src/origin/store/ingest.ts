import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Digester, InvalidArgumentError, PieceHasher, pieceLengthFor, type Digest, type Metainfo } from '@krill/lib';

/** Read and write buffers for blob files: large enough that a GiB moves in ~1,000 syscalls. */
export const IO_CHUNK = 1024 * 1024;

/** A temporary blob directory holding `data` (and later `metainfo.json`), ready to be renamed. */
export interface StagedBlob {
  dir: string;
  metainfo: Metainfo;
}

/**
 * Streams `body` into `<tmpDir>/<random>/data` while computing the blob's SHA-256 and piece
 * hashes in the same pass, then checks them against `digest` and `size`. On any mismatch or
 * stream error the directory is removed and the error thrown, so nothing partial survives.
 * `size`, when known, also picks the piece length; otherwise it is picked from the final size by
 * hashing pieces again from the file (only fetch-on-miss of unknown size pays for that).
 */
export async function stageBlob(tmpRoot: string, digest: Digest, body: Readable, options: { size?: number; signal?: AbortSignal } = {}): Promise<StagedBlob> {
  const dir = join(tmpRoot, `${Date.now()}-${Math.random().toString(16).slice(2)}`);
  await mkdir(dir, { recursive: true });
  try {
    const digester = new Digester();
    const pieces = options.size === undefined ? undefined : new PieceHasher(pieceLengthFor(options.size));
    const hash = new Transform({
      highWaterMark: IO_CHUNK,
      transform(chunk: Buffer, _enc, done) {
        digester.update(chunk);
        pieces?.update(chunk);
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
    const metainfo = pieces ? pieces.finish(digest) : await hashPieces(join(dir, 'data'), digest, digester.size);
    return { dir, metainfo };
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

/** Hashes a file fully: its digest, size and piece hashes. */
export async function hashFile(file: string, size: number): Promise<{ digest: Digest; metainfo: Omit<Metainfo, 'digest'> }> {
  const digester = new Digester();
  const pieces = new PieceHasher(pieceLengthFor(size));
  for await (const chunk of createReadStream(file, { highWaterMark: IO_CHUNK })) {
    digester.update(chunk as Buffer);
    pieces.update(chunk as Buffer);
  }
  const digest = digester.digest();
  const { digest: _d, ...rest } = pieces.finish(digest);
  void _d;
  return { digest, metainfo: rest };
}

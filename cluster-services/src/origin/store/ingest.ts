import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Digester, InvalidArgumentError, diskError, PieceHasher, pieceLengthFor, type Digest, type Metainfo } from '@krill/lib';

/** Read and write buffers for blob files: large enough that a GiB moves in ~1,000 syscalls. */
export const IO_CHUNK = 1024 * 1024;

/**
 * While a blob is written, its dirty pages are flushed in the background every this many bytes,
 * so the fsync that must precede the rename only waits for the last stretch. 64 MiB is a few
 * tenths of a second of disk time: small enough to hide behind hashing, large enough that a GiB
 * costs only 16 flushes.
 */
const FLUSH_EVERY = 64 * 1024 * 1024;

/** A temporary blob directory holding a verified, fsynced `data` file, ready to be renamed into place. */
export interface StagedBlob {
  dir: string;
  size: number;
}

/**
 * Streams `body` into `<tmpDir>/<random>/data` while computing the blob's SHA-256, fsyncs the
 * file, then checks it against `digest` and `size`. On any mismatch or stream error the
 * directory is removed and the error thrown, so nothing partial survives. Piece hashes are not
 * computed here: SHA-256 is the bottleneck of an upload on CPUs without SHA extensions, so they
 * are computed once, when first asked for (see the store's `metainfo`).
 */
export async function stageBlob(tmpRoot: string, digest: Digest, body: Readable, options: { size?: number; signal?: AbortSignal } = {}): Promise<StagedBlob> {
  const dir = join(tmpRoot, `${Date.now()}-${Math.random().toString(16).slice(2)}`);
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'data');
  let flushFd: FileHandle | undefined;
  try {
    const out = createWriteStream(file, { highWaterMark: IO_CHUNK, flush: true });
    await new Promise<void>((resolve, reject) => out.once('open', () => resolve()).once('error', reject));
    // A second descriptor for the background flushes, so they never queue behind the stream's writes.
    flushFd = await open(file, 'r');
    const flusher = backgroundFlusher(flushFd);
    const digester = new Digester();
    const hash = new Transform({
      highWaterMark: IO_CHUNK,
      transform(chunk: Buffer, _enc, done) {
        digester.update(chunk);
        if (options.size !== undefined && digester.size > options.size) {
          done(new InvalidArgumentError(`blob ${digest}: more than the declared ${options.size} bytes`, { code: 'ERR_SIZE_INVALID' }));
          return;
        }
        flusher.wrote(chunk.length);
        done(null, chunk);
      },
    });
    // `flush: true` fsyncs the file before the stream closes, so the pipeline ends with the bytes on disk.
    await pipeline(body, hash, out, options.signal ? { signal: options.signal } : {});
    await flusher.settled();
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
    throw diskError(err, `storing ${digest} under ${tmpRoot}`);
  } finally {
    await flushFd?.close().catch(() => undefined);
  }
}

/** Starts at most one `fdatasync` at a time, each after FLUSH_EVERY more bytes were written. */
export function backgroundFlusher(fh: FileHandle): { wrote(n: number): void; settled(): Promise<void> } {
  let unflushed = 0;
  let running: Promise<void> | undefined;
  return {
    wrote(n) {
      unflushed += n;
      if (unflushed < FLUSH_EVERY || running) return;
      unflushed = 0;
      // A failed background flush is not fatal: the final fsync reports any real I/O error.
      running = fh.datasync().catch(() => undefined).finally(() => { running = undefined; });
    },
    async settled() {
      await running;
    },
  };
}

/**
 * Flushes a file written earlier (an upload assembled from chunks) or a directory's entries (a
 * rename into it, a new subdirectory) to disk. Directories can only be opened for reading.
 */
export async function syncPath(path: string, kind: 'file' | 'dir'): Promise<void> {
  const fh = await open(path, kind === 'dir' ? 'r' : 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
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

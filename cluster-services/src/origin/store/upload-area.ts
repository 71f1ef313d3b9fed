import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, diskError, drainBody, isCategory, type Digest, type Logger } from '@krill/lib';
import { IO_CHUNK, backgroundFlusher, hashFile } from './ingest.js';

/** Upload ids are 128 random bits in hex; anything else in a path is refused. */
export const UPLOAD_ID_RE = /^[a-f0-9]{32}$/;

/**
 * How long an all-or-nothing append waits for an earlier request on the same upload to let go.
 * The earlier one is a chunk its sender gave up on; its connection is already closed, so it fails
 * within milliseconds of the server noticing. Ten seconds covers a loaded machine.
 */
export const ATOMIC_WAIT_MS = 10_000;

export interface AppendOptions {
  signal?: AbortSignal;
  /**
   * All or nothing: a body that breaks off is cut back to `offset` (InvalidArgument
   * ERR_UPLOAD_INVALID) instead of keeping what arrived, and an upload busy with another request
   * is waited for (up to ten seconds) rather than refused, since that request is one its sender
   * abandoned.
   */
  atomic?: boolean;
}

/**
 * Resumable uploads in progress, one file each under `<store>/uploads/<id>`. An append or a
 * commit holds the upload exclusively: a second one at the same time gets FailedPrecondition
 * ERR_UPLOAD_BUSY instead of interleaving its bytes (an atomic append waits instead).
 *
 * Appends that arrive in order are hashed as they are written, so a commit compares digests
 * without reading the file again; the running hash lives in memory and is dropped whenever it
 * might not match the file (a body that broke off and kept part of a chunk, a restart), and
 * `hashed` then reads the file. Dirty pages are flushed in the background while a chunk is
 * written, so the commit's fsync waits only for the tail.
 */
export interface UploadArea {
  start(): Promise<string>;
  size(id: string): Promise<number>;
  append(id: string, offset: number, body: Readable, options?: AppendOptions): Promise<number>;
  /**
   * Runs `fn` with the upload's file while holding the upload exclusively, waiting up to
   * `waitMs` (default 0) for another request to let go before FailedPrecondition ERR_UPLOAD_BUSY.
   */
  withUpload<T>(id: string, fn: (file: string) => Promise<T>, waitMs?: number): Promise<T>;
  /**
   * The digest and size of the upload's file, from the running hash when it is known to cover
   * exactly the file's bytes, else by reading the file. Call inside `withUpload`.
   */
  hashed(id: string, file: string): Promise<{ digest: Digest; size: number; incremental: boolean }>;
  /** Removes an upload, after waiting (up to ten seconds) for a request still holding it. */
  abort(id: string): Promise<void>;
  /** Forgets the running hash of an upload whose file was moved into the store. */
  forget(id: string): void;
  /** Removes uploads untouched for longer than `maxAgeMs`; returns how many. */
  sweep(maxAgeMs: number): Promise<number>;
}

/** The SHA-256 of an upload's first `size` bytes, as far as they were received in order. */
interface Running {
  hash: Hash;
  size: number;
}

export function createUploadArea(dir: string, logger: Logger): UploadArea {
  const busy = new Map<string, Promise<void>>();
  const running = new Map<string, Running>();
  const missing = (id: string) => new NotFoundError(`upload ${JSON.stringify(id)} does not exist`, { code: 'ERR_UPLOAD_NOT_FOUND' });
  const fileOf = (id: string) => {
    if (!UPLOAD_ID_RE.test(id)) throw missing(id);
    return join(dir, id);
  };

  async function size(id: string): Promise<number> {
    try {
      return (await stat(fileOf(id))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missing(id);
      throw err;
    }
  }

  async function withUpload<T>(id: string, fn: (file: string) => Promise<T>, waitMs = 0): Promise<T> {
    const file = fileOf(id);
    const deadline = Date.now() + waitMs;
    for (let held = busy.get(id); held; held = busy.get(id)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new FailedPreconditionError(`upload ${id} is busy with another request`, { code: 'ERR_UPLOAD_BUSY' });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([held, new Promise<void>((r) => { timer = setTimeout(r, left); })]);
      clearTimeout(timer);
    }
    let release!: () => void;
    busy.set(id, new Promise<void>((r) => { release = r; }));
    try {
      return await fn(file);
    } finally {
      busy.delete(id);
      release();
    }
  }

  /** Writes `body` at the end of `file`, hashing it into `hash` when given, with background flushes. */
  async function write(file: string, body: Readable, hash: Hash | undefined, signal: AbortSignal | undefined): Promise<void> {
    const out = createWriteStream(file, { flags: 'a', highWaterMark: IO_CHUNK });
    let flushFd;
    try {
      await new Promise<void>((resolve, reject) => out.once('open', () => resolve()).once('error', reject));
      // A second descriptor for the background flushes, so they never queue behind the stream's writes.
      flushFd = await open(file, 'r');
      const flusher = backgroundFlusher(flushFd);
      const tap = new Transform({
        highWaterMark: IO_CHUNK,
        transform(chunk: Buffer, _enc, done) {
          hash?.update(chunk);
          flusher.wrote(chunk.length);
          done(null, chunk);
        },
      });
      try {
        await pipeline(body, tap, out, signal ? { signal } : {});
      } finally {
        await flusher.settled();
      }
    } catch (err) {
      out.destroy();
      // The write stream may still be closing its descriptor; the caller looks at the file only after it has.
      await finished(out).catch(() => undefined);
      throw diskError(err, `writing upload ${file}`);
    } finally {
      await flushFd?.close().catch(() => undefined);
    }
  }

  return {
    size,
    withUpload,
    async start() {
      const id = randomBytes(16).toString('hex');
      await writeFile(join(dir, id), '');
      running.set(id, { hash: createHash('sha256'), size: 0 });
      return id;
    },
    async append(id, offset, body, options = {}) {
      try {
        return await withUpload(id, async (file) => {
          const current = await size(id);
          if (offset !== current) {
            throw new InvalidArgumentError(`upload ${id}: append at offset ${offset}, but ${current} bytes were received`, { code: 'ERR_UPLOAD_OFFSET' });
          }
          const state = running.get(id);
          const inOrder = state !== undefined && state.size === current;
          if (!inOrder) running.delete(id);
          // The state before this chunk, to go back to when an atomic chunk is cut back.
          const before = inOrder && options.atomic ? state.hash.copy() : undefined;
          try {
            await write(file, body, inOrder ? state.hash : undefined, options.signal);
          } catch (err) {
            if (!options.atomic) {
              // What was written stays and the client resumes from the upload's size; the running
              // hash may have seen bytes the file did not get, so it is dropped.
              running.delete(id);
              throw err;
            }
            // The running hash saw the broken chunk; it comes back only once the file is cut back.
            running.delete(id);
            await truncate(file, offset);
            if (before) running.set(id, { hash: before, size: offset });
            // A chunk refused by a check on its bytes (a wrong length) keeps that error, and so
            // does a full disk (the client should hear that, not that its chunk was bad).
            if (err instanceof InvalidArgumentError || isCategory(err, 'Unavailable')) throw err;
            throw new InvalidArgumentError(`upload ${id}: the chunk at ${offset} broke off and was discarded: ${(err as Error).message}`, { code: 'ERR_UPLOAD_INVALID', cause: err });
          }
          const now = await size(id);
          if (inOrder) state.size = now;
          return now;
        }, options.atomic ? ATOMIC_WAIT_MS : 0);
      } catch (err) {
        // A refused body is read to its end before the error goes out, so the client (the
        // proxy) has sent it all and reads the reply whole.
        await drainBody(body);
        throw err;
      }
    },
    async hashed(id, file) {
      const state = running.get(id);
      const onDisk = (await stat(file)).size;
      if (state && state.size === onDisk) {
        // A copy, so a commit that fails later (fsync, store full) can still be retried.
        return { digest: `sha256:${state.hash.copy().digest('hex')}`, size: onDisk, incremental: true };
      }
      return { ...(await hashFile(file)), incremental: false };
    },
    forget(id) {
      running.delete(id);
    },
    async abort(id) {
      if (!UPLOAD_ID_RE.test(id)) return;
      try {
        await withUpload(id, async (file) => {
          running.delete(id);
          await rm(file, { force: true });
        }, ATOMIC_WAIT_MS);
      } catch (err) {
        // Still busy after the wait: the sweep removes it once it is abandoned.
        if (!(err instanceof FailedPreconditionError)) throw err;
      }
    },
    async sweep(maxAgeMs) {
      let removed = 0;
      const now = Date.now();
      for (const id of await readdir(dir).catch(() => [] as string[])) {
        if (busy.has(id)) continue;
        const st = await stat(join(dir, id)).catch(() => undefined);
        if (!st || now - st.mtimeMs <= maxAgeMs) continue;
        running.delete(id);
        await rm(join(dir, id), { force: true, recursive: true });
        removed++;
      }
      if (removed > 0) logger.info({ removed }, 'removed abandoned uploads');
      return removed;
    },
  };
}

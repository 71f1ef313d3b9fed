import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, type Logger } from '@krill/lib';
import { IO_CHUNK } from './ingest.js';

/** Upload ids are 128 random bits in hex; anything else in a path is refused. */
export const UPLOAD_ID_RE = /^[a-f0-9]{32}$/;

/**
 * Resumable uploads in progress, one file each under `<store>/uploads/<id>`. An append or a
 * commit holds the upload exclusively: a second one at the same time gets FailedPrecondition
 * ERR_UPLOAD_BUSY instead of interleaving its bytes.
 */
export interface UploadArea {
  start(): Promise<string>;
  size(id: string): Promise<number>;
  append(id: string, offset: number, body: Readable, signal?: AbortSignal): Promise<number>;
  /** Runs `fn` with the upload's file while holding the upload exclusively. */
  withUpload<T>(id: string, fn: (file: string) => Promise<T>): Promise<T>;
  abort(id: string): Promise<void>;
  /** Removes uploads untouched for longer than `maxAgeMs`; returns how many. */
  sweep(maxAgeMs: number): Promise<number>;
}

export function createUploadArea(dir: string, logger: Logger): UploadArea {
  const busy = new Set<string>();
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

  async function withUpload<T>(id: string, fn: (file: string) => Promise<T>): Promise<T> {
    const file = fileOf(id);
    if (busy.has(id)) throw new FailedPreconditionError(`upload ${id} is busy with another request`, { code: 'ERR_UPLOAD_BUSY' });
    busy.add(id);
    try {
      return await fn(file);
    } finally {
      busy.delete(id);
    }
  }

  return {
    size,
    withUpload,
    async start() {
      const id = randomBytes(16).toString('hex');
      await writeFile(join(dir, id), '');
      return id;
    },
    async append(id, offset, body, signal) {
      try {
        return await withUpload(id, async (file) => {
          const current = await size(id);
          if (offset !== current) {
            throw new InvalidArgumentError(`upload ${id}: append at offset ${offset}, but ${current} bytes were received`, { code: 'ERR_UPLOAD_OFFSET' });
          }
          // On a broken body what was written stays; the client resumes from the upload's size.
          await pipeline(body, createWriteStream(file, { flags: 'a', highWaterMark: IO_CHUNK }), signal ? { signal } : {});
          return size(id);
        });
      } catch (err) {
        // A refused body is drained so the connection can carry the error reply.
        if (!body.destroyed) body.resume();
        throw err;
      }
    },
    async abort(id) {
      if (UPLOAD_ID_RE.test(id) && !busy.has(id)) await rm(join(dir, id), { force: true });
    },
    async sweep(maxAgeMs) {
      let removed = 0;
      const now = Date.now();
      for (const id of await readdir(dir).catch(() => [] as string[])) {
        if (busy.has(id)) continue;
        const st = await stat(join(dir, id)).catch(() => undefined);
        if (!st || now - st.mtimeMs <= maxAgeMs) continue;
        await rm(join(dir, id), { force: true, recursive: true });
        removed++;
      }
      if (removed > 0) logger.info({ removed }, 'removed abandoned uploads');
      return removed;
    },
  };
}

import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  diskError,
  FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError,
  isDigest, type Digest, type Logger, type Metainfo,
} from '@krill/lib';
import type { BlobInfo, BlobStore } from './blob-store.js';
import { IO_CHUNK, hashPieces, stageBlob, syncPath, verifyStream, type StagedBlob } from './ingest.js';
import { BlobIndex } from './lru.js';
import { storeLayout } from './layout.js';
import { ATOMIC_WAIT_MS, createUploadArea } from './upload-area.js';

const HOUR = 3_600_000;

export interface FsBlobStoreOptions {
  dir: string;
  /** Bytes the stored blobs may take; least recently used unpinned blobs are evicted beyond it. */
  capacityBytes: number;
  logger: Logger;
  /**
   * Uploads untouched for this long are removed (checked at open and hourly). Default a day: a
   * client that has not appended for that long has gone, and its bytes count against no capacity.
   */
  uploadMaxAgeMs?: number;
}

/**
 * Opens (creating if needed) the content-addressed store under `dir`. Leftover temporary files
 * from a crash are removed; blobs in place were verified and fsynced before they were renamed
 * there, so they are trusted without hashing them again.
 */
export async function createBlobStore(options: FsBlobStoreOptions): Promise<BlobStore & { index: BlobIndex }> {
  const layout = storeLayout(options.dir);
  const log = options.logger;
  await rm(layout.tmp, { recursive: true, force: true });
  await Promise.all([layout.blobs, layout.uploads, layout.tmp].map((d) => mkdir(d, { recursive: true })));
  const index = new BlobIndex();
  await loadIndex(layout.blobs, index);
  const uploads = createUploadArea(layout.uploads, log);
  const uploadMaxAgeMs = options.uploadMaxAgeMs ?? 24 * HOUR;
  await uploads.sweep(uploadMaxAgeMs);
  const sweeper = setInterval(() => void uploads.sweep(uploadMaxAgeMs).catch(() => undefined), HOUR);
  sweeper.unref();
  log.info({ blobs: index.count, bytes: index.usedBytes }, 'blob store opened');
  const computing = new Map<Digest, Promise<Metainfo>>();
  const notFound = (d: Digest) => new NotFoundError(`blob ${d} is not in this origin's store`, { code: 'ERR_BLOB_NOT_FOUND' });
  const tmpName = (what: string) => join(layout.tmp, `${what}-${Date.now()}-${Math.random().toString(16).slice(2)}`);

  // Placements run one at a time, so each sees the bytes of the one before it when it picks
  // victims. A placement is a few renames and directory fsyncs: milliseconds, while the slow
  // part (receiving and hashing the bytes) runs concurrently before it.
  let placing: Promise<unknown> = Promise.resolve();
  function place(digest: Digest, staged: StagedBlob, pin: boolean): Promise<BlobInfo> {
    const p = placing.then(() => placeNow(digest, staged, pin));
    placing = p.catch(() => undefined);
    return p;
  }

  /** Makes room and renames the staged directory into place. */
  async function placeNow(digest: Digest, staged: StagedBlob, pin: boolean): Promise<BlobInfo> {
    try {
      if (index.has(digest)) {
        if (pin) index.pin(digest);
        return { size: staged.size };
      }
      const victims = index.victims(staged.size, options.capacityBytes);
      if (victims === undefined) {
        throw new UnavailableError(`store full: ${staged.size} bytes for ${digest} do not fit beside pinned blobs (capacity ${options.capacityBytes})`, { code: 'ERR_STORE_FULL' });
      }
      for (const v of victims) await evict(v);
      const created = await mkdir(dirname(layout.blobDir(digest)), { recursive: true });
      try {
        await rename(staged.dir, layout.blobDir(digest));
      } catch (err) {
        // A concurrent writer of the same digest won the rename; its bytes are the same.
        if ((err as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      // The rename is durable only once the directory holding the new entry is flushed.
      await syncPath(dirname(layout.blobDir(digest)), 'dir');
      if (created !== undefined) await syncPath(layout.blobs, 'dir');
      index.add(digest, staged.size);
      if (pin) index.pin(digest);
      return { size: staged.size };
    } finally {
      await rm(staged.dir, { recursive: true, force: true });
    }
  }

  async function evict(d: Digest): Promise<void> {
    index.remove(d);
    await rm(layout.blobDir(d), { recursive: true, force: true });
    log.info({ digest: d }, 'evicted blob');
  }

  /** The metainfo kept beside the blob, or undefined when absent or unreadable (then recomputed). */
  async function storedMetainfo(digest: Digest): Promise<Metainfo | undefined> {
    try {
      const m = JSON.parse(await readFile(layout.metainfo(digest), 'utf8')) as Metainfo;
      if (m.digest === digest && Array.isArray(m.pieces)) return m;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
    }
    return undefined;
  }

  const store: BlobStore & { index: BlobIndex } = {
    index,
    usedBytes: () => index.usedBytes,
    async stat(digest) {
      const size = index.size(digest);
      if (size === undefined) throw notFound(digest);
      return { size };
    },
    async open(digest, range) {
      const size = index.size(digest);
      if (size === undefined) throw notFound(digest);
      if (index.touch(digest)) void utimes(layout.data(digest), new Date(), new Date()).catch(() => undefined);
      const stream = createReadStream(layout.data(digest), { ...range, highWaterMark: IO_CHUNK });
      await new Promise<void>((resolve, reject) => {
        stream.once('open', () => resolve());
        stream.once('error', (err) => reject((err as NodeJS.ErrnoException).code === 'ENOENT' ? notFound(digest) : err));
      });
      return stream;
    },
    async metainfo(digest) {
      const size = index.size(digest);
      if (size === undefined) throw notFound(digest);
      const stored = await storedMetainfo(digest);
      if (stored) return stored;
      // Computed once, on first request, by one caller; written beside the blob atomically.
      let p = computing.get(digest);
      if (!p) {
        p = (async () => {
          const m = await hashPieces(layout.data(digest), digest, size);
          const tmp = tmpName('metainfo');
          await writeFile(tmp, JSON.stringify(m)).catch(async (err: unknown) => {
            await rm(tmp, { force: true });
            throw diskError(err, `storing the metainfo of ${digest}`);
          });
          await rename(tmp, layout.metainfo(digest)).catch(async (err) => {
            await rm(tmp, { force: true });
            // Evicted meanwhile: the answer is still right for the bytes that were read.
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          });
          return m;
        })().finally(() => computing.delete(digest));
        computing.set(digest, p);
      }
      return p;
    },
    async hold(digest) {
      if (!index.has(digest)) throw notFound(digest);
      index.hold(digest);
      if (index.touch(digest)) void utimes(layout.data(digest), new Date(), new Date()).catch(() => undefined);
      let held = true;
      return {
        path: layout.data(digest),
        release() {
          if (held) index.release(digest);
          held = false;
        },
      };
    },
    async put(digest, body, opts = {}) {
      const existing = index.size(digest);
      if (existing !== undefined) {
        // Already stored: the bytes are still checked, so a wrong upload is refused even then.
        // The pin comes first so that eviction cannot take the blob while the body is hashed.
        const wasPinned = index.isPinned(digest);
        if (opts.pin) index.pin(digest);
        try {
          await verifyStream(digest, body, opts.size);
        } catch (err) {
          if (!wasPinned) index.unpin(digest);
          throw err;
        }
        if (index.has(digest)) return { size: existing };
        // Deleted while the body was hashed: the caller gets an error rather than a blob it cannot read.
        throw new UnavailableError(`blob ${digest} was removed while it was being uploaded again; retry`, { code: 'ERR_BLOB_REMOVED' });
      }
      const staged = await stageBlob(layout.tmp, digest, body, {
        ...(opts.size === undefined ? {} : { size: opts.size }),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return place(digest, staged, opts.pin ?? false);
    },
    async adopt(path, metainfo, opts = {}) {
      const { digest, length: size } = metainfo;
      const existing = index.size(digest);
      if (existing !== undefined) {
        if (opts.pin) index.pin(digest);
        return { size: existing };
      }
      const st = await stat(path);
      if (st.size !== size) throw new InvalidArgumentError(`file ${path} has ${st.size} bytes, not the ${size} of ${digest}`, { code: 'ERR_SIZE_INVALID' });
      await syncPath(path, 'file');
      const dir = tmpName('adopt');
      await mkdir(dir);
      try {
        await writeFile(join(dir, 'metainfo.json'), JSON.stringify(metainfo));
        await rename(path, join(dir, 'data'));
      } catch (err) {
        await rm(dir, { recursive: true, force: true });
        throw diskError(err, `taking ${digest} into the store`);
      }
      return place(digest, { dir, size }, opts.pin ?? false);
    },
    async delete(digest) {
      if (!index.has(digest)) throw notFound(digest);
      if (index.isPinned(digest)) throw new FailedPreconditionError(`blob ${digest} is waiting for write-back and cannot be deleted`, { code: 'ERR_BLOB_PINNED' });
      if (index.isHeld(digest)) throw new FailedPreconditionError(`blob ${digest} is being seeded and cannot be deleted`, { code: 'ERR_BLOB_HELD' });
      await evict(digest);
    },
    async setPinned(digest, pinned) {
      if (!index.has(digest)) throw notFound(digest);
      if (pinned) index.pin(digest);
      else index.unpin(digest);
    },
    startUpload: () => uploads.start(),
    uploadSize: (id) => uploads.size(id),
    append: (id, offset, body, opts) => uploads.append(id, offset, body, opts),
    async commit(id, digest, opts = {}) {
      if (!isDigest(digest)) throw new InvalidArgumentError(`digest ${JSON.stringify(digest)} is invalid`, { code: 'ERR_DIGEST_INVALID' });
      return uploads.withUpload(id, async (file) => {
        await uploads.size(id);
        const hashed = await uploads.hashed(id, file);
        if (hashed.digest !== digest) {
          await rm(file, { force: true });
          uploads.forget(id);
          throw new InvalidArgumentError(`upload ${id} (${hashed.size} bytes) hashes to ${hashed.digest}, not ${digest}; upload discarded`, { code: 'ERR_DIGEST_MISMATCH' });
        }
        const existing = index.size(digest);
        if (existing !== undefined) {
          // Stored already: its own bytes are durable, so this copy is neither flushed nor placed,
          // only removed. Pinned at once (nothing awaits in between), so eviction cannot take it.
          if (opts.pin) index.pin(digest);
          await rm(file, { force: true });
          uploads.forget(id);
          return { size: existing };
        }
        await syncPath(file, 'file');
        const dir = tmpName(`upload-${id}`);
        await mkdir(dir);
        await rename(file, join(dir, 'data'));
        uploads.forget(id);
        return place(digest, { dir, size: hashed.size }, opts.pin ?? false);
      }, opts.wait ? ATOMIC_WAIT_MS : 0);
    },
    abort: (id) => uploads.abort(id),
    async close() {
      // Nothing else is held open between calls; streams belong to their callers.
      clearInterval(sweeper);
    },
  };
  return store;
}

async function loadIndex(blobsDir: string, index: BlobIndex): Promise<void> {
  for (const shard of await readdir(blobsDir)) {
    for (const hex of await readdir(join(blobsDir, shard)).catch(() => [] as string[])) {
      const digest = `sha256:${hex}`;
      if (!isDigest(digest)) continue;
      try {
        const st = await stat(join(blobsDir, shard, hex, 'data'));
        index.add(digest, st.size, st.mtimeMs);
      } catch {
        // A directory without its data file was never completed by this code; ignore it.
      }
    }
  }
}

import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError,
  isDigest, type Digest, type Logger, type Metainfo,
} from '@krill/lib';
import type { BlobInfo, BlobStore } from './blob-store.js';
import { IO_CHUNK, hashFile, hashPieces, stageBlob, verifyStream, type StagedBlob } from './ingest.js';
import { BlobIndex } from './lru.js';
import { UPLOAD_ID_RE, storeLayout } from './layout.js';

export interface FsBlobStoreOptions {
  dir: string;
  /** Bytes the stored blobs may take; least recently used unpinned blobs are evicted beyond it. */
  capacityBytes: number;
  logger: Logger;
}

/**
 * Opens (creating if needed) the content-addressed store under `dir`. Leftover temporary files
 * from a crash are removed; blobs in place were verified before they were renamed there.
 */
export async function createBlobStore(options: FsBlobStoreOptions): Promise<BlobStore & { index: BlobIndex }> {
  const layout = storeLayout(options.dir);
  await rm(layout.tmp, { recursive: true, force: true });
  await Promise.all([layout.blobs, layout.uploads, layout.tmp].map((d) => mkdir(d, { recursive: true })));
  const index = new BlobIndex();
  await loadIndex(layout.blobs, index);
  const log = options.logger;
  log.info({ blobs: index.count, bytes: index.usedBytes }, 'blob store opened');

  const computing = new Map<Digest, Promise<Metainfo>>();
  const notFound = (d: Digest) => new NotFoundError(`blob ${d} is not in this origin's store`, { code: 'ERR_BLOB_NOT_FOUND' });
  const checkUpload = (id: string) => {
    if (!UPLOAD_ID_RE.test(id)) throw new NotFoundError(`upload ${JSON.stringify(id)} does not exist`, { code: 'ERR_UPLOAD_NOT_FOUND' });
    return layout.upload(id);
  };

  /** Makes room and renames the staged directory into place. */
  async function place(digest: Digest, staged: StagedBlob, pin: boolean): Promise<BlobInfo> {
    try {
      if (index.has(digest)) return { size: staged.size };
      const victims = index.victims(staged.size, options.capacityBytes);
      if (victims === undefined) {
        throw new UnavailableError(`store full: ${staged.size} bytes for ${digest} do not fit beside pinned blobs (capacity ${options.capacityBytes})`, { code: 'ERR_STORE_FULL' });
      }
      for (const v of victims) await evict(v);
      await mkdir(dirname(layout.blobDir(digest)), { recursive: true });
      try {
        await rename(staged.dir, layout.blobDir(digest));
      } catch (err) {
        // A concurrent writer of the same digest won the rename; its bytes are the same.
        if ((err as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
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
      const opts = range ? { start: range.start, end: range.end, highWaterMark: IO_CHUNK } : { highWaterMark: IO_CHUNK };
      const stream = createReadStream(layout.data(digest), opts);
      await new Promise<void>((resolve, reject) => {
        stream.once('open', () => resolve());
        stream.once('error', (err) => reject((err as NodeJS.ErrnoException).code === 'ENOENT' ? notFound(digest) : err));
      });
      return stream;
    },
    async metainfo(digest) {
      const size = index.size(digest);
      if (size === undefined) throw notFound(digest);
      try {
        return JSON.parse(await readFile(layout.metainfo(digest), 'utf8')) as Metainfo;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      // Computed once, on first request, by one caller; written beside the blob atomically.
      let p = computing.get(digest);
      if (!p) {
        p = (async () => {
          const m = await hashPieces(layout.data(digest), digest, size);
          const tmp = `${layout.metainfo(digest)}.${process.pid}.tmp`;
          await writeFile(tmp, JSON.stringify(m));
          await rename(tmp, layout.metainfo(digest));
          return m;
        })().finally(() => computing.delete(digest));
        computing.set(digest, p);
      }
      return p;
    },
    async put(digest, body, opts = {}) {
      const existing = index.size(digest);
      if (existing !== undefined) {
        // Already stored: the bytes are still checked, so a wrong upload is refused even then.
        await verifyStream(digest, body, opts.size);
        if (opts.pin) index.pin(digest);
        return { size: existing };
      }
      const staged = await stageBlob(layout.tmp, digest, body, {
        ...(opts.size === undefined ? {} : { size: opts.size }),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return place(digest, staged, opts.pin ?? false);
    },
    async delete(digest) {
      if (!index.has(digest)) throw notFound(digest);
      if (index.isPinned(digest)) throw new FailedPreconditionError(`blob ${digest} is waiting for write-back and cannot be deleted`, { code: 'ERR_BLOB_PINNED' });
      await evict(digest);
    },
    async setPinned(digest, pinned) {
      if (!index.has(digest)) throw notFound(digest);
      if (pinned) index.pin(digest);
      else index.unpin(digest);
    },
    async startUpload() {
      const id = randomBytes(16).toString('hex');
      await writeFile(layout.upload(id), '');
      return id;
    },
    async uploadSize(id) {
      try {
        return (await stat(checkUpload(id))).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`upload ${id} does not exist`, { code: 'ERR_UPLOAD_NOT_FOUND' });
        throw err;
      }
    },
    async append(id, offset, body, signal) {
      const current = await store.uploadSize(id);
      if (offset !== current) {
        body.resume();
        throw new InvalidArgumentError(`upload ${id}: append at offset ${offset}, but ${current} bytes were received`, { code: 'ERR_UPLOAD_OFFSET' });
      }
      const out = createWriteStream(checkUpload(id), { flags: 'a', highWaterMark: IO_CHUNK });
      // On a broken body what was written stays; the client resumes from uploadSize.
      await pipeline(body, out, signal ? { signal } : {});
      return store.uploadSize(id);
    },
    async commit(id, digest, opts = {}) {
      const file = checkUpload(id);
      const size = await store.uploadSize(id);
      if (!isDigest(digest)) throw new InvalidArgumentError(`digest ${JSON.stringify(digest)} is invalid`, { code: 'ERR_DIGEST_INVALID' });
      const hashed = await hashFile(file);
      void size;
      if (hashed.digest !== digest) {
        await rm(file, { force: true });
        throw new InvalidArgumentError(`upload ${id} hashes to ${hashed.digest}, not ${digest}; upload discarded`, { code: 'ERR_DIGEST_MISMATCH' });
      }
      const dir = join(layout.tmp, `upload-${id}`);
      await mkdir(dir, { recursive: true });
      await rename(file, join(dir, 'data'));
      return place(digest, { dir, size: hashed.size }, opts.pin ?? false);
    },
    async abort(id) {
      if (UPLOAD_ID_RE.test(id)) await rm(layout.upload(id), { force: true });
    },
    async close() {
      // Nothing is held open between calls; streams belong to their callers.
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

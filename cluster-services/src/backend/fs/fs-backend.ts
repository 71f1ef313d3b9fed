import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NotFoundError, type Digest, type Logger, type Metainfo, type Schema } from '@krill/lib';
import type { Backend, BackendBlobInfo, ListPage } from '../backend.js';
import { blobKey, metainfoKey, validateDigest, validateLimit, validateNamespace, validateUploadArgs } from '../blob-key.js';
import { listBlobs } from './fs-list.js';
import { createVerifier } from './verifier.js';

export interface FsBackendConfig {
  /** Directory that holds `blobs/sha256/<2hex>/<hex>/data` and the `_uploads` staging area. */
  root: string;
}

export const fsBackendSchema: Schema = {
  type: 'object',
  description: 'Local filesystem backend, laid out as docker/distribution lays out blobs.',
  properties: {
    root: { type: 'string', minLength: 1, description: 'Directory of the blob store.' },
  },
  required: ['root'],
  additionalProperties: false,
};

export interface FsBackendOptions extends FsBackendConfig {
  logger: Logger;
}

/**
 * Temporary files live in `<root>/_uploads`, on the same filesystem as the blobs, so the final
 * rename is atomic: a reader sees either no blob or the whole verified blob. A crash leaves only
 * a stray file in `_uploads`, which no read path looks at.
 */
const UPLOADS_DIR = '_uploads';

/** Reads of 1 MiB move a GiB blob in a thousand syscalls instead of sixteen thousand (64 KiB). */
const READ_CHUNK_BYTES = 1024 * 1024;

/**
 * The filesystem backend, the embedded default. Every upload is counted and hashed on its way
 * to a temporary file, fsynced, and renamed into place only when both the size and the SHA-256
 * match; a mismatch is InvalidArgument (ERR_SIZE_INVALID, ERR_DIGEST_MISMATCH) and the temporary
 * file is removed. Concurrent uploads of one digest each write their own temporary file; the
 * renames replace identical content, so the last one wins harmlessly.
 */
export function createFsBackend(options: FsBackendOptions): Backend {
  const root = options.root;
  const logger = options.logger;
  const pathOf = (digest: Digest): string => join(root, blobKey(digest));

  async function statBlob(namespace: string, digest: Digest): Promise<BackendBlobInfo> {
    validateNamespace(namespace);
    const path = pathOf(validateDigest(digest));
    try {
      const st = await stat(path);
      if (st.isFile()) return { size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    throw new NotFoundError(`fs backend: blob ${digest} not found`, { code: 'ERR_BACKEND_BLOB_NOT_FOUND' });
  }

  async function exists(digest: Digest, size: number): Promise<boolean> {
    try {
      return (await stat(pathOf(digest))).size === size;
    } catch {
      return false;
    }
  }

  return {
    kind: 'fs',
    readOnly: false,

    stat: (namespace, digest) => statBlob(namespace, digest),

    async download(namespace: string, digest: Digest, signal?: AbortSignal): Promise<Readable> {
      validateNamespace(namespace);
      let handle;
      try {
        handle = await open(pathOf(validateDigest(digest)), 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new NotFoundError(`fs backend: blob ${digest} not found`, { code: 'ERR_BACKEND_BLOB_NOT_FOUND' });
        }
        throw err;
      }
      // Opening first turns a missing file into NotFound here rather than a stream error later.
      return handle.createReadStream({ highWaterMark: READ_CHUNK_BYTES, ...(signal ? { signal } : {}) });
    },

    async upload(namespace: string, digest: Digest, body: Readable, size: number, signal?: AbortSignal): Promise<void> {
      validateUploadArgs(namespace, digest, size, body);
      const final = pathOf(digest);
      if (await exists(digest, size)) {
        // Content-addressed: a blob with this digest and size was verified when it was stored.
        body.destroy();
        return;
      }
      const tmp = join(root, UPLOADS_DIR, `${digest.slice(7, 23)}-${randomBytes(8).toString('hex')}`);
      await mkdir(dirname(tmp), { recursive: true });
      try {
        const verifier = createVerifier(digest, size);
        // `flush` fsyncs before close, so a blob acknowledged here survives a power cut.
        await pipeline(body, verifier, createWriteStream(tmp, { flags: 'wx', flush: true }), signal ? { signal } : {});
        verifier.check();
        await mkdir(dirname(final), { recursive: true });
        await rename(tmp, final);
        await syncDir(dirname(final));
      } catch (err) {
        body.destroy();
        await rm(tmp, { force: true }).catch((rmErr: unknown) => logger.warn({ err: rmErr, tmp }, 'fs backend: removing a failed upload'));
        throw err;
      }
    },

    async putMetainfo(namespace: string, digest: Digest, metainfo: Metainfo): Promise<void> {
      validateNamespace(namespace);
      const final = join(root, metainfoKey(validateDigest(digest)));
      const tmp = join(root, UPLOADS_DIR, `${digest.slice(7, 23)}-${randomBytes(8).toString('hex')}.metainfo`);
      await mkdir(dirname(tmp), { recursive: true });
      try {
        // Written whole and renamed, so a reader sees the old sidecar, the new one or none.
        await writeFile(tmp, JSON.stringify(metainfo), { flush: true });
        await mkdir(dirname(final), { recursive: true });
        await rename(tmp, final);
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => undefined);
        throw err;
      }
    },

    async getMetainfo(namespace: string, digest: Digest): Promise<Metainfo | undefined> {
      validateNamespace(namespace);
      try {
        return JSON.parse(await readFile(join(root, metainfoKey(validateDigest(digest))), 'utf8')) as Metainfo;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof SyntaxError) return undefined;
        throw err;
      }
    },

    async list(opts = {}): Promise<ListPage> {
      return listBlobs(join(root, 'blobs', 'sha256'), validateLimit(opts.limit), opts.cursor);
    },

    async close(): Promise<void> {},
  };
}

/** Makes a rename durable: without syncing the directory the new entry may vanish in a crash. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic there.
  } finally {
    await handle.close();
  }
}

import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PieceFile, Swarm, hexOf, isCategory, type Digest, type Logger, type Metainfo, type Pacer } from '@krill/lib';
import type { Backend, BackendRouter } from '../../backend/index.js';
import type { MissFetcher } from '../server/fetch-on-miss.js';
import type { BlobHold, BlobStore } from '../store/blob-store.js';
import { sidecarFits, within, writePieces } from './pieces.js';

/**
 * How long a handshake for a blob fetched whole waits for the fetch: below the dialer's 5 s
 * handshake timeout (HANDSHAKE_TIMEOUT_MS in lib/src/p2p/peer-node.ts), so that a slow fetch
 * is answered BLOB_UNKNOWN (come back later) rather than with a dropped connection.
 */
export const MISS_ANSWER_MS = 4000;

export interface SeedContext {
  store: BlobStore;
  fetcher: MissFetcher;
  router: BackendRouter;
  /** The process-wide egress bucket every seed swarm shares. */
  egress: Pacer;
  /** Where blobs streamed from a backend are assembled; emptied when the seeder starts. */
  scratchDir: string;
  logger: Logger;
}

/** One open seed swarm and what it holds. */
export interface Seed {
  readonly digest: Digest;
  readonly namespace: string;
  readonly swarm: Swarm;
  /** True while the blob is still arriving from the backend; such a seed is not closed as idle. */
  arriving: boolean;
  /** Closes the piece file and releases the store hold or removes the scratch file; after swarm.close(). */
  dispose(): Promise<void>;
}

/**
 * Opens a seed swarm for `digest` in `namespace` as OriginSeeder describes: from the store, by
 * streaming pieces from a backend with a sidecar, or after a whole fetch. Undefined when no
 * backend has the blob or a whole fetch is not done within MISS_ANSWER_MS. `failed` is called
 * when a streamed blob cannot be completed (the seed must then be closed).
 */
export async function openSeed(ctx: SeedContext, namespace: string, digest: Digest, failed: (seed: Seed, err: unknown) => void): Promise<Seed | undefined> {
  const stored = await fromStore(ctx, namespace, digest);
  if (stored) return stored;
  const backend = ctx.router.tryRoute(namespace);
  if (!backend) return undefined;
  let size: number;
  try {
    size = (await backend.stat(namespace, digest)).size;
  } catch (err) {
    if (isCategory(err, 'NotFound')) return undefined;
    throw err;
  }
  const sidecar = await backend.getMetainfo?.(namespace, digest).catch((err: unknown) => {
    ctx.logger.warn({ digest, namespace, err: (err as Error).message }, 'reading the metainfo sidecar failed; fetching the blob whole');
    return undefined;
  });
  if (sidecarFits(sidecar, digest, size)) return streamed(ctx, backend, namespace, sidecar, failed);
  if (sidecar) ctx.logger.warn({ digest, namespace }, 'the metainfo sidecar does not fit the blob; fetching the blob whole');
  return afterFetch(ctx, namespace, digest, ctx.fetcher.ensure(namespace, digest));
}

/** A seed over the store's file, held while it is open; undefined when the blob is not stored. */
async function fromStore(ctx: SeedContext, namespace: string, digest: Digest): Promise<Seed | undefined> {
  let held: BlobHold;
  try {
    held = await ctx.store.hold(digest);
  } catch (err) {
    if (isCategory(err, 'NotFound')) return undefined;
    throw err;
  }
  try {
    const file = await PieceFile.seed(held.path, await ctx.store.metainfo(digest));
    const swarm = new Swarm({ file, egress: ctx.egress, verified: true, seeder: true });
    return { digest, namespace, swarm, arriving: false, dispose: async () => { await file.close(); held.release(); } };
  } catch (err) {
    held.release();
    throw err;
  }
}

/** Waits (bounded) for a download into the store, then seeds from the store. */
async function afterFetch(ctx: SeedContext, namespace: string, digest: Digest, done: Promise<void>): Promise<Seed | undefined> {
  // The fetch goes on after a late answer; its outcome reaches whoever else waits for it.
  done.catch(() => undefined);
  if (!(await within(done, MISS_ANSWER_MS))) return undefined;
  return fromStore(ctx, namespace, digest);
}

/**
 * A seed over a scratch file that the backend's body is streamed into piece by piece, each
 * verified against the sidecar, and served as soon as it is. The download is the one the miss
 * fetcher shares with HTTP readers; when one is already running, that one is awaited instead.
 * If a piece does not match the sidecar, the sidecar or the backend's bytes are wrong: the blob
 * is fetched again whole (the store verifies the digest), and this seed is failed so that its
 * peers come back to the stored blob.
 */
async function streamed(ctx: SeedContext, backend: Backend, namespace: string, meta: Metainfo, failed: (seed: Seed, err: unknown) => void): Promise<Seed | undefined> {
  const digest = meta.digest;
  const path = join(ctx.scratchDir, `${hexOf(digest)}-${randomBytes(4).toString('hex')}`);
  const file = await PieceFile.open(path, meta);
  const swarm = new Swarm({ file, egress: ctx.egress, seeder: true });
  const dispose = async () => {
    await file.close();
    await Promise.all([rm(path, { force: true }), rm(`${path}.status`, { force: true })]);
  };
  let corrupt: unknown;
  const { started, done } = ctx.fetcher.share(namespace, digest, async () => {
    const body = await backend.download(namespace, digest);
    try {
      await writePieces(body, file);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_PIECE_CORRUPT') throw err;
      corrupt = err;
    } finally {
      body.destroy();
    }
    if (corrupt) {
      ctx.logger.warn({ digest, namespace, err: (corrupt as Error).message }, 'a piece does not match the metainfo sidecar; fetching the blob whole');
      await ctx.store.put(digest, await backend.download(namespace, digest), { size: meta.length });
    } else {
      // The swarm hashed the whole blob as its pieces were stored: the file goes into the store
      // as it is, not copied and hashed again (with that copy, and the pieces written through the
      // page cache, the origin used 3.1 CPU-s while ten agents fetched a cold 200 MB blob in the
      // lab; now 1.5).
      await swarm.wholeVerified();
      await ctx.store.adopt(path, meta);
    }
  });
  if (!started) {
    swarm.close();
    await dispose();
    return afterFetch(ctx, namespace, digest, done);
  }
  const seed: Seed = { digest, namespace, swarm, arriving: true, dispose };
  done.then(
    () => {
      seed.arriving = false;
      if (corrupt) failed(seed, corrupt);
    },
    (err: unknown) => {
      seed.arriving = false;
      failed(seed, err);
    },
  );
  return seed;
}

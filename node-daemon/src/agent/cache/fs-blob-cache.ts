import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { rename, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FailedPreconditionError, InternalError, diskError, parseDigest, type Digest, type Logger, type Metainfo } from '@krill/lib';
import type { BlobCache, CachedBlob, PartialBlob } from '../blob-cache.js';

interface Entry {
  digest: Digest;
  size: number;
  metainfo: Metainfo;
  whole: boolean;
  lastUse: number;
  pins: number;
}

const HEX_RE = /^[a-f0-9]{64}$/;

/**
 * The filesystem cache under `dir`: `blobs/<hex>` (whole, verified) and `partial/<hex>` with its
 * `.status` piece record, each with `<hex>.json` holding the metainfo. The metainfo is written
 * before the piece file is created and removed last, so after a crash a data file without its
 * metainfo is leftover and is deleted at open. The order of use survives restarts through the
 * files' modification times, which a lookup bumps.
 */
export function openBlobCache(o: { dir: string; capacityBytes: number; logger: Logger }): BlobCache {
  const whole = join(o.dir, 'blobs');
  const partialDir = join(o.dir, 'partial');
  mkdirSync(whole, { recursive: true });
  mkdirSync(partialDir, { recursive: true });
  const entries = new Map<Digest, Entry>();
  let bytes = 0;
  // Strictly increasing times of use: two uses in one millisecond must still have an order.
  let lastTick = 0;
  const tick = () => (lastTick = Math.max(Date.now(), lastTick + 0.001));
  scan(whole, true);
  scan(partialDir, false);

  function scan(dir: string, isWhole: boolean): void {
    const names = new Set(readdirSync(dir));
    for (const name of names) {
      const hex = name.slice(0, 64);
      const known = HEX_RE.test(hex) && names.has(`${hex}.json`) && names.has(hex);
      if (!known) {
        rmSync(join(dir, name), { force: true, recursive: true });
        continue;
      }
      if (name !== `${hex}.json`) continue;
      try {
        const metainfo = JSON.parse(readFileSync(join(dir, name), 'utf8')) as Metainfo;
        const digest = parseDigest(metainfo.digest);
        if (digest !== `sha256:${hex}`) throw new Error(`names ${digest}`);
        const lastUse = statSync(join(dir, hex)).mtimeMs;
        entries.set(digest, { digest, size: metainfo.length, metainfo, whole: isWhole, lastUse, pins: 0 });
        bytes += metainfo.length;
      } catch (err) {
        o.logger.warn({ blob: hex, err: (err as Error).message }, 'cache: dropping a blob whose metainfo is unreadable');
        for (const f of [hex, `${hex}.json`, `${hex}.status`]) rmSync(join(dir, f), { force: true });
      }
    }
  }

  const hexOf = (d: Digest) => d.slice('sha256:'.length);
  const paths = (d: Digest, isWhole: boolean) => {
    const base = join(isWhole ? whole : partialDir, hexOf(d));
    return { data: base, status: `${base}.status`, meta: `${base}.json` };
  };

  async function remove(e: Entry): Promise<void> {
    entries.delete(e.digest);
    bytes -= e.size;
    const p = paths(e.digest, e.whole);
    // The metainfo goes last: a crash in between leaves a data file that open() cleans up.
    await rm(p.data, { force: true });
    await rm(p.status, { force: true });
    await rm(p.meta, { force: true });
  }

  /** Evicts unused blobs, least recently used first, until `need` more bytes fit. */
  async function makeRoom(need: number): Promise<void> {
    if (bytes + need <= o.capacityBytes) return;
    const victims = [...entries.values()].filter((e) => e.pins === 0).sort((a, b) => a.lastUse - b.lastUse);
    for (const v of victims) {
      if (bytes + need <= o.capacityBytes) break;
      o.logger.info({ digest: v.digest, size: v.size, whole: v.whole }, 'cache: evicting');
      await remove(v);
    }
    if (bytes + need > o.capacityBytes) {
      throw new FailedPreconditionError(`cache: ${need} bytes do not fit: ${bytes} of ${o.capacityBytes} bytes are held by blobs in use`, { code: 'ERR_CACHE_FULL' });
    }
  }

  return {
    lookup(digest) {
      const e = entries.get(digest);
      if (!e?.whole) return undefined;
      e.lastUse = tick();
      const path = paths(digest, true).data;
      utimes(path, new Date(), new Date()).catch(() => undefined);
      return { digest, path, metainfo: e.metainfo } satisfies CachedBlob;
    },
    partial(digest) {
      const e = entries.get(digest);
      return e && !e.whole ? { dataPath: paths(digest, false).data, metainfo: e.metainfo } : undefined;
    },
    async reserve(metainfo) {
      const digest = parseDigest(metainfo.digest);
      const p = paths(digest, false);
      const existing = entries.get(digest);
      if (existing) {
        if (existing.whole) throw new InternalError(`cache: ${digest} is already whole`, { code: 'ERR_CACHE_STATE' });
        existing.pins++;
        existing.lastUse = tick();
        return { digest, dataPath: p.data } satisfies PartialBlob;
      }
      // Counted and pinned before the first await, so a concurrent reservation sees it.
      const e: Entry = { digest, size: metainfo.length, metainfo, whole: false, lastUse: tick(), pins: 1 };
      entries.set(digest, e);
      bytes += e.size;
      try {
        await makeRoom(0);
        await writeFile(p.meta, JSON.stringify(metainfo));
      } catch (err) {
        entries.delete(digest);
        bytes -= e.size;
        throw diskError(err, `cache: recording ${digest}`);
      }
      return { digest, dataPath: p.data };
    },
    async commit(digest) {
      const e = entries.get(digest);
      if (!e || e.whole) throw new InternalError(`cache: no partial blob ${digest} to commit`, { code: 'ERR_CACHE_STATE' });
      const from = paths(digest, false);
      const to = paths(digest, true);
      await rename(from.meta, to.meta);
      await rename(from.data, to.data);
      e.whole = true;
      await rm(from.status, { force: true });
      e.lastUse = tick();
      return { digest, path: to.data, metainfo: e.metainfo };
    },
    async discard(digest) {
      const e = entries.get(digest);
      if (e && !e.whole) await remove(e);
    },
    acquire(digest) {
      const e = entries.get(digest);
      if (e) e.pins++;
    },
    release(digest) {
      const e = entries.get(digest);
      if (e && e.pins > 0) e.pins--;
    },
    usage() {
      let partial = 0;
      for (const e of entries.values()) if (!e.whole) partial++;
      return { bytes, capacity: o.capacityBytes, blobs: entries.size - partial, partial };
    },
  };
}

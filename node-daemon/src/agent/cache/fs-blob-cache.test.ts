import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger, type Digest, type Metainfo } from '@krill/lib';
import { openBlobCache } from './fs-blob-cache.js';

const logger = silentLogger();

function blob(seed: string, size: number): { bytes: Buffer; metainfo: Metainfo } {
  const bytes = Buffer.alloc(size, seed);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
  return { bytes, metainfo: { digest, length: size, pieceLength: size, pieces: [digest.slice(7)] } };
}

/** Reserves, "downloads" (writes the bytes) and commits a blob, releasing it unless `keep`. */
async function put(cache: ReturnType<typeof openBlobCache>, b: ReturnType<typeof blob>, keep = false) {
  const { dataPath } = await cache.reserve(b.metainfo);
  writeFileSync(dataPath, b.bytes);
  const whole = await cache.commit(b.metainfo.digest);
  if (!keep) cache.release(b.metainfo.digest);
  return whole;
}

describe('agent blob cache', () => {
  it('evicts unused blobs least recently used first to make room, never one in use', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krill-cache-'));
    const cache = openBlobCache({ dir, capacityBytes: 300, logger });
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((s) => blob(s, 100));
    await put(cache, a!);
    await put(cache, b!, true);
    await put(cache, c!);
    expect(cache.lookup(a!.metainfo.digest)).toBeDefined();
    // c is the least recently used unused blob now (a was just looked up, b is in use).
    await put(cache, d!);
    expect(cache.lookup(c!.metainfo.digest)).toBeUndefined();
    expect(cache.lookup(a!.metainfo.digest)).toBeDefined();
    expect(cache.lookup(b!.metainfo.digest)).toBeDefined();
    expect(cache.usage()).toEqual({ bytes: 300, capacity: 300, blobs: 3, partial: 0 });
  });

  it('refuses a reservation that cannot fit beside blobs in use, and stores nothing for it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krill-cache-'));
    const cache = openBlobCache({ dir, capacityBytes: 150, logger });
    const a = blob('a', 100);
    await put(cache, a, true);
    const big = blob('z', 100);
    await expect(cache.reserve(big.metainfo)).rejects.toMatchObject({ code: 'ERR_CACHE_FULL' });
    expect(cache.partial(big.metainfo.digest)).toBeUndefined();
    expect(cache.usage().bytes).toBe(100);
    expect(readdirSync(join(dir, 'partial'))).toEqual([]);
  });

  it('keeps whole and partial blobs across a restart, in their order of use, and drops leftovers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krill-cache-'));
    const first = openBlobCache({ dir, capacityBytes: 1000, logger });
    const [a, b] = [blob('a', 100), blob('b', 100)];
    const wa = await put(first, a);
    const wb = await put(first, b);
    utimesSync(wa.path, new Date(2000, 0, 1), new Date(2000, 0, 1));
    utimesSync(wb.path, new Date(2001, 0, 1), new Date(2001, 0, 1));
    const p = blob('p', 100);
    const { dataPath } = await first.reserve(p.metainfo);
    writeFileSync(dataPath, p.bytes.subarray(0, 40));
    // A data file without its metainfo is what a crash between the two writes leaves.
    writeFileSync(join(dir, 'blobs', 'f'.repeat(64)), 'orphan');
    const again = openBlobCache({ dir, capacityBytes: 250, logger });
    expect(existsSync(join(dir, 'blobs', 'f'.repeat(64)))).toBe(false);
    expect(again.partial(p.metainfo.digest)).toEqual({ dataPath, metainfo: p.metainfo });
    expect(again.usage()).toEqual({ bytes: 300, capacity: 250, blobs: 2, partial: 1 });
    // Over capacity now: the next reservation evicts the oldest first (a, by its time of use).
    await again.reserve(blob('n', 50).metainfo);
    expect(again.lookup(a.metainfo.digest)).toBeUndefined();
    expect(again.lookup(b.metainfo.digest)?.path).toBe(wb.path);
  });
});

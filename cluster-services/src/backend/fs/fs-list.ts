import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, type Digest } from '@krill/lib';
import type { ListPage } from '../backend.js';

const HEX_RE = /^[a-f0-9]{64}$/;
const SHARD_RE = /^[a-f0-9]{2}$/;

/**
 * Lists the blobs under `<root>/blobs/sha256` in ascending hex order, `limit` at a time. The
 * cursor is the hex of the last digest returned, so a listing resumes correctly even when blobs
 * are added or removed between pages (each blob present throughout is seen exactly once).
 * Only entries with a `data` file count; a blob directory without one is skipped.
 */
export async function listBlobs(dir: string, limit: number, cursor?: string): Promise<ListPage> {
  if (cursor !== undefined && !HEX_RE.test(cursor)) {
    throw new InvalidArgumentError(`fs backend: list cursor ${JSON.stringify(cursor)} is not one this backend issued`, {
      code: 'ERR_BACKEND_CURSOR_INVALID',
    });
  }
  const after = cursor ?? '';
  const found: Digest[] = [];
  // One more than the page tells whether another page follows, so the last page has no cursor.
  for (const shard of await sortedEntries(dir, SHARD_RE)) {
    if (shard < after.slice(0, 2)) continue;
    for (const hex of await sortedEntries(join(dir, shard), HEX_RE)) {
      if (hex <= after || !hex.startsWith(shard)) continue;
      if (!(await isFile(join(dir, shard, hex, 'data')))) continue;
      found.push(`sha256:${hex}`);
      if (found.length > limit) {
        const digests = found.slice(0, limit);
        return { digests, cursor: digests[limit - 1]!.slice(7) };
      }
    }
  }
  return { digests: found };
}

async function sortedEntries(dir: string, re: RegExp): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((name) => re.test(name)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

import { FailedPreconditionError, MAX_MANIFEST_BYTES, isCategory, parseManifest, type Digest } from '@krill/lib';
import type { OriginClient } from '../../origin/index.js';

/**
 * An index may point at another index (legal, rare: nested multi-platform sets); two levels cover
 * every real image and bound the work a hostile manifest can cause.
 */
const MAX_DEPTH = 2;
/** Stats in flight at once: enough to hide latency, few enough not to flood the origins. */
const CONCURRENCY = 8;

/**
 * Checks that the manifest `digest` and everything it references exist on the origins.
 * FailedPrecondition ERR_TAG_DEPENDENCY_MISSING names the first missing digest.
 */
export async function checkDependencies(origins: OriginClient, repo: string, digest: Digest, signal?: AbortSignal, depth = 0): Promise<void> {
  const missing = (d: Digest, what: string) =>
    new FailedPreconditionError(`${what} ${d} of ${repo} is not on the origins; push it before the tag`, { code: 'ERR_TAG_DEPENDENCY_MISSING' });
  let bytes: Buffer;
  try {
    bytes = await origins.fetchBytes(repo, digest, MAX_MANIFEST_BYTES, signal);
  } catch (err) {
    if (isCategory(err, 'NotFound')) throw missing(digest, 'manifest');
    throw err;
  }
  const manifest = parseManifest(bytes);
  const refs = manifest.references;
  let next = 0;
  const worker = async () => {
    while (next < refs.length) {
      const ref = refs[next++]!;
      if (manifest.isIndex && depth < MAX_DEPTH) {
        await checkDependencies(origins, repo, ref.digest, signal, depth + 1);
        continue;
      }
      try {
        await origins.stat(repo, ref.digest, signal);
      } catch (err) {
        if (isCategory(err, 'NotFound')) throw missing(ref.digest, manifest.isIndex ? 'manifest' : 'blob');
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, refs.length) }, worker));
}

import {
  CanceledError, FailedPreconditionError, InvalidArgumentError, KrillError, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, UnavailableError,
  isCategory, isKrillError, parseManifest, sha256, type Descriptor, type Digest, type ParsedManifest,
} from '@krill/lib';
import type { OriginClient } from '../../origin/index.js';
import { createLimiter, type Limiter } from './limiter.js';

/**
 * Levels of index above an image manifest. The OCI image spec lets an index name other indexes
 * (a set of multi-platform images grouped once more), which is legal but rare; no common tool
 * nests deeper than that. The bound keeps a chain of small hostile indexes from making one tag
 * put fetch manifests without end; deeper nesting is refused rather than half-checked.
 */
export const MAX_INDEX_DEPTH = 2;

/**
 * Distinct digests checked for one tag. Real images have at most ~128 layers (overlayfs stacks
 * no deeper) and indexes a few dozen platforms and attestations, so 4,096 is far above any real
 * image while one 4 MiB manifest could name ~30,000 descriptors.
 */
export const MAX_REFERENCES = 4096;

/** Origin calls in flight at once per tag put: enough to hide round trips, few enough not to flood the origins. */
const CONCURRENCY = 8;

/**
 * Layers a registry never receives: clients fetch them from the descriptor's `urls` (Windows base
 * layers). As distribution does, their presence is not checked when they carry URLs.
 */
const FOREIGN_LAYER_TYPES = new Set([
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

interface Check {
  origins: OriginClient;
  repo: string;
  signal: AbortSignal;
  limit: Limiter;
  seen: Set<Digest>;
}

/**
 * Checks that the manifest `digest` and everything it references exist on the origins: an image
 * manifest's config and layers, and for an index each child manifest and what that references,
 * down to MAX_INDEX_DEPTH levels of index. Returns the parsed top manifest.
 *
 * Errors: FailedPrecondition ERR_TAG_DEPENDENCY_MISSING whose message names the missing digest
 * first; InvalidArgument ERR_MANIFEST_INVALID / ERR_MANIFEST_UNSUPPORTED (naming the manifest),
 * ERR_MANIFEST_TOO_LARGE, ERR_MANIFEST_TOO_DEEP, ERR_MANIFEST_TOO_MANY_REFERENCES; the origins'
 * Unavailable as it came. The first failure stops the calls still in flight.
 */
export async function checkDependencies(o: { origins: OriginClient; repo: string; digest: Digest; signal?: AbortSignal }): Promise<ParsedManifest> {
  const stop = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, stop.signal]) : stop.signal;
  const check: Check = { origins: o.origins, repo: o.repo, signal, limit: createLimiter(CONCURRENCY), seen: new Set([o.digest]) };
  try {
    const top = await fetchManifest(check, o.digest, undefined);
    await checkReferences(check, o.digest, top, top.isIndex ? 1 : 0);
    return top;
  } catch (err) {
    if (o.signal?.aborted && !isKrillError(err)) throw new CanceledError(`dependency check of ${o.digest} canceled`, { code: 'ERR_CANCELED', cause: err });
    throw err;
  } finally {
    stop.abort();
  }
}

async function checkReferences(c: Check, parent: Digest, manifest: ParsedManifest, indexDepth: number): Promise<void> {
  await Promise.all(manifest.references.map((d) => checkReference(c, parent, manifest.isIndex, d, indexDepth)));
}

async function checkReference(c: Check, parent: Digest, inIndex: boolean, d: Descriptor, indexDepth: number): Promise<void> {
  if (c.seen.has(d.digest)) return;
  c.seen.add(d.digest);
  if (c.seen.size > MAX_REFERENCES) {
    throw new InvalidArgumentError(`manifest ${parent} and its children reference more than ${MAX_REFERENCES} digests`, { code: 'ERR_MANIFEST_TOO_MANY_REFERENCES' });
  }
  if (FOREIGN_LAYER_TYPES.has(d.mediaType) && hasUrls(d)) return;
  if (!inIndex || !MANIFEST_MEDIA_TYPES.includes(d.mediaType)) {
    await stat(c, d.digest, parent);
    return;
  }
  const child = await fetchManifest(c, d.digest, parent);
  const depth = indexDepth + (child.isIndex ? 1 : 0);
  if (depth > MAX_INDEX_DEPTH) {
    throw new InvalidArgumentError(`index ${d.digest} in ${parent} nests indexes more than ${MAX_INDEX_DEPTH} deep`, { code: 'ERR_MANIFEST_TOO_DEEP' });
  }
  await checkReferences(c, d.digest, child, depth);
}

async function stat(c: Check, digest: Digest, parent: Digest): Promise<void> {
  try {
    await c.limit(() => {
      // Calls queued behind a failure end here without reaching the origins.
      c.signal.throwIfAborted();
      return c.origins.stat(c.repo, digest, c.signal);
    });
  } catch (err) {
    throw isCategory(err, 'NotFound') ? missing(c, 'blob', digest, parent) : err;
  }
}

/** Fetches and parses a manifest, checking its bytes against its digest once more. */
async function fetchManifest(c: Check, digest: Digest, parent: Digest | undefined): Promise<ParsedManifest> {
  let bytes: Buffer;
  try {
    bytes = await c.limit(() => {
      c.signal.throwIfAborted();
      return c.origins.fetchBytes(c.repo, digest, MAX_MANIFEST_BYTES, c.signal);
    });
  } catch (err) {
    if (isCategory(err, 'NotFound')) throw missing(c, 'manifest', digest, parent);
    if (isKrillError(err) && err.code === 'ERR_SIZE_INVALID') {
      throw new InvalidArgumentError(`manifest ${digest} is larger than ${MAX_MANIFEST_BYTES} bytes`, { code: 'ERR_MANIFEST_TOO_LARGE', cause: err });
    }
    throw err;
  }
  // Cheap for 4 MiB at most; a manifest is the root of everything the tag promises.
  if (sha256(bytes) !== digest) {
    throw new UnavailableError(`manifest ${digest} from the origins does not match its digest`, { code: 'ERR_ORIGIN_CORRUPT' });
  }
  try {
    return parseManifest(bytes);
  } catch (err) {
    if (!isKrillError(err)) throw err;
    throw new KrillError(err.category, err.code, `manifest ${digest}: ${err.message}`, { cause: err });
  }
}

/** The message names the missing digest before any other: the proxy reports the first one it finds. */
function missing(c: Check, what: 'blob' | 'manifest', digest: Digest, parent: Digest | undefined): KrillError {
  const via = parent ? ` referenced by ${parent}` : '';
  return new FailedPreconditionError(`${what} ${digest}${via} is not on the origins; push it before tagging ${c.repo}`, { code: 'ERR_TAG_DEPENDENCY_MISSING' });
}

function hasUrls(d: Descriptor): boolean {
  const urls = (d as Descriptor & { urls?: unknown }).urls;
  return Array.isArray(urls) && urls.length > 0;
}

import { InvalidArgumentError, hexOf, parseDigest, type Digest } from '@krill/lib';

// distribution/reference: a repository path component, and a registry host with optional port.
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const DOMAIN = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?';
const REPOSITORY_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const QUALIFIED_RE = new RegExp(`^${DOMAIN}/${COMPONENT}(?:/${COMPONENT})*$`);

/**
 * A repository name is at most 255 characters (distribution's limit); a pull-through namespace
 * adds a registry host of at most 253 characters plus a port, so 512 bounds both.
 */
const MAX_NAMESPACE_LENGTH = 512;

/**
 * Validates a namespace: a repository name (`team/app`) or one qualified by its registry
 * (`upstream.local/team/app`, `127.0.0.1:5000/team/app`). `..`, empty components, upper case
 * in the repository part and anything else distribution rejects are refused with InvalidArgument
 * ERR_BACKEND_NAMESPACE_INVALID.
 */
export function validateNamespace(namespace: unknown): string {
  if (
    typeof namespace !== 'string' ||
    namespace.length === 0 ||
    namespace.length > MAX_NAMESPACE_LENGTH ||
    !(REPOSITORY_RE.test(namespace) || QUALIFIED_RE.test(namespace))
  ) {
    throw new InvalidArgumentError(`backend namespace ${JSON.stringify(namespace)} is not a valid repository name`, {
      code: 'ERR_BACKEND_NAMESPACE_INVALID',
    });
  }
  return namespace;
}

/** Validates a digest argument; InvalidArgument ERR_DIGEST_INVALID or ERR_DIGEST_UNSUPPORTED. */
export function validateDigest(digest: unknown): Digest {
  if (typeof digest !== 'string') {
    throw new InvalidArgumentError(`digest ${JSON.stringify(digest)} is not a string`, { code: 'ERR_DIGEST_INVALID' });
  }
  return parseDigest(digest);
}

/** Validates a declared blob size; InvalidArgument ERR_SIZE_INVALID. */
export function validateSize(size: unknown): number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new InvalidArgumentError(`blob size ${JSON.stringify(size)} is not a non-negative integer`, { code: 'ERR_SIZE_INVALID' });
  }
  return size;
}

/** Validates upload arguments; on a bad one the body is destroyed (the upload contract) and the error thrown. */
export function validateUploadArgs(namespace: unknown, digest: unknown, size: unknown, body: { destroy(): unknown }): void {
  try {
    validateNamespace(namespace);
    validateDigest(digest);
    validateSize(size);
  } catch (err) {
    body.destroy();
    throw err;
  }
}

/**
 * The path of a blob relative to a backend's root, as docker/distribution lays blobs out, so a
 * krill bucket or directory can be read by a plain registry: `blobs/sha256/<2hex>/<hex>/data`.
 * The namespace is not part of it: storage is content-addressed and shared by all repositories.
 */
export function blobKey(digest: Digest): string {
  const hex = hexOf(digest);
  return `blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
}

/**
 * The key of a blob's metainfo sidecar: `metainfo.json` beside its `data`, in the same blob
 * directory. docker/distribution reads only `data` there, so a plain registry ignores it.
 */
export function metainfoKey(digest: Digest): string {
  const hex = hexOf(digest);
  return `blobs/sha256/${hex.slice(0, 2)}/${hex}/metainfo.json`;
}

const KEY_RE = /^blobs\/sha256\/([a-f0-9]{2})\/([a-f0-9]{64})\/data$/;

/** The digest a relative key names, or undefined for a key that is not a blob's data. */
export function digestOfKey(key: string): Digest | undefined {
  const m = KEY_RE.exec(key);
  if (!m || !m[2]!.startsWith(m[1]!)) return undefined;
  return `sha256:${m[2]!}`;
}

/**
 * Backends list at most this many digests per page: large enough to make a full scan of a
 * million blobs take a thousand calls, small enough to keep a page well under a megabyte.
 */
export const DEFAULT_LIST_LIMIT = 1000;
/** S3's ListObjectsV2 returns at most 1000 keys per call; other backends share the bound. */
export const MAX_LIST_LIMIT = 1000;

/** Validates `limit` for list(); InvalidArgument ERR_BACKEND_LIMIT_INVALID. */
export function validateLimit(limit: unknown): number {
  if (limit === undefined) return DEFAULT_LIST_LIMIT;
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw new InvalidArgumentError(`list limit ${JSON.stringify(limit)} must be an integer from 1 to ${MAX_LIST_LIMIT}`, {
      code: 'ERR_BACKEND_LIMIT_INVALID',
    });
  }
  return limit;
}

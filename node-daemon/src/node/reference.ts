import { InvalidArgumentError, isDigest, isTag, parseRepository, type Digest } from '@krill/lib';

/**
 * An image reference normalized the way containerd's CRI does it (distribution's
 * `reference.ParseDockerRef`): `busybox` → `docker.io/library/busybox:latest`, `index.docker.io`
 * → `docker.io`, a tag dropped when a digest is given.
 */
export interface ImageReference {
  /** Registry host with its port, as written: `docker.io`, `localhost:5000`, `[::1]:5000`. */
  domain: string;
  /** Repository path within the registry: `library/busybox`, `team/app`. */
  path: string;
  /** Set unless the reference names a digest. */
  tag?: string;
  digest?: Digest;
  /** `domain/path`, what image records and repoTags/repoDigests start with. */
  name: string;
  /** `name:tag` or `name@digest`. */
  normalized: string;
}

// Grammar of distribution/reference (reference/regexp.go); paths and tags are lib's.
const DOMAIN_LABEL = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_LABEL}(?:\\.${DOMAIN_LABEL})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
/** distribution's limit on `domain/path`. */
const MAX_NAME = 255;
const DEFAULT_DOMAIN = 'docker.io';

function invalid(ref: string, why: string): never {
  throw new InvalidArgumentError(`invalid image reference "${ref}": ${why}`, { code: 'ERR_REFERENCE_INVALID' });
}

/** Parses and normalizes `ref`; InvalidArgument (ERR_REFERENCE_INVALID) saying what is wrong. */
export function parseImageReference(ref: string): ImageReference {
  if (ref === '') invalid(ref, 'empty');
  if (/\s/.test(ref)) invalid(ref, 'contains whitespace');
  let rest = ref;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) invalid(ref, `"${d}" is not a sha256 digest (sha256:<64 lowercase hex>)`);
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isTag(tag)) invalid(ref, `tag "${tag}" is not valid (letters, digits, _ . -, at most 128, not starting with . or -)`);
  }
  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  if (slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first)) {
    domain = first;
    path = rest.slice(slash + 1);
  }
  if (domain === 'index.docker.io') domain = DEFAULT_DOMAIN;
  if (!DOMAIN.test(domain)) invalid(ref, `registry host "${domain}" is not valid`);
  if (domain.length + 1 + path.length > MAX_NAME) invalid(ref, `repository name is longer than ${MAX_NAME} characters`);
  if (path.toLowerCase() !== path) invalid(ref, 'repository name must be lowercase');
  if (!isRepositoryPath(path)) invalid(ref, `repository "${path}" is not valid (lowercase components of a-z 0-9 . _ - separated by /)`);
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = `library/${path}`;
  const name = `${domain}/${path}`;
  if (digest) return { domain, path, digest, name, normalized: `${name}@${digest}` };
  const t = tag ?? 'latest';
  return { domain, path, tag: t, name, normalized: `${name}:${t}` };
}

function isRepositoryPath(path: string): boolean {
  try {
    parseRepository(path);
    return true;
  } catch {
    return false;
  }
}

import { isDigest, type Digest } from './digest.js';
import { InvalidArgumentError } from './errors.js';

/** Media types of the OCI image spec and Docker's distribution schema 2. */
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifest, MediaType.DockerManifestList,
];

export function isIndexMediaType(mt: string): boolean {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

/** A parsed manifest or index: its kind and every descriptor it references. */
export interface ParsedManifest {
  mediaType: string;
  /** Child manifests for an index; config plus layers for an image manifest. */
  references: Descriptor[];
  isIndex: boolean;
}

/** Largest manifest krill accepts or fetches; distribution and containerd use the same 4 MiB. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * Parses manifest bytes. `contentType` is the Content-Type it came with (may be absent, then the
 * `mediaType` field decides). Throws InvalidArgument with code ERR_MANIFEST_INVALID or
 * ERR_MANIFEST_UNSUPPORTED.
 */
export function parseManifest(bytes: Uint8Array, contentType?: string): ParsedManifest {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new InvalidArgumentError('manifest is not valid JSON', { code: 'ERR_MANIFEST_INVALID' });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new InvalidArgumentError('manifest is not a JSON object', { code: 'ERR_MANIFEST_INVALID' });
  }
  const declared = typeof doc['mediaType'] === 'string' ? (doc['mediaType'] as string) : undefined;
  const ct = contentType?.split(';')[0]?.trim();
  const mediaType = ct && ct !== 'application/json' && ct !== 'application/octet-stream' ? ct : declared ?? (Array.isArray(doc['manifests']) ? MediaType.OciIndex : MediaType.OciManifest);
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) {
    throw new InvalidArgumentError(`manifest media type ${JSON.stringify(mediaType)} is not supported`, { code: 'ERR_MANIFEST_UNSUPPORTED' });
  }
  if (declared !== undefined && declared !== mediaType) {
    throw new InvalidArgumentError(`manifest mediaType ${declared} does not match Content-Type ${mediaType}`, { code: 'ERR_MANIFEST_INVALID' });
  }
  if (doc['schemaVersion'] !== 2) {
    throw new InvalidArgumentError('manifest schemaVersion must be 2', { code: 'ERR_MANIFEST_INVALID' });
  }
  const isIndex = isIndexMediaType(mediaType);
  const references: Descriptor[] = [];
  if (isIndex) {
    if (!Array.isArray(doc['manifests'])) throw new InvalidArgumentError('index has no manifests array', { code: 'ERR_MANIFEST_INVALID' });
    for (const m of doc['manifests']) references.push(descriptor(m, 'manifests[]'));
  } else {
    references.push(descriptor(doc['config'], 'config'));
    if (!Array.isArray(doc['layers'])) throw new InvalidArgumentError('manifest has no layers array', { code: 'ERR_MANIFEST_INVALID' });
    for (const l of doc['layers']) references.push(descriptor(l, 'layers[]'));
  }
  return { mediaType, references, isIndex };
}

function descriptor(value: unknown, where: string): Descriptor {
  const d = value as Partial<Descriptor> | undefined;
  if (!d || typeof d !== 'object' || typeof d.mediaType !== 'string' || !isDigest(d.digest) ||
      typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new InvalidArgumentError(`manifest ${where} is not a valid descriptor (mediaType, sha256 digest, size)`, { code: 'ERR_MANIFEST_INVALID' });
  }
  return d as Descriptor;
}

// distribution/reference: path components of lowercase alphanumerics joined by separators.
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const REPO_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** distribution limits a repository name to 255 characters. */
const MAX_REPO_LENGTH = 255;

/** Validates a repository name (`team/app`); throws InvalidArgument ERR_NAME_INVALID. */
export function parseRepository(name: string): string {
  if (name.length === 0 || name.length > MAX_REPO_LENGTH || !REPO_RE.test(name)) {
    throw new InvalidArgumentError(`repository name ${JSON.stringify(name)} is invalid`, { code: 'ERR_NAME_INVALID' });
  }
  return name;
}

export function isTag(s: string): boolean {
  return TAG_RE.test(s);
}

/** Validates a tag; throws InvalidArgument ERR_TAG_INVALID. */
export function parseTag(tag: string): string {
  if (!TAG_RE.test(tag)) throw new InvalidArgumentError(`tag ${JSON.stringify(tag)} is invalid`, { code: 'ERR_TAG_INVALID' });
  return tag;
}

/** The media type of stored manifest bytes: its `mediaType` field, or the shape of the document. */
export function manifestMediaType(bytes: Uint8Array): string {
  try {
    const doc = JSON.parse(Buffer.from(bytes).toString('utf8')) as { mediaType?: string; manifests?: unknown };
    return doc.mediaType ?? (Array.isArray(doc.manifests) ? MediaType.OciIndex : MediaType.OciManifest);
  } catch {
    return MediaType.OciManifest;
  }
}

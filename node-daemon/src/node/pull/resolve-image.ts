import { InvalidArgumentError, MAX_MANIFEST_BYTES, NotFoundError, isDigest, manifestMediaType, parseManifest, type Digest } from '@krill/lib';
import type { BuildIndexClient, UpstreamCredentials } from '@krill/cluster-services';
import type { Agent, BytesBySource } from '../../agent/agent.js';
import type { BlobDescriptor } from '../../containerd/containerd.js';
import type { ImageReference } from '../reference.js';

/** A platform as OCI indexes name them. */
export interface Platform { os: string; architecture: string; variant?: string }

/** Everything an image is made of, manifests and config read, layers still to fetch. */
export interface ImageBlobs {
  /** The krill repository the blobs are fetched under. */
  repo: string;
  /** What the reference names: the index, or the manifest when there is no index. */
  target: BlobDescriptor;
  /** The index and the child manifest chosen for this node's platform. */
  index?: { desc: BlobDescriptor; bytes: Buffer; chosen: BlobDescriptor };
  manifest: { desc: BlobDescriptor; bytes: Buffer };
  config: { desc: BlobDescriptor; bytes: Buffer; diffIds: Digest[] };
  layers: BlobDescriptor[];
}

/** Configs are small JSON documents; 8 MiB is far beyond any real one and bounds the memory. */
const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

/** This machine's platform in OCI terms (`linux/amd64`, `linux/arm64/v8`). */
export function nodePlatform(): Platform {
  const arch: Record<string, Platform> = {
    x64: { os: 'linux', architecture: 'amd64' },
    arm64: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    arm: { os: 'linux', architecture: 'arm', variant: 'v7' },
    ia32: { os: 'linux', architecture: '386' },
    ppc64: { os: 'linux', architecture: 'ppc64le' },
    s390x: { os: 'linux', architecture: 's390x' },
    riscv64: { os: 'linux', architecture: 'riscv64' },
  };
  return arch[process.arch] ?? { os: 'linux', architecture: process.arch };
}

/** containerd's matcher in short: os and architecture equal, and the variant when both name one. */
function matches(p: Platform, want: Platform): boolean {
  return p.os === want.os && p.architecture === want.architecture && (!p.variant || !want.variant || p.variant === want.variant);
}

export interface ResolveDeps {
  agent: Agent;
  buildIndex: BuildIndexClient;
  platform: Platform;
  /** Receives what each fetched blob came from. */
  onReceived(r: BytesBySource): void;
}

/**
 * Resolves `ref` to its manifests and config through krill: the tag through the build-index
 * (which asks upstream for pull-through repositories, with the caller's `credentials` when
 * given, so a private upstream image needs credentials upstream accepts), every manifest and the config through
 * the agent (verified pieces). Errors: Unauthenticated when upstream rejects the credentials, NotFound for an unknown tag or blob or no manifest for
 * this platform, InvalidArgument for a malformed manifest or config, the agent's and
 * build-index's own errors otherwise.
 */
export async function resolveImage(ref: ImageReference, repo: string, d: ResolveDeps, signal: AbortSignal, credentials?: UpstreamCredentials): Promise<ImageBlobs> {
  const digest: Digest = ref.digest ?? (await d.buildIndex.getTag(repo, ref.tag!, signal, credentials ? { credentials } : undefined)).digest;
  if (!isDigest(digest)) throw new InvalidArgumentError(`build-index answered an invalid digest for ${repo}:${ref.tag}`, { code: 'ERR_MANIFEST_INVALID' });
  const top = await readBlob(d, repo, digest, MAX_MANIFEST_BYTES, 'manifest', signal);
  const topMediaType = manifestMediaType(top);
  const target: BlobDescriptor = { mediaType: topMediaType, digest, size: top.length };
  let parsed = parseManifest(top, topMediaType);
  let manifest = { desc: target, bytes: top };
  let index: ImageBlobs['index'];
  if (parsed.isIndex) {
    const chosen = parsed.references.find((m) => m.platform && matches(m.platform, d.platform));
    if (!chosen) {
      const have = parsed.references.map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ''}` : '?')).join(', ');
      throw new NotFoundError(`${ref.normalized} has no manifest for ${d.platform.os}/${d.platform.architecture} (it has ${have || 'none'})`, { code: 'ERR_PLATFORM_NOT_FOUND' });
    }
    const bytes = await readBlob(d, repo, chosen.digest, MAX_MANIFEST_BYTES, 'manifest', signal);
    index = { desc: target, bytes: top, chosen: { mediaType: chosen.mediaType, digest: chosen.digest, size: chosen.size } };
    manifest = { desc: index.chosen, bytes };
    parsed = parseManifest(bytes, chosen.mediaType);
    if (parsed.isIndex) throw new InvalidArgumentError(`${ref.normalized}: index ${digest} points at another index`, { code: 'ERR_MANIFEST_UNSUPPORTED' });
  }
  const [configDesc, ...layerDescs] = parsed.references;
  const configBytes = await readBlob(d, repo, configDesc!.digest, MAX_CONFIG_BYTES, 'config', signal);
  const diffIds = parseDiffIds(configBytes, configDesc!.digest, layerDescs.length);
  const plain = (x: BlobDescriptor): BlobDescriptor => ({ mediaType: x.mediaType, digest: x.digest, size: x.size, ...(x.annotations ? { annotations: x.annotations } : {}) });
  return {
    repo, target, manifest, layers: layerDescs.map(plain),
    config: { desc: plain(configDesc!), bytes: configBytes, diffIds },
    ...(index ? { index } : {}),
  };
}

function parseDiffIds(bytes: Buffer, digest: Digest, layers: number): Digest[] {
  let doc: { rootfs?: { diff_ids?: unknown } };
  try {
    doc = JSON.parse(bytes.toString('utf8')) as typeof doc;
  } catch {
    throw new InvalidArgumentError(`image config ${digest} is not valid JSON`, { code: 'ERR_CONFIG_INVALID' });
  }
  const ids = doc?.rootfs?.diff_ids;
  if (!Array.isArray(ids) || !ids.every(isDigest) || ids.length !== layers) {
    throw new InvalidArgumentError(`image config ${digest} must list one sha256 rootfs.diff_ids entry per layer (${layers})`, { code: 'ERR_CONFIG_INVALID' });
  }
  return ids;
}

/** A whole small blob through the agent, refusing one larger than `max`. */
async function readBlob(d: ResolveDeps, repo: string, digest: Digest, max: number, what: string, signal: AbortSignal): Promise<Buffer> {
  const h = await d.agent.open(repo, digest, signal);
  try {
    if (h.size > max) throw new InvalidArgumentError(`${what} ${digest} is ${h.size} bytes, more than ${max}`, { code: 'ERR_MANIFEST_INVALID' });
    const chunks: Buffer[] = [];
    for await (const c of h.read()) chunks.push(c as Buffer);
    await h.done;
    d.onReceived(h.received());
    return Buffer.concat(chunks);
  } finally {
    h.release();
  }
}

import { Readable } from 'node:stream';
import { sha256, type Digest, type Logger } from '@krill/lib';
import type { Agent, BytesBySource } from '../../agent/agent.js';
import type { BlobDescriptor, Containerd, ContainerdCri, Lease } from '../../containerd/containerd.js';
import type { ImageReference } from '../reference.js';
import type { ImageBlobs } from './resolve-image.js';
import { SharedWork } from './shared-work.js';

/** What containerd's CRI puts on the image records it creates; krill's records are the same. */
const MANAGED = { 'io.cri-containerd.image': 'managed' };
const PINNED = { 'io.cri-containerd.pinned': 'pinned' };
/** Layers written at once: containerd's own `max_concurrent_downloads` default. */
const LAYERS_AT_ONCE = 3;
/** A lease krill did not get to delete (a crash) expires after a day, as the Go client's do. */
const LEASE_EXPIRE_MS = 24 * 3600 * 1000;
/** How long containerd's CRI may take to see a new image through its events (ms in practice). */
const VISIBLE_TIMEOUT_MS = 30_000;

export interface IngestDeps {
  agent: Agent;
  containerd: Containerd;
  cri: ContainerdCri;
  snapshotter: string;
  onReceived(r: BytesBySource): void;
  logger: Logger;
}

/** chain IDs of the OCI image spec: c0 = diffID0, ci = sha256(c(i-1) + " " + diffIDi). */
export function chainIds(diffIds: Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256(`${out[out.length - 1]} ${d}`));
  return out;
}

/**
 * Puts a resolved image into containerd as its CRI's own pull would leave it (see
 * reference/cri-containerd.md §3): under one lease, the config and layers are streamed into the
 * content store while their pieces arrive (blobs already there are not fetched at all), each
 * layer is unpacked into the CRI's snapshotter as soon as it and those below it are in, then the
 * manifests go in with their GC labels, the three image records are created with the managed
 * label, and the call returns once the CRI's ImageStatus sees the image. The lease is deleted
 * on the way out, whatever happened, so a failed pull leaves nothing that the GC keeps.
 * Returns the image id (the config digest).
 */
export class ImageIngest {
  /** Blob writes in flight, shared by pulls of images that have layers in common. */
  private readonly writes = new SharedWork<void>();
  private readonly unpacks = new SharedWork<void>();

  constructor(private readonly d: IngestDeps) {}

  /**
   * `pinned`: the image is containerd's sandbox image, whose records carry the CRI's pinned label
   * too (1.7 only pins what its own pull made, so kubelet's image GC could remove it otherwise).
   */
  async ingest(ref: ImageReference, img: ImageBlobs, signal: AbortSignal, o: { pinned?: boolean } = {}): Promise<string> {
    const { containerd } = this.d;
    const lease = await containerd.createLease(LEASE_EXPIRE_MS);
    try {
      const source = { [`containerd.io/distribution.source.${ref.domain.replace(/:\d+$/, '')}`]: ref.path };
      const config = this.writeSmall(lease, img.config.desc, img.config.bytes, source, signal);
      // Awaited after the layers; a failure there must not leave this rejection unhandled.
      config.catch(() => {});
      const written = this.writeLayers(lease, img, source, signal);
      const chains = chainIds(img.config.diffIds);
      for (let i = 0; i < img.layers.length; i++) {
        await written[i];
        const layer = img.layers[i]!;
        const chainId = chains[i]!;
        const parent = i === 0 ? undefined : chains[i - 1];
        const t0 = performance.now();
        await this.unpacks.run(`${this.d.snapshotter}/${chainId}`, signal, (s) =>
          containerd.applyLayer({ lease, snapshotter: this.d.snapshotter, layer, diffId: img.config.diffIds[i]!, chainId, ...(parent ? { parent } : {}), signal: s }));
        this.d.logger.debug({ ref: ref.normalized, digest: layer.digest, chainId, ms: Math.round(performance.now() - t0) }, 'layer unpacked');
      }
      await Promise.all(written);
      await config;
      const top = chains[chains.length - 1];
      if (top) await containerd.setLabels(img.config.desc.digest, { [`containerd.io/gc.ref.snapshot.${this.d.snapshotter}`]: top });
      const manifestLabels: Record<string, string> = { ...source, 'containerd.io/gc.ref.content.config': img.config.desc.digest };
      img.layers.forEach((l, i) => { manifestLabels[`containerd.io/gc.ref.content.l.${i}`] = l.digest; });
      await this.writeSmall(lease, img.manifest.desc, img.manifest.bytes, manifestLabels, signal);
      if (img.index) await this.writeSmall(lease, img.index.desc, img.index.bytes, { ...source, 'containerd.io/gc.ref.content.m.0': img.index.chosen.digest }, signal);
      const id = img.config.desc.digest;
      // Records only once every blob is committed: a record whose blobs are missing sends the
      // CRI's event handler into a backoff of seconds to minutes.
      const names = [...(ref.tag ? [`${ref.name}:${ref.tag}`] : []), `${ref.name}@${img.target.digest}`, id];
      const labels = o.pinned ? { ...MANAGED, ...PINNED } : MANAGED;
      for (const name of names) await containerd.putImage({ lease, name, target: img.target, labels });
      await this.d.cri.waitVisible(ref.normalized, id, VISIBLE_TIMEOUT_MS, signal);
      return id;
    } finally {
      await lease.delete();
    }
  }

  /** Starts every layer's write, at most LAYERS_AT_ONCE at a time, bottom layer first. */
  private writeLayers(lease: Lease, img: ImageBlobs, labels: Record<string, string>, signal: AbortSignal): Promise<void>[] {
    const limit = limiter(LAYERS_AT_ONCE);
    const results = img.layers.map((layer) => limit(() => this.writeFromAgent(lease, img.repo, layer, labels, signal)));
    // A failure is seen by whoever awaits that layer; the others must not be unhandled meanwhile.
    for (const r of results) r.catch(() => {});
    return results;
  }

  private async writeFromAgent(lease: Lease, repo: string, desc: BlobDescriptor, labels: Record<string, string>, signal: AbortSignal): Promise<void> {
    const { containerd, agent } = this.d;
    await containerd.holdBlob(lease, desc.digest);
    const t0 = performance.now();
    await this.writes.run(desc.digest, signal, async (s) => {
      if (await containerd.hasBlob(desc.digest)) return;
      const h = await agent.open(repo, desc.digest, s);
      let written = false;
      try {
        // Pooled: the writer copies each piece into its message and gives the buffer back.
        const body = h.read(undefined, { pooled: true });
        try {
          await containerd.writeBlob({ lease, desc, body, labels, signal: s, recycle: true });
        } finally {
          body.destroy();
        }
        await h.done;
        written = true;
        this.d.onReceived(h.received());
        this.d.logger.debug({ digest: desc.digest, size: desc.size, ms: Math.round(performance.now() - t0) }, 'blob written to containerd');
      } finally {
        // A pull that failed or was cancelled stops the download unless another reader needs it.
        if (written) h.release();
        else h.abandon();
      }
    });
    await containerd.setLabels(desc.digest, labels);
  }

  private async writeSmall(lease: Lease, desc: BlobDescriptor, bytes: Buffer, labels: Record<string, string>, signal: AbortSignal): Promise<void> {
    const { containerd } = this.d;
    await containerd.holdBlob(lease, desc.digest);
    const r = await containerd.writeBlob({ lease, desc, body: Readable.from([bytes]), labels, signal });
    if (r === 'exists') await containerd.setLabels(desc.digest, labels);
  }
}

/** Runs at most `n` of the functions given to it at once, in the order given. */
function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    // A finishing function hands its slot straight to the next waiter.
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    else active++;
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

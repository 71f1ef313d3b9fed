import { randomUUID } from 'node:crypto';
import { Metadata, credentials, status, type Client } from '@grpc/grpc-js';
import { InternalError, type Digest } from '@krill/lib';
import { channelOptions, containerd as containerdApi, unary, unixTarget } from '@krill/proto';
import type { BlobDescriptor, Containerd, Lease } from './containerd.js';
import { writeContent } from './content-writer.js';
import { fromGrpc, grpcCode } from './grpc-errors.js';

type Clients = { content: Client; images: Client; leases: Client; snapshots: Client; diff: Client };

/** A descriptor with every field set: containerd 1.7/2.x crash on a nil nested message. */
function descriptor(d: BlobDescriptor) {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, annotations: d.annotations ?? {} };
}

/**
 * Containerd over its gRPC socket (see Containerd). Every call carries
 * `containerd-namespace`; calls that create content or snapshots carry `containerd-lease`.
 */
export function createContainerd(o: { socket: string; namespace: string }): Containerd {
  const api = containerdApi();
  const target = unixTarget(o.socket);
  const make = (C: new (t: string, c: ReturnType<typeof credentials.createInsecure>, opts: object) => Client) => new C(target, credentials.createInsecure(), channelOptions);
  const c: Clients = { content: make(api.Content), images: make(api.Images), leases: make(api.Leases), snapshots: make(api.Snapshots), diff: make(api.Diff) };
  const md = (lease?: Lease) => {
    const m = new Metadata();
    m.set('containerd-namespace', o.namespace);
    if (lease) m.set('containerd-lease', lease.id);
    return m;
  };
  async function call<T>(client: Client, method: string, name: string, req: object, lease?: Lease, signal?: AbortSignal): Promise<T> {
    try {
      return await unary<T>(client, method, req, { metadata: md(lease), ...(signal ? { signal } : {}) });
    } catch (err) {
      throw fromGrpc(err, name);
    }
  }
  const setLabels = async (digest: Digest, labels: Record<string, string>) => {
    const paths = Object.keys(labels).map((k) => `labels.${k}`);
    if (paths.length === 0) return;
    await call(c.content, 'Update', 'content.Update', { info: { digest, size: 0, labels }, updateMask: { paths } });
  };
  const addResource = (lease: Lease, id: string, type: string) =>
    call(c.leases, 'AddResource', 'leases.AddResource', { id: lease.id, resource: { id, type } });

  return {
    namespace: o.namespace,
    async createLease(expireMs) {
      const id = `krill-${randomUUID()}`;
      // RFC 3339 without fractions, as the Go client writes it.
      const expire = new Date(Date.now() + expireMs).toISOString().replace(/\.\d+Z$/, 'Z');
      await call(c.leases, 'Create', 'leases.Create', { id, labels: { 'containerd.io/gc.expire': expire } });
      let deleted: Promise<void> | undefined;
      return {
        id,
        delete: () => (deleted ??= call(c.leases, 'Delete', 'leases.Delete', { id, sync: false }).then(() => {}, (err: unknown) => {
          if (grpcCode((err as { cause?: unknown }).cause) !== status.NOT_FOUND) throw err;
        })),
      };
    },
    async hasBlob(digest) {
      try {
        await call(c.content, 'Info', 'content.Info', { digest });
        return true;
      } catch (err) {
        if ((err as { category?: string }).category === 'NotFound') return false;
        throw err;
      }
    },
    writeBlob: (w) => writeContent(c.content, md(w.lease), w),
    setLabels,
    holdBlob: async (lease, digest) => { await addResource(lease, digest, 'content'); },
    async applyLayer(a) {
      const sn = a.snapshotter;
      try {
        await call(c.snapshots, 'Stat', 'snapshots.Stat', { snapshotter: sn, key: a.chainId });
        await addResource(a.lease, a.chainId, `snapshots/${sn}`);
        return;
      } catch (err) {
        if ((err as { category?: string }).category !== 'NotFound') throw err;
      }
      const key = `extract-${randomUUID()} ${a.chainId}`;
      const prepared = await call<{ mounts: object[] }>(c.snapshots, 'Prepare', 'snapshots.Prepare',
        { snapshotter: sn, key, parent: a.parent ?? '', labels: { 'containerd.io/snapshot.ref': a.chainId } }, a.lease, a.signal);
      try {
        const applied = await call<{ applied?: { digest?: string } }>(c.diff, 'Apply', 'diff.Apply',
          { diff: descriptor(a.layer), mounts: prepared.mounts, payloads: {} }, a.lease, a.signal);
        if (applied.applied?.digest !== a.diffId) {
          throw new InternalError(`layer ${a.layer.digest} unpacked to ${applied.applied?.digest}, but the image config says ${a.diffId}`, { code: 'ERR_LAYER_DIFF_ID' });
        }
        try {
          await call(c.snapshots, 'Commit', 'snapshots.Commit', { snapshotter: sn, name: a.chainId, key, labels: {} }, a.lease, a.signal);
        } catch (err) {
          // Another pull committed the same chain first: its snapshot is as good as ours.
          if ((err as { category?: string }).category !== 'AlreadyExists') throw err;
          await removeQuietly(key);
          await addResource(a.lease, a.chainId, `snapshots/${sn}`);
        }
      } catch (err) {
        await removeQuietly(key);
        throw err;
      }
      await setLabels(a.layer.digest, { 'containerd.io/uncompressed': a.diffId });

      async function removeQuietly(k: string) {
        await call(c.snapshots, 'Remove', 'snapshots.Remove', { snapshotter: sn, key: k }).catch(() => {});
      }
    },
    async putImage(p) {
      const image = { name: p.name, labels: p.labels, target: descriptor(p.target) };
      try {
        await call(c.images, 'Create', 'images.Create', { image }, p.lease);
      } catch (err) {
        if ((err as { category?: string }).category !== 'AlreadyExists') throw err;
        // Label paths only: replacing the whole map would drop labels containerd's CRI added
        // itself (2.x pins sandbox images with one).
        await call(c.images, 'Update', 'images.Update', { image, updateMask: { paths: ['target', ...Object.keys(p.labels).map((k) => `labels.${k}`)] } }, p.lease);
      }
    },
    async listImages() {
      const r = await call<{ images: { name: string }[] }>(c.images, 'List', 'images.List', { filters: [] });
      return r.images.map((i) => i.name);
    },
    async listLeases() {
      const r = await call<{ leases: { id: string }[] }>(c.leases, 'List', 'leases.List', { filters: [] });
      return r.leases.map((l) => l.id);
    },
    close() {
      for (const client of Object.values(c)) client.close();
    },
  };
}

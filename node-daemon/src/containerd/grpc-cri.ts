import { basename } from 'node:path';
import { credentials, type Client } from '@grpc/grpc-js';
import { CanceledError, UnavailableError } from '@krill/lib';
import { channelOptions, cri as criApi, unary, unixTarget } from '@krill/proto';
import type { ContainerdCri } from './containerd.js';
import { fromGrpc } from './grpc-errors.js';

interface ImageStatusResponse { image?: { id?: string; size?: number } | null }
/** The first polls come fast (the CRI usually sees an image within 1-15 ms), later ones slower. */
const POLL_MS = [2, 5, 10, 20, 50, 100];

/** containerd's CRI on its own socket, for what krill reads (see ContainerdCri). */
export function createContainerdCri(o: { socket: string }): ContainerdCri {
  const api = criApi();
  const images: Client = new api.ImageService(unixTarget(o.socket), credentials.createInsecure(), channelOptions);
  const runtime: Client = new api.RuntimeService(unixTarget(o.socket), credentials.createInsecure(), channelOptions);
  const call = async <T>(client: Client, method: string, req: object, signal?: AbortSignal): Promise<T> => {
    try {
      return await unary<T>(client, method, req, signal ? { signal } : {});
    } catch (err) {
      throw fromGrpc(err, `CRI ${method}`);
    }
  };
  const imageStatus = (ref: string, signal?: AbortSignal) =>
    call<ImageStatusResponse>(images, 'ImageStatus', { image: { image: ref, annotations: {} }, verbose: false }, signal);

  /** The CRI plugin's config as Status(verbose) reports it; `{}` when it reports none. */
  const criConfig = async (): Promise<{ containerd?: { snapshotter?: string }; sandboxImage?: string }> => {
    const st = await call<{ info?: Record<string, string> }>(runtime, 'Status', { verbose: true });
    try {
      return JSON.parse(st.info?.['config'] ?? '{}') as { containerd?: { snapshotter?: string }; sandboxImage?: string };
    } catch {
      return {};
    }
  };

  return {
    async snapshotter() {
      // 1.6 and 1.7 report it in their CRI config; 2.x does not, but its image filesystem is the
      // snapshotter's root, `.../io.containerd.snapshotter.v1.<name>`.
      const cfg = await criConfig();
      if (cfg.containerd?.snapshotter) return cfg.containerd.snapshotter;
      const fs = await call<{ imageFilesystems?: { fsId?: { mountpoint?: string } }[] }>(images, 'ImageFsInfo', {});
      const m = /^io\.containerd\.snapshotter\.v1\.(.+)$/.exec(basename(fs.imageFilesystems?.[0]?.fsId?.mountpoint ?? ''));
      if (!m) throw new UnavailableError('containerd\'s CRI reports no snapshotter (Status config or ImageFsInfo mountpoint); set cri.snapshotter', { code: 'ERR_CRI_SNAPSHOTTER' });
      return m[1]!;
    },
    async sandboxImage() {
      return (await criConfig()).sandboxImage || undefined;
    },
    async imageId(ref) {
      return (await imageStatus(ref)).image?.id || undefined;
    },
    async imageSize(ref) {
      return (await imageStatus(ref)).image?.size ?? 0;
    },
    async waitVisible(ref, id, timeoutMs, signal) {
      const deadline = Date.now() + timeoutMs;
      for (let i = 0; ; i++) {
        if ((await imageStatus(ref, signal)).image?.id === id) return;
        if (signal?.aborted) throw new CanceledError(`waiting for containerd's CRI to see ${ref} cancelled`, { code: 'ERR_PULL_CANCELED' });
        if (Date.now() > deadline) throw new UnavailableError(`containerd's CRI did not see ${ref} as ${id} within ${timeoutMs} ms`, { code: 'ERR_CRI_NOT_VISIBLE' });
        await new Promise((r) => setTimeout(r, POLL_MS[Math.min(i, POLL_MS.length - 1)]));
      }
    },
    close() {
      images.close();
      runtime.close();
    },
  };
}

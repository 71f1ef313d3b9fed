import { Server, ServerCredentials } from '@grpc/grpc-js';
import { channelOptions, cri, unixTarget } from '@krill/proto';

/**
 * A real CRI ImageService on a unix socket that answers ImageFsInfo as containerd would: what
 * the node install script (`krill cri imagefsinfo`) asks a socket before pointing kubelet at it.
 * The caller shuts it down (`forceShutdown`).
 */
export async function serveImageFsInfo(socket: string, mountpoint = '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs'): Promise<Server> {
  const server = new Server(channelOptions);
  server.addService(cri().ImageService.service, {
    ImageFsInfo: (_call: unknown, done: (err: null, res: object) => void) => done(null, {
      imageFilesystems: [{ timestamp: Date.now() * 1e6, fsId: { mountpoint }, usedBytes: { value: 1 }, inodesUsed: { value: 1 } }],
    }),
  } as never);
  await new Promise<void>((resolve, reject) => server.bindAsync(unixTarget(socket), ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  return server;
}

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, type Client } from '@grpc/grpc-js';
import { channelOptions, cri, unary, unixTarget, type AuthConfig, type Image, type ImageFsInfoResponse, type PodSandboxConfig } from '@krill/proto';

/** A CRI client over a socket, making the calls kubelet and crictl make (reference/cri-containerd.md §1). */
export interface CriClient {
  /** kubelet's PullImage: the image as the pod names it, pod annotations, the sandbox config, credentials. */
  pullImage(image: string, o?: { auth?: Partial<AuthConfig>; sandboxConfig?: PodSandboxConfig | object; annotations?: Record<string, string>; signal?: AbortSignal; deadline?: Date }): Promise<string>;
  /** ImageStatus: the image, or undefined when the runtime does not have it. */
  imageStatus(image: string, verbose?: boolean): Promise<{ image?: Image; info: Record<string, string> }>;
  /** ListImages as crictl sends it (`filter.image.image` = the name argument, which containerd ignores). */
  listImages(filter?: string): Promise<Image[]>;
  removeImage(image: string): Promise<void>;
  imageFsInfo(): Promise<ImageFsInfoResponse>;
  /**
   * Runs `command` in a container of `image` (by id, as kubelet does) inside a host-network pod,
   * waits for it to exit, and returns its exit code and output. The pod is removed afterwards.
   */
  runContainer(image: string, command: string[], o: { logDir: string; name: string }): Promise<{ exitCode: number; output: string }>;
  close(): void;
}

export function createCriClient(socket: string): CriClient {
  const api = cri();
  const images: Client = new api.ImageService(unixTarget(socket), credentials.createInsecure(), channelOptions);
  const runtime: Client = new api.RuntimeService(unixTarget(socket), credentials.createInsecure(), channelOptions);
  const rt = <T>(method: string, req: object) => unary<T>(runtime, method, req);
  return {
    async pullImage(image, o = {}) {
      const r = await unary<{ imageRef: string }>(images, 'PullImage', {
        image: { image, annotations: o.annotations ?? {} },
        ...(o.auth ? { auth: o.auth } : {}),
        ...(o.sandboxConfig ? { sandboxConfig: o.sandboxConfig } : {}),
      }, { ...(o.signal ? { signal: o.signal } : {}), ...(o.deadline ? { deadline: o.deadline } : {}) });
      return r.imageRef;
    },
    async imageStatus(image, verbose = false) {
      const r = await unary<{ image?: Image | null; info?: Record<string, string> }>(images, 'ImageStatus', { image: { image }, verbose });
      return { ...(r.image ? { image: r.image } : {}), info: r.info ?? {} };
    },
    async listImages(filter) {
      const r = await unary<{ images: Image[] }>(images, 'ListImages', filter ? { filter: { image: { image: filter } } } : {});
      return r.images;
    },
    async removeImage(image) {
      await unary(images, 'RemoveImage', { image: { image } });
    },
    imageFsInfo: () => unary<ImageFsInfoResponse>(images, 'ImageFsInfo', {}),
    async runContainer(image, command, o) {
      const sandboxConfig = {
        metadata: { name: `${o.name}-pod`, uid: `${o.name}-uid`, namespace: 'krill-test', attempt: 0 },
        logDirectory: o.logDir,
        linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'POD', ipc: 'POD' } } },
      };
      const { podSandboxId } = await rt<{ podSandboxId: string }>('RunPodSandbox', { config: sandboxConfig, runtimeHandler: '' });
      try {
        const { containerId } = await rt<{ containerId: string }>('CreateContainer', {
          podSandboxId, sandboxConfig,
          config: { metadata: { name: o.name, attempt: 0 }, image: { image }, command, logPath: `${o.name}.log`, linux: {} },
        });
        await rt('StartContainer', { containerId });
        for (let i = 0; ; i++) {
          const st = await rt<{ status?: { state: string; exitCode: number } }>('ContainerStatus', { containerId, verbose: false });
          if (st.status?.state === 'CONTAINER_EXITED') {
            // CRI log lines: `<time> <stream> <P|F> <text>`.
            const output = readFileSync(join(o.logDir, `${o.name}.log`), 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ').slice(3).join(' ')).join('\n');
            return { exitCode: st.status.exitCode, output };
          }
          if (i > 300) throw new Error(`container ${o.name} did not exit within 30 s (state ${st.status?.state})`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        await rt('StopPodSandbox', { podSandboxId }).catch(() => {});
        await rt('RemovePodSandbox', { podSandboxId }).catch(() => {});
      }
    },
    close() {
      images.close();
      runtime.close();
    },
  };
}

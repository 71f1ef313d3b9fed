import { envName } from '@krill/lib';
import type { IDaemonSet } from 'kubernetes-models/apps/v1';
import type { IContainer, ISecurityContext } from 'kubernetes-models/v1';
import { criSocketIn } from './component-configs.js';
import type { InstallConfig } from './install-config.js';
import { imageRef, selectorLabels } from './names.js';
import { krillContainer, meta, podMeta, podSpec, type Rendered } from './pod-parts.js';

/**
 * What the node daemon needs, and why; printed above the DaemonSet and repeated in README
 * ("Install on Kubernetes").
 */
export const NODE_PRIVILEGE_NOTE = [
  'The node daemon (krill node) on every node, with the least privilege that works:',
  '- hostPath mounts of exactly three paths, at the same paths as on the host: containerd\'s socket (type Socket, so a',
  '  node without containerd fails visibly), krill\'s socket directory (the CRI socket kubelet and crictl use) and the',
  '  blob cache directory.',
  '- uid 0 with every capability dropped, not privileged, no privilege escalation, a read-only image, RuntimeDefault',
  '  seccomp. uid 0 is needed because containerd\'s socket is root:root mode 0660 (connecting needs write access to it)',
  '  and the kubelet creates both hostPath directories as root, mode 0755 (creating the CRI socket and cache files',
  '  needs write access to them). These are owner checks, which uid 0 passes without any capability; CAP_DAC_OVERRIDE',
  '  would only be needed if those paths were owned by someone else. Unpacking layers is containerd\'s work (diff',
  '  service), so no mount or snapshot capability is needed.',
  '- hostNetwork: peers dial each node at its own address on the peer port, and the local registry API stays on the',
  '  node\'s loopback, where containerd (hosts.toml mirror) and the probes reach it. ClusterFirstWithHostNet keeps',
  '  cluster DNS for the Services\' names.',
  '- No Prometheus scrape annotations: /metrics is on the loopback registry port; scrape it from the node itself.',
  '- The node-install container (node.kubelet.switch) is the one privileged part: it runs install/node/krill-node-install.sh',
  '  --watchdog, which edits kubelet\'s config on the host (hostPath / at /host) and restarts kubelet through nsenter into',
  '  PID 1 (hostPID), only after krill\'s socket answers ImageFsInfo, and puts it back when the socket stays down or the',
  '  pod is stopped.',
].join('\n');

/**
 * The node DaemonSet. Paths inside the container are the host's own, so the config file, the
 * kubelet's `imageServiceEndpoint` and a `crictl` on the host all name the same socket.
 */
export function nodeObjects(install: InstallConfig, digest: string): Rendered[] {
  const n = install.node;
  const securityContext: ISecurityContext = {
    runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, privileged: false, allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] },
  };
  const container = krillContainer(install, 'node', {
    ports: [
      // The registry API listens on loopback only; declaring it reserves the node's port for it.
      { name: 'registry', containerPort: install.ports.agent, hostPort: install.ports.agent, protocol: 'TCP' },
      { name: 'peer', containerPort: install.ports.agentPeer, hostPort: install.ports.agentPeer, protocol: 'TCP' },
    ],
    // The peer address told to trackers is the node's: with hostNetwork the pod's is the node's.
    env: [{ name: envName('KRILL_NODE', ['peer', 'advertise']), valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } }],
    resources: n.resources, securityContext, probePort: 'registry', probeHost: '127.0.0.1',
    mounts: [
      { name: 'containerd-socket', mountPath: n.containerdSocket },
      { name: 'krill-sockets', mountPath: n.socketDir },
      { name: 'cache', mountPath: n.cacheDir },
    ],
  });
  const k = n.kubelet;
  const sidecars: IContainer[] = k.switch ? [{
    name: 'node-install',
    image: imageRef(install),
    imagePullPolicy: install.image.pullPolicy,
    command: [
      'bash', '/opt/krill/install/node/krill-node-install.sh', '--watchdog', '--root', '/host',
      '--host-exec', 'nsenter --target 1 --mount --uts --ipc --net --pid --',
      '--socket', nodeCriSocket(install), '--interval', String(k.intervalSeconds), '--failures', String(k.failures),
      ...(k.containerdMirror ? ['--containerd-mirror', '--mirror-url', `http://127.0.0.1:${install.ports.agent}`] : []),
    ],
    env: [{ name: 'KRILL_CLI', value: 'krill' }],
    // The image's USER is 65532; a privileged container of a non-root user has no capabilities.
    securityContext: { privileged: true, runAsUser: 0, runAsGroup: 0, runAsNonRoot: false },
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
    volumeMounts: [{ name: 'host-root', mountPath: '/host', mountPropagation: 'HostToContainer' }],
  }] : [];
  const daemonSet: IDaemonSet = {
    apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: meta(install, 'node'),
    spec: {
      selector: { matchLabels: selectorLabels('node') },
      // One node at a time loses its daemon (and kubelet its image service) during a rollout.
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: podMeta(install, 'node', digest),
        spec: podSpec(install, 'node', {
          placement: n, container,
          securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
          extra: { hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet', priorityClassName: n.priorityClassName, ...(k.switch ? { hostPID: true } : {}) },
          sidecars,
          volumes: [
            ...(k.switch ? [{ name: 'host-root', hostPath: { path: '/', type: 'Directory' as const } }] : []),
            { name: 'containerd-socket', hostPath: { path: n.containerdSocket, type: 'Socket' } },
            { name: 'krill-sockets', hostPath: { path: n.socketDir, type: 'DirectoryOrCreate' } },
            { name: 'cache', hostPath: { path: n.cacheDir, type: 'DirectoryOrCreate' } },
          ],
        }),
      },
    },
  };
  return [{ comment: NODE_PRIVILEGE_NOTE, object: daemonSet }];
}

/** The node daemon's paths in the cluster: krill's CRI socket in its socket directory. */
export const nodeCriSocket = (install: InstallConfig): string => criSocketIn(install.node.socketDir);

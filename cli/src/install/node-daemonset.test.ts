import { dirname } from 'node:path';
import { validateConfig } from '@krill/lib';
import { nodeConfigSchema, type NodeConfig } from '@krill/node-daemon';
import type { IDaemonSet } from 'kubernetes-models/apps/v1';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { defaultInstallConfig, validateInstallConfig } from './install-config.js';
import type { KubeObject } from './pod-parts.js';
import { renderObjects } from './render.js';

/**
 * `krill node`'s own defaults: its schema filled in for the smallest config it accepts. The
 * cache directory has no schema default (it is required); README gives /var/lib/krill/agent.
 */
const nodeDefaults = validateConfig<NodeConfig>(nodeConfigSchema, {
  origins: { urls: ['http://origin:15002'] }, buildIndex: { urls: ['http://build-index:15004'] }, cache: { dir: '/var/lib/krill/agent' },
});

function rendered() {
  const objects = renderObjects(defaultInstallConfig()).map((r) => r.object);
  const daemonSet = objects.find((o): o is IDaemonSet => o.kind === 'DaemonSet')!;
  const spec = daemonSet.spec!.template.spec!;
  const container = spec.containers[0]!;
  const map = objects.find((o: KubeObject) => o.kind === 'ConfigMap' && o.metadata?.name === 'krill-node') as { data: Record<string, string> };
  // The config file the container reads is the one its config volume mounts.
  const file = container.command!.at(-1)!;
  const configVolume = spec.volumes!.find((v) => v.name === container.volumeMounts!.find((m) => file.startsWith(`${m.mountPath}/`))!.name)!;
  expect(configVolume.configMap?.name).toBe('krill-node');
  const config = validateConfig<NodeConfig>(nodeConfigSchema, parse(map.data[file.slice(file.lastIndexOf('/') + 1)]!));
  const hostPathOf = (containerPath: string) => {
    const mount = container.volumeMounts!.find((m) => m.mountPath === containerPath);
    return spec.volumes!.find((v) => v.name === mount?.name)?.hostPath?.path;
  };
  return { spec, container, config, hostPathOf };
}

describe('the node DaemonSet and `krill node`', () => {
  it('mounts containerd\'s socket, krill\'s socket directory and the cache at krill node\'s default paths, and nothing else from the host', () => {
    const { spec, container, config, hostPathOf } = rendered();
    expect(config.cri.containerd.socket).toBe(nodeDefaults.cri.containerd.socket);
    expect(hostPathOf(nodeDefaults.cri.containerd.socket)).toBe(nodeDefaults.cri.containerd.socket);
    expect(config.cri.socket).toBe(nodeDefaults.cri.socket);
    expect(hostPathOf(dirname(nodeDefaults.cri.socket))).toBe(dirname(nodeDefaults.cri.socket));
    expect(config.cache.dir).toBe(nodeDefaults.cache.dir);
    expect(hostPathOf(nodeDefaults.cache.dir)).toBe(nodeDefaults.cache.dir);
    // The daemon's container mounts exactly these host paths.
    const hostPaths = (c: { volumeMounts?: { name: string }[] }) => (c.volumeMounts ?? [])
      .map((m) => spec.volumes!.find((v) => v.name === m.name)?.hostPath?.path).filter((p): p is string => p !== undefined).sort();
    expect(hostPaths(container)).toEqual([nodeDefaults.cri.containerd.socket, dirname(nodeDefaults.cri.socket), nodeDefaults.cache.dir].sort());
    expect(container.securityContext).toMatchObject({ privileged: false, capabilities: { drop: ['ALL'] } });
  });

  it('runs the node install watchdog beside it, the only privileged container, switching kubelet to krill\'s socket', () => {
    const { spec } = rendered();
    const watchdog = spec.containers.find((c) => c.name === 'node-install')!;
    // As root: the image's USER is 65532, and a privileged non-root process has no capabilities.
    expect(watchdog.securityContext).toMatchObject({ privileged: true, runAsUser: 0, runAsNonRoot: false });
    expect(spec.hostPID).toBe(true);
    expect(watchdog.command).toEqual(expect.arrayContaining(['/opt/krill/install/node/krill-node-install.sh', '--watchdog', '--root', '/host', '--socket', nodeDefaults.cri.socket]));
    expect(spec.containers.filter((c) => c.securityContext?.privileged)).toHaveLength(1);
    const off = renderObjects(validateInstallConfig({ node: { kubelet: { switch: false } } })).map((r) => r.object).find((o): o is IDaemonSet => o.kind === 'DaemonSet')!;
    expect(off.spec!.template.spec!.containers.map((c) => c.name)).toEqual(['node']);
    expect(off.spec!.template.spec!.volumes!.some((v) => v.hostPath?.path === '/')).toBe(false);
  });

  it('declares krill node\'s default ports on the host network, and its config listens on them', () => {
    const { spec, container, config } = rendered();
    expect(spec.hostNetwork).toBe(true);
    const port = (name: string) => container.ports!.find((p) => p.name === name);
    expect(port('registry')).toMatchObject({ containerPort: nodeDefaults.listen.port, hostPort: nodeDefaults.listen.port });
    expect(port('peer')).toMatchObject({ containerPort: nodeDefaults.peer.port, hostPort: nodeDefaults.peer.port });
    expect(config.listen).toEqual(nodeDefaults.listen);
    expect(config.peer.port).toBe(nodeDefaults.peer.port);
    // The registry API stays on loopback, so the probes go there.
    expect(container.readinessProbe!.httpGet).toMatchObject({ host: nodeDefaults.listen.host, path: '/ready', port: 'registry' });
  });

  it('leaves every other key of the node config at krill node\'s default', () => {
    const { config } = rendered();
    const { listen: _l, peer: _p, trackers: _t, origins: _o, buildIndex: _b, ...rest } = config;
    const { listen: _dl, peer: _dp, trackers: _dt, origins: _do, buildIndex: _db, ...defaults } = nodeDefaults;
    expect(rest).toEqual(defaults);
  });

  it('runs without privilege or capabilities, tolerating every taint', () => {
    const { spec, container } = rendered();
    expect(container.securityContext).toMatchObject({ privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(container.securityContext!.capabilities!.add).toBeUndefined();
    expect(spec.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(spec.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(container.env).toContainEqual({ name: 'KRILL_NODE_PEER__ADVERTISE', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } });
  });
});

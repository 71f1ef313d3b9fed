import type { INamespace } from 'kubernetes-models/v1';
import { Document } from 'yaml';
import { BUILD_INDEX_DB, ORIGIN_BACKEND_DIR, ORIGIN_STORE_DIR, PROXY_UPLOAD_DIR, buildIndexObjects, originObjects, proxyObjects, trackerObjects, type ConfigDigests } from './cluster-objects.js';
import { buildIndexConfig, nodeConfig, originConfig, proxyConfig, trackerConfig, type ComponentConfig } from './component-configs.js';
import type { InstallConfig } from './install-config.js';
import { COMPONENTS, clusterUrls, labels, type Component } from './names.js';
import { nodeCriSocket, nodeObjects } from './node-daemonset.js';
import { configMap, disruptionBudget, serviceAccount, type Rendered } from './pod-parts.js';

/** Cluster services listen on every address of their pod; the node daemon's peer endpoint on the node's. */
const ANY = '0.0.0.0';

/**
 * Every component's YAML config in the cluster, from the same builders `krill devcluster` uses.
 * The node daemon's registry API stays on loopback (see DESIGN, Security).
 */
export function clusterComponentConfigs(install: InstallConfig): Record<Component, ComponentConfig> {
  const urls = clusterUrls(install);
  const p = install.ports;
  return {
    tracker: trackerConfig(install, urls, { listen: { host: ANY, port: p.tracker } }),
    origin: originConfig(install, urls, {
      listen: { host: ANY, port: p.origin }, peer: { host: ANY, port: p.originPeer }, storeDir: ORIGIN_STORE_DIR, backendDir: ORIGIN_BACKEND_DIR,
    }),
    'build-index': buildIndexConfig(install, urls, { listen: { host: ANY, port: p.buildIndex }, db: BUILD_INDEX_DB }),
    proxy: proxyConfig(install, urls, { listen: { host: ANY, port: p.proxy }, uploadDir: PROXY_UPLOAD_DIR }),
    node: nodeConfig(install, urls, {
      listen: { host: '127.0.0.1', port: p.agent }, peer: { host: ANY, port: p.agentPeer }, cacheDir: install.node.cacheDir,
      criSocket: nodeCriSocket(install), containerdSocket: install.node.containerdSocket,
    }),
  };
}

/**
 * Every object, in the order they are applied: the Namespace, ServiceAccounts, ConfigMaps,
 * each component's workload and Service (tracker, origin, build-index, proxy, node), then the
 * PodDisruptionBudgets. No RBAC: nothing in krill calls the Kubernetes API.
 */
export function renderObjects(install: InstallConfig): Rendered[] {
  const configs = clusterComponentConfigs(install);
  const maps = COMPONENTS.map((c) => ({ c, ...configMap(install, c, configs[c]) }));
  const digests = Object.fromEntries(maps.map((m) => [m.c, m.digest])) as ConfigDigests;
  const namespace: INamespace = {
    apiVersion: 'v1', kind: 'Namespace',
    metadata: {
      name: install.namespace,
      // The node DaemonSet needs hostNetwork and hostPath, which Pod Security's baseline level
      // forbids; the cluster services would pass the restricted level.
      labels: { ...labels(install), 'pod-security.kubernetes.io/enforce': 'privileged' },
    },
  };
  return [
    { comment: `krill ${install.image.tag}, rendered by \`krill manifests\`; the defaults' rendering is install/kubernetes/krill.yaml (${REGENERATE}).`, object: namespace },
    ...COMPONENTS.map((c, i) => ({
      ...(i === 0 ? { comment: 'One ServiceAccount per component, without a token: no component calls the Kubernetes API, so there is no RBAC.' } : {}),
      object: serviceAccount(install, c),
    })),
    ...maps.map((m, i) => ({
      ...(i === 0 ? { comment: 'Each component\'s config (README, "Configuration"), checked against that component\'s own schema when rendered.' } : {}),
      object: m.object,
    })),
    ...trackerObjects(install, digests),
    ...originObjects(install, digests),
    ...buildIndexObjects(install, digests),
    ...proxyObjects(install, digests),
    ...nodeObjects(install, digests.node),
    ...(['origin', 'tracker', 'build-index', 'proxy'] as const).map((c, i) => ({
      ...(i === 0 ? { comment: 'At most one pod of each cluster service evicted at a time.' } : {}),
      object: disruptionBudget(install, c),
    })),
  ];
}

/** The command that writes the committed rendering of the defaults. */
export const REGENERATE = 'node cli/bin/krill.js manifests > install/kubernetes/krill.yaml';

/** The objects as one multi-document YAML stream, each under its comment. */
export function toYaml(objects: readonly Rendered[]): string {
  return objects.map((r) => {
    const doc = new Document(r.object, { aliasDuplicateObjects: false });
    if (r.comment) doc.commentBefore = r.comment.split('\n').map((l) => ` ${l}`).join('\n');
    return `---\n${doc.toString({ lineWidth: 0 })}`;
  }).join('');
}

/** Every object of `install` as `krill manifests` prints it. */
export const renderManifests = (install: InstallConfig): string => toYaml(renderObjects(install));

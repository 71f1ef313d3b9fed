import { validateConfig, type Schema } from '@krill/lib';
import { buildIndexConfigSchema, originConfigSchema, proxyConfigSchema, trackerConfigSchema } from '@krill/cluster-services';
import { agentConfigSchema, nodeConfigSchema } from '@krill/node-daemon';
import { originCapacityBytes, type InstallConfig } from './install-config.js';
import type { ClusterUrls } from './names.js';

/*
 * Each component's YAML config, built from the install config. `krill manifests` and
 * `krill devcluster` both call these builders, so the two differ only in what they pass in:
 * where each process listens, its directories, and the membership lists. Everything else
 * (ring replicas, capacities, the storage backend, the CRI's registry rules, the log level)
 * comes from the install config and nowhere else.
 *
 * A builder returns the config as written to the file (the component fills its own defaults
 * at start) after validating it against the component's own schema, so a rendering is never a
 * config that component would refuse.
 */

/** A component's YAML config as the builders write it: only the keys the install config decides. */
export type ComponentConfig = Record<string, unknown>;

/** Where a process listens. */
export interface Listen {
  host: string;
  port: number;
}

/** Ring replicas never exceed the number of origins, so every rendering means what it says. */
// The ring never has more owners per blob than members (a static list's length is all there is;
// a DNS ring clamps to whatever it resolves to as it scales).
const ringReplicas = (install: InstallConfig, urls: ClusterUrls) => (urls.dns ? install.origin.blobReplicas : Math.min(install.origin.blobReplicas, urls.origins.length));
const originsRef = (install: InstallConfig, urls: ClusterUrls) => ({
  ...(urls.dns ? { dns: urls.dns.origins } : { urls: urls.origins }), replicas: ringReplicas(install, urls),
});
const trackersRef = (urls: ClusterUrls) => (urls.dns ? { dns: urls.dns.trackers } : { urls: urls.trackers });

function valid(schema: Schema, config: ComponentConfig, file: string): ComponentConfig {
  validateConfig(schema, config, `rendered ${file}`);
  return config;
}

/**
 * An origin. `backendDir` is the filesystem backend's root (unused with S3). The origin's own
 * URL on the ring (`advertiseUrl`) and its peer address are left to the caller when they differ
 * per process and cannot be in a shared file (Kubernetes sets them per pod from the environment).
 */
export function originConfig(install: InstallConfig, urls: ClusterUrls, at: { listen: Listen; peer: Listen; storeDir: string; backendDir: string }): ComponentConfig {
  const storage = install.origin.storage;
  const backend = storage.backend === 's3' && storage.s3
    ? {
        s3: {
          bucket: storage.s3.bucket, region: storage.s3.region, forcePathStyle: storage.s3.forcePathStyle, prefix: storage.s3.prefix,
          ...(storage.s3.endpoint === undefined ? {} : { endpoint: storage.s3.endpoint }),
        },
      }
    : { fs: { root: at.backendDir } };
  return valid(originConfigSchema, {
    listen: at.listen,
    cluster: { ...(urls.dns ? { dns: urls.dns.origins } : { origins: urls.origins }), replicas: ringReplicas(install, urls) },
    store: { dir: at.storeDir, capacityBytes: originCapacityBytes(install) },
    backends: [{ namespace: '.*', ...backend }],
    peer: at.peer,
    trackers: trackersRef(urls),
    logLevel: install.logLevel,
  }, 'origin.yaml');
}

export function trackerConfig(install: InstallConfig, urls: ClusterUrls, at: { listen: Listen }): ComponentConfig {
  return valid(trackerConfigSchema, { listen: at.listen, origins: originsRef(install, urls), logLevel: install.logLevel }, 'tracker.yaml');
}

export function buildIndexConfig(install: InstallConfig, urls: ClusterUrls, at: { listen: Listen; db: string }): ComponentConfig {
  return valid(buildIndexConfigSchema, { listen: at.listen, db: at.db, origins: originsRef(install, urls), logLevel: install.logLevel }, 'build-index.yaml');
}

export function proxyConfig(install: InstallConfig, urls: ClusterUrls, at: { listen: Listen; uploadDir: string }): ComponentConfig {
  return valid(proxyConfigSchema, {
    listen: at.listen, origins: originsRef(install, urls), buildIndex: { urls: urls.buildIndex }, uploadDir: at.uploadDir, logLevel: install.logLevel,
  }, 'proxy.yaml');
}

interface AgentPlacement {
  /** The local registry API (and /health, /ready, /metrics). */
  listen: Listen;
  /** The peer endpoint; its advertised address is the caller's when it differs per node. */
  peer: Listen;
  cacheDir: string;
}

function agentKeys(install: InstallConfig, urls: ClusterUrls, at: AgentPlacement): ComponentConfig {
  const capacity = install.node.cacheCapacityBytes;
  return {
    listen: at.listen, peer: at.peer,
    trackers: trackersRef(urls), origins: originsRef(install, urls), buildIndex: { urls: urls.buildIndex },
    cache: { dir: at.cacheDir, ...(capacity === undefined ? {} : { capacityBytes: capacity }) },
    logLevel: install.logLevel,
  };
}

/** A node agent alone (`krill agent`): the devcluster's agents without a containerd. */
export function agentConfig(install: InstallConfig, urls: ClusterUrls, at: AgentPlacement): ComponentConfig {
  return valid(agentConfigSchema, agentKeys(install, urls, at), 'agent.yaml');
}

/**
 * The node daemon (`krill node`): the agent plus the CRI socket in front of containerd. The
 * caller's `registries` rules come before the install config's (the devcluster names its proxy).
 */
export function nodeConfig(install: InstallConfig, urls: ClusterUrls, at: AgentPlacement & {
  criSocket: string; containerdSocket: string; registries?: InstallConfig['node']['registries'];
}): ComponentConfig {
  return valid(nodeConfigSchema, {
    ...agentKeys(install, urls, at),
    cri: {
      socket: at.criSocket,
      containerd: { socket: at.containerdSocket },
      defaultMode: install.node.defaultMode,
      registries: [...(at.registries ?? []), ...install.node.registries],
    },
  }, 'node.yaml');
}

/** The CRI socket's path in krill's socket directory; kubelet's imageServiceEndpoint points at it. */
export const criSocketIn = (socketDir: string): string => `${socketDir.replace(/\/+$/, '')}/cri.sock`;

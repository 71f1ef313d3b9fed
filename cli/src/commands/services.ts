import { agentConfigSchema, nodeConfigSchema, startAgent, startNode, type AgentConfig, type NodeConfig } from '@krill/node-daemon';
import {
  buildIndexConfigSchema, originConfigSchema, proxyConfigSchema, startBuildIndex, startOrigin, startProxy, startTracker, trackerConfigSchema,
  type BuildIndexConfig, type OriginConfig, type ProxyConfig, type TrackerConfig,
} from '@krill/cluster-services';
import { serviceCommand } from '../service-command.js';

export const originCommand = serviceCommand<OriginConfig>({
  name: 'origin',
  summary: 'run an origin: a seeder on the hash ring over pluggable storage',
  description: 'Stores blobs by digest, verified, replicated to the other owners on the hash ring, and\nwritten back to the backend chosen by namespace (filesystem, S3, HTTP, upstream registry).',
  schema: originConfigSchema,
  envPrefix: 'KRILL_ORIGIN',
  start: (config, deps) => startOrigin(config, deps),
});

export const buildIndexCommand = serviceCommand<BuildIndexConfig>({
  name: 'build-index',
  summary: 'run the build-index: tags to manifest digests',
  description: 'Keeps repo:tag -> manifest digest, accepts a tag only when everything it references is on the\norigins, and resolves pull-through repositories from their upstream registry with a TTL.',
  schema: buildIndexConfigSchema,
  envPrefix: 'KRILL_BUILD_INDEX',
  start: (config, deps) => startBuildIndex(config, deps),
});

export const proxyCommand = serviceCommand<ProxyConfig>({
  name: 'proxy',
  summary: 'run the push proxy: the OCI registry API that skopeo and docker push write to',
  description: 'Serves the OCI distribution API (push and pull); blobs and manifests go to the origins,\ntags to the build-index.',
  schema: proxyConfigSchema,
  envPrefix: 'KRILL_PROXY',
  start: (config, deps) => startProxy(config, deps),
});

export const trackerCommand = serviceCommand<TrackerConfig>({
  name: 'tracker',
  summary: 'run a tracker: who has which blob; hands out peers',
  description: 'Keeps each blob\'s swarm in memory (peers expire when they stop announcing), hands a\nnew peer the seeders and origins first, then a sample of other downloaders, and serves blob\nmetainfo from the origins. Several trackers split the blobs by rendezvous hashing.',
  schema: trackerConfigSchema,
  envPrefix: 'KRILL_TRACKER',
  start: (config, deps) => startTracker(config, deps),
});

export const agentCommand = serviceCommand<AgentConfig>({
  name: 'agent',
  summary: 'run a node agent: P2P blob downloads, a disk cache, and the local registry API',
  description: 'Fetches blobs from peers and origins in SHA-256 verified pieces, keeps them in a disk cache\n(LRU under a byte capacity) and seeds them, and serves the OCI distribution read API on\nloopback so that containerd, ctr or skopeo can pull through it.',
  schema: agentConfigSchema,
  envPrefix: 'KRILL_AGENT',
  start: (config, deps) => startAgent(config, deps),
});

export const nodeCommand = serviceCommand<NodeConfig>({
  name: 'node',
  summary: 'run the node daemon: the agent plus a CRI image-service socket in front of containerd',
  description: 'Everything `krill agent` does, plus the CRI socket kubelet (imageServiceEndpoint) and crictl\ntalk to: PullImage goes through the agent into containerd\'s content store (unpacked, with the\nimage records containerd\'s CRI expects), and is handed to containerd\'s own pull when krill\ncannot serve it; every other CRI call is forwarded to containerd unchanged.',
  schema: nodeConfigSchema,
  envPrefix: 'KRILL_NODE',
  start: (config, deps) => startNode(config, deps),
});

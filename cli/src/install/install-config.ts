import { InvalidArgumentError, loadConfig, logLevelSchema, validateConfig, type Schema } from '@krill/lib';
import type { PullMode } from '@krill/node-daemon';
import { DNS_LABEL, DNS_NAME, placementProperties, port, pullMode, resourcesSchema, serviceSchema, volumeSchema } from './schema-parts.js';

/**
 * The install configuration: one typed document from which `krill manifests` renders every
 * Kubernetes object and `krill devcluster` its local processes. Every component's own YAML
 * config is built from it by the builders in component-configs.ts, so both share one schema.
 */
export interface InstallConfig {
  /** The namespace every object lives in (a DNS label). */
  namespace: string;
  /** The cluster's DNS domain (kubelet's clusterDomain): the suffix of every Service name. */
  clusterDomain: string;
  /**
   * How components find the origins and the trackers: `dns`, the SRV records of their headless
   * Services, looked up again every `refreshMs` so the rings follow scaling; `static`, a list of
   * every pod's name rendered from `replicas` (a scale needs a re-render and a rollout).
   */
  membership: { mode: 'dns' | 'static'; refreshMs: number };
  image: ImageConfig;
  /** pino's level for every component. */
  logLevel: string;
  ports: Ports;
  origin: OriginInstall;
  tracker: ServiceInstall;
  buildIndex: ServiceInstall & { volume: VolumeConfig };
  proxy: ServiceInstall & { serviceType: 'ClusterIP' | 'NodePort' | 'LoadBalancer' };
  node: NodeInstall;
  /**
   * Secret names (kubernetes.io/tls: tls.crt, tls.key, ca.crt) mounted read-only at
   * /etc/krill/tls in that component's pods. krill has no TLS yet: no config key reads them.
   */
  tls: Partial<Record<'origin' | 'tracker' | 'buildIndex' | 'proxy' | 'node', string>>;
}

/** The one `krill` image every component runs. */
export interface ImageConfig {
  repository: string;
  tag: string;
  /** `sha256:…`: pods run `repository:tag@digest`, so a node never runs another build under the tag. */
  digest?: string;
  pullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** imagePullSecrets for a private registry. */
  pullSecrets: string[];
}

/** Every component's port; the defaults are the components' own schema defaults. */
export interface Ports {
  proxy: number;
  originPeer: number;
  origin: number;
  tracker: number;
  buildIndex: number;
  /** The node daemon's local registry API, /health, /ready and /metrics (loopback). */
  agent: number;
  /** The node daemon's peer endpoint, on the node's own address (hostNetwork). */
  agentPeer: number;
}

/** A Kubernetes resource quantity: `500m`, `1Gi`, 2. */
export type Quantity = string | number;

export interface Resources {
  requests?: Record<string, Quantity>;
  limits?: Record<string, Quantity>;
}

export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  tolerationSeconds?: number;
}

/** Where a component's pods may run. */
export interface Placement {
  nodeSelector: Record<string, string>;
  tolerations: Toleration[];
}

export interface ServiceInstall extends Placement {
  replicas: number;
  resources: Resources;
}

/** A PersistentVolumeClaim's size; no storageClassName means the cluster's default class. */
export interface VolumeConfig {
  size: string;
  storageClassName?: string;
}

export interface OriginInstall extends ServiceInstall {
  /** Owners per blob on the hash ring (`cluster.replicas`), at most `replicas`. */
  blobReplicas: number;
  /** The store's volume (blobs, piece metainfo, the write-back queue). */
  volume: VolumeConfig;
  /** The store's byte capacity; default 80% of `volume.size`, leaving room for SQLite and temporary files. */
  capacityBytes?: number;
  storage: OriginStorage;
}

/** Where origins write blobs back: a filesystem on each origin's own volume, or S3. */
export interface OriginStorage {
  backend: 'filesystem' | 's3';
  /** The filesystem backend's volume (one per origin). */
  filesystem: VolumeConfig;
  s3?: S3Install;
}

export interface S3Install {
  bucket: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  prefix: string;
  /**
   * A Secret holding AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally
   * AWS_SESSION_TOKEN), given to the origins as environment; absent, the AWS SDK's default chain
   * (e.g. a web identity from the ServiceAccount) finds the credentials.
   */
  credentialsSecret?: string;
}

export interface NodeInstall extends Placement {
  resources: Resources;
  /** containerd's socket on the host. */
  containerdSocket: string;
  /** krill's socket directory on the host; the CRI socket is `<socketDir>/cri.sock`. */
  socketDir: string;
  /** The agent's blob cache on the host. */
  cacheDir: string;
  /** The cache's byte capacity; absent, the agent's default (20 GiB). */
  cacheCapacityBytes?: number;
  /** How PullImage treats hosts no rule names (see README, "Node"). */
  defaultMode: PullMode;
  registries: Array<{ host: string; mode: PullMode; repositoryPrefix?: string }>;
  /** The DaemonSet's priority: kubelet pulls images through it, so by default it is node-critical. */
  priorityClassName: string;
  /**
   * The node install script's watchdog beside the daemon (install/node/README.md): it points
   * kubelet's image service at krill's socket once the socket answers, and back when it stays
   * down. `containerdMirror` also adds the local registry as containerd's hosts.toml mirror.
   */
  kubelet: { switch: boolean; intervalSeconds: number; failures: number; containerdMirror: boolean };
}

/*
 * Resource defaults are requests a small cluster can hold and memory limits well above what each
 * component was seen to use moving GiB images in the lab; no CPU limits, because throttling a
 * process that moves bytes at link speed only makes every pull slower.
 */
export const installConfigSchema: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    namespace: { type: 'string', pattern: DNS_LABEL, default: 'krill' },
    clusterDomain: { type: 'string', pattern: DNS_NAME, default: 'cluster.local' },
    membership: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        mode: { enum: ['dns', 'static'], default: 'dns' },
        // The components' own default: a scaled or restarted member joins every ring within 10 s.
        refreshMs: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 10_000 },
      },
    },
    image: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        repository: { type: 'string', minLength: 1, default: 'krill' },
        tag: { type: 'string', pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$', default: '0.1.0' },
        digest: { type: 'string', pattern: '^sha256:[a-f0-9]{64}$' },
        // IfNotPresent: a node daemon restarting must not need a pull (it may be kubelet's image service).
        pullPolicy: { enum: ['Always', 'IfNotPresent', 'Never'], default: 'IfNotPresent' },
        pullSecrets: { type: 'array', items: { type: 'string', pattern: DNS_NAME }, default: [] },
      },
    },
    logLevel: logLevelSchema,
    ports: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        proxy: port(15000), originPeer: port(15001), origin: port(15002), tracker: port(15003),
        buildIndex: port(15004), agent: port(15005), agentPeer: port(15006),
      },
    },
    origin: serviceSchema({ replicas: 3, requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '2Gi' } }, {
      // Three copies survive the loss of any two origins (the origin's own default).
      blobReplicas: { type: 'integer', minimum: 1, maximum: 16, default: 3 },
      volume: volumeSchema('100Gi'),
      capacityBytes: { type: 'integer', minimum: 1 },
      storage: {
        type: 'object', additionalProperties: false, default: {},
        properties: {
          backend: { enum: ['filesystem', 's3'], default: 'filesystem' },
          filesystem: volumeSchema('200Gi'),
          s3: {
            type: 'object', additionalProperties: false, required: ['bucket'],
            properties: {
              bucket: { type: 'string', minLength: 3, maxLength: 63 },
              region: { type: 'string', minLength: 1, default: 'us-east-1' },
              endpoint: { type: 'string', pattern: '^https?://' },
              forcePathStyle: { type: 'boolean', default: false },
              prefix: { type: 'string', pattern: '^(?!/)', default: '' },
              credentialsSecret: { type: 'string', pattern: DNS_NAME },
            },
          },
        },
        // `required` in the condition: with no backend given, the default (filesystem) applies.
        if: { required: ['backend'], properties: { backend: { const: 's3' } } },
        then: { required: ['s3'] },
      },
    }),
    // Two trackers: any one can die and agents fail over to the other.
    tracker: serviceSchema({ replicas: 2, requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } }),
    // One: each build-index keeps its tags in its own SQLite file, with no replication between
    // instances, so a second one would answer from a different set of tags.
    buildIndex: serviceSchema({ replicas: 1, maxReplicas: 1, requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } }, {
      volume: volumeSchema('1Gi'),
    }),
    proxy: serviceSchema({ replicas: 2, requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } }, {
      serviceType: { enum: ['ClusterIP', 'NodePort', 'LoadBalancer'], default: 'ClusterIP' },
    }),
    node: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        resources: resourcesSchema({ cpu: '250m', memory: '512Mi' }, { memory: '2Gi' }),
        // An empty key with Exists matches every taint: the daemon must run wherever pods pull images.
        ...placementProperties([{ operator: 'Exists' }]),
        containerdSocket: { type: 'string', pattern: '^/', default: '/run/containerd/containerd.sock' },
        socketDir: { type: 'string', pattern: '^/', default: '/run/krill' },
        cacheDir: { type: 'string', pattern: '^/', default: '/var/lib/krill/agent' },
        cacheCapacityBytes: { type: 'integer', minimum: 1 },
        defaultMode: { ...pullMode, default: 'auto' },
        registries: {
          type: 'array', default: [],
          items: {
            type: 'object', additionalProperties: false, required: ['host', 'mode'],
            properties: { host: { type: 'string', minLength: 1 }, mode: pullMode, repositoryPrefix: { type: 'string' } },
          },
        },
        priorityClassName: { type: 'string', pattern: DNS_NAME, default: 'system-node-critical' },
        kubelet: {
          type: 'object', additionalProperties: false, default: {},
          properties: {
            switch: { type: 'boolean', default: true },
            // The script's defaults: a check every 10 s, a revert after three misses (30 s).
            intervalSeconds: { type: 'integer', minimum: 1, default: 10 },
            failures: { type: 'integer', minimum: 1, default: 3 },
            containerdMirror: { type: 'boolean', default: false },
          },
        },
      },
    },
    tls: {
      type: 'object', additionalProperties: false, default: {},
      properties: Object.fromEntries(['origin', 'tracker', 'buildIndex', 'proxy', 'node'].map((c) => [c, { type: 'string', pattern: DNS_NAME }])),
    },
  },
};

/** The environment prefix of install-config overrides: KRILL_INSTALL_ORIGIN__REPLICAS=5. */
export const INSTALL_ENV_PREFIX = 'KRILL_INSTALL';

/**
 * Reads an install config (YAML file, then KRILL_INSTALL_* overrides), fills defaults and checks
 * it; errors are InvalidArgument (ERR_CONFIG_INVALID) naming the key, as for every krill config.
 */
export function loadInstallConfig(options: { file?: string | undefined; env?: Record<string, string | undefined> } = {}): InstallConfig {
  return checked(loadConfig<InstallConfig>({ file: options.file, schema: installConfigSchema, env: options.env ?? {}, envPrefix: INSTALL_ENV_PREFIX }), options.file);
}

/** Validates an install config built in code (tests, devcluster defaults); `source` names it in errors. */
export function validateInstallConfig(doc: unknown, source?: string): InstallConfig {
  return checked(validateConfig<InstallConfig>(installConfigSchema, doc, source), source);
}

/** The defaults: what install/kubernetes/krill.yaml is rendered from. */
export function defaultInstallConfig(): InstallConfig {
  return validateInstallConfig({});
}

/** Checks across keys that a schema cannot express, with the same message shape as validateConfig. */
function checked(c: InstallConfig, source: string | undefined): InstallConfig {
  const where = source ? ` in ${source}` : '';
  const fail = (key: string, why: string, got: unknown) => {
    throw new InvalidArgumentError(`config key ${key}${where}: ${why} (got ${JSON.stringify(got)})`, { code: 'ERR_CONFIG_INVALID' });
  };
  // One pod listens on both, and the node daemon's two share the node's network.
  if (c.ports.originPeer === c.ports.origin) fail('ports.originPeer', 'must differ from ports.origin', c.ports.originPeer);
  if (c.ports.agentPeer === c.ports.agent) fail('ports.agentPeer', 'must differ from ports.agent', c.ports.agentPeer);
  const capacity = originCapacityBytes(c);
  if (capacity >= quantityBytes(c.origin.volume.size)) fail('origin.capacityBytes', `must be below origin.volume.size (${c.origin.volume.size})`, capacity);
  return c;
}

/** The origin store's capacity: as configured, or 80% of its volume. */
export function originCapacityBytes(c: InstallConfig): number {
  return c.origin.capacityBytes ?? Math.floor(quantityBytes(c.origin.volume.size) * 0.8);
}

const SUFFIX: Record<string, number> = {
  '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** Bytes of a volume size as VOLUME_SIZE admits it (`100Gi`, `500G`, `1073741824`). */
export function quantityBytes(size: string): number {
  const m = /^([0-9]+)([A-Za-z]*)$/.exec(size);
  const unit = m ? SUFFIX[m[2]!] : undefined;
  if (!m || unit === undefined) throw new InvalidArgumentError(`volume size ${JSON.stringify(size)}: not a whole number of bytes with a suffix`, { code: 'ERR_CONFIG_INVALID' });
  return Number(m[1]) * unit;
}

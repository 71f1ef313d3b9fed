import { createHash } from 'node:crypto';
import type { IDaemonSet, IDeployment, IStatefulSet } from 'kubernetes-models/apps/v1';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type {
  IConfigMap, IContainer, IContainerPort, IEnvVar, INamespace, IPodSecurityContext, IPodSpec, IProbe, ISecurityContext, IService,
  IServiceAccount, IVolume, IVolumeMount,
} from 'kubernetes-models/v1';
import { stringify } from 'yaml';
import type { ComponentConfig } from './component-configs.js';
import type { InstallConfig, Placement, Resources } from './install-config.js';
import { CONFIG_DIR, configFile, imageRef, labels, objectName, selectorLabels, type Component } from './names.js';

/** Object metadata, as kubernetes-models types it. */
export type ObjectMeta = NonNullable<IConfigMap['metadata']>;

/** Every kind `krill manifests` renders. */
export type KubeObject = INamespace | IServiceAccount | IConfigMap | IService | IStatefulSet | IDeployment | IDaemonSet | IPodDisruptionBudget;

/** One rendered object and the comment printed above it (why it is as it is). */
export interface Rendered {
  comment?: string;
  object: KubeObject;
}

/** The install config's key for a component (`buildIndex` for build-index). */
const installKey = (c: Component) => (c === 'build-index' ? 'buildIndex' : c);

export function meta(install: InstallConfig, c: Component, extra: Partial<ObjectMeta> = {}): ObjectMeta {
  return { name: objectName(c), namespace: install.namespace, labels: labels(install, c), ...extra };
}

/**
 * A component's ServiceAccount. No component calls the Kubernetes API (membership is the static
 * list in its config), so none gets a token and no Role or RoleBinding exists.
 */
export function serviceAccount(install: InstallConfig, c: Component): IServiceAccount {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(install, c), automountServiceAccountToken: false };
}

/** The ConfigMap holding `<component>.yaml`, and the digest of its text for the pods' annotation. */
export function configMap(install: InstallConfig, c: Component, config: ComponentConfig): { object: IConfigMap; digest: string } {
  // No anchors and aliases for objects that appear twice: every key is spelled out for the reader.
  const text = stringify(config, { lineWidth: 0, aliasDuplicateObjects: false });
  return {
    object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(install, c), data: { [configFile(c)]: text } },
    digest: createHash('sha256').update(text).digest('hex'),
  };
}

/**
 * At most one pod of the component down at a time by eviction: with three origins and
 * blobReplicas 3, two owners of every blob stay up through a drain.
 */
export function disruptionBudget(install: InstallConfig, c: Component): IPodDisruptionBudget {
  return {
    apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: meta(install, c),
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels(c) } },
  };
}

/**
 * Probes on the component's HTTP port: `/health` answers as soon as the process serves HTTP,
 * `/ready` when it can take traffic (the node daemon: when its CRI socket listens too). The
 * startup probe gives a process 5 minutes (150 × 2 s) to open a large store before liveness
 * counts; liveness then allows a minute of silence (6 × 10 s), so an event loop busy moving a GiB
 * blob is not restarted mid-transfer.
 */
export function probes(port: string, host?: string): Pick<IContainer, 'startupProbe' | 'livenessProbe' | 'readinessProbe'> {
  const get = (path: string) => ({ httpGet: { path, port, ...(host ? { host } : {}) } });
  const startupProbe: IProbe = { ...get('/health'), periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 150 };
  const livenessProbe: IProbe = { ...get('/health'), periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 };
  const readinessProbe: IProbe = { ...get('/ready'), periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 3 };
  return { startupProbe, livenessProbe, readinessProbe };
}

/** Prometheus' conventional pod annotations (kubernetes_sd with the pod role reads them). */
export function scrapeAnnotations(port: number): Record<string, string> {
  return { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' };
}

/** The image's non-root user; 65532 is the usual "nonroot" uid of minimal images. */
export const NON_ROOT_ID = 65532;

/** Cluster services run as a non-root user; fsGroup makes their volumes writable to it. */
export const restrictedPod: IPodSecurityContext = {
  runAsNonRoot: true, runAsUser: NON_ROOT_ID, runAsGroup: NON_ROOT_ID, fsGroup: NON_ROOT_ID,
  // Only a volume whose root is not yet the group's is walked, not every blob on each restart.
  fsGroupChangePolicy: 'OnRootMismatch',
  seccompProfile: { type: 'RuntimeDefault' },
};

/** No capability, no escalation, a read-only image: the cluster services need nothing more. */
export const restrictedContainer: ISecurityContext = {
  allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] },
};

export interface ContainerOptions {
  ports: IContainerPort[];
  env?: IEnvVar[];
  /** Mounts besides the config file, /tmp and the TLS secret. */
  mounts?: IVolumeMount[];
  resources: Resources;
  securityContext: ISecurityContext;
  /** The named port the probes use, and the host to probe (the node daemon's loopback). */
  probePort: string;
  probeHost?: string;
}

/** The one `krill` container of a component's pod: `krill <component> --config /etc/krill/<component>.yaml`. */
export function krillContainer(install: InstallConfig, c: Component, o: ContainerOptions): IContainer {
  return {
    name: c,
    image: imageRef(install),
    imagePullPolicy: install.image.pullPolicy,
    command: ['krill', c, '--config', `${CONFIG_DIR}/${configFile(c)}`],
    ...(o.env && o.env.length > 0 ? { env: o.env } : {}),
    ports: o.ports,
    resources: { ...o.resources },
    volumeMounts: [
      { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
      // The root filesystem is read-only; SQLite and Node may still want a temporary directory.
      { name: 'tmp', mountPath: '/tmp' },
      ...(tlsSecret(install, c) ? [{ name: 'tls', mountPath: `${CONFIG_DIR}/tls`, readOnly: true }] : []),
      ...(o.mounts ?? []),
    ],
    ...probes(o.probePort, o.probeHost),
    securityContext: o.securityContext,
  };
}

const tlsSecret = (install: InstallConfig, c: Component) => install.tls[installKey(c)];

/**
 * The pod spec every component shares: its ServiceAccount, placement, the config, /tmp and TLS
 * volumes, and no Service environment variables: Kubernetes would otherwise inject
 * KRILL_ORIGIN_PORT and the like, which share krill's override prefix.
 */
export function podSpec(install: InstallConfig, c: Component, o: {
  placement: Placement; container: IContainer; securityContext: IPodSecurityContext; volumes?: IVolume[]; extra?: Partial<IPodSpec>;
  /** More containers of the pod (the node DaemonSet's install watchdog). */
  sidecars?: IContainer[];
}): IPodSpec {
  const tls = tlsSecret(install, c);
  return {
    serviceAccountName: objectName(c),
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    ...(install.image.pullSecrets.length > 0 ? { imagePullSecrets: install.image.pullSecrets.map((name) => ({ name })) } : {}),
    ...(Object.keys(o.placement.nodeSelector).length > 0 ? { nodeSelector: { ...o.placement.nodeSelector } } : {}),
    ...(o.placement.tolerations.length > 0 ? { tolerations: o.placement.tolerations.map((t) => ({ ...t })) } : {}),
    ...o.extra,
    // SIGTERM drains within shutdownTimeoutMs (30 s); 15 s more before the kubelet kills.
    terminationGracePeriodSeconds: 45,
    securityContext: o.securityContext,
    containers: [o.container, ...(o.sidecars ?? [])],
    volumes: [
      { name: 'config', configMap: { name: objectName(c) } },
      { name: 'tmp', emptyDir: {} },
      ...(tls ? [{ name: 'tls', secret: { secretName: tls } }] : []),
      ...(o.volumes ?? []),
    ],
  };
}

/** The pod template's metadata: labels, scrape annotations and the config's digest, so a changed config rolls the pods. */
export function podMeta(install: InstallConfig, c: Component, digest: string, scrapePort?: number): ObjectMeta {
  return {
    labels: labels(install, c),
    annotations: { ...(scrapePort === undefined ? {} : scrapeAnnotations(scrapePort)), 'checksum/config': digest },
  };
}

/** Spread pods over nodes where possible; a small cluster still schedules them all. */
export function spreadOverNodes(c: Component): Partial<IPodSpec> {
  return {
    topologySpreadConstraints: [{
      maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selectorLabels(c) },
    }],
  };
}

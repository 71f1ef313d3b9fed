import { envName } from '@krill/lib';
import type { IDeployment, IStatefulSet } from 'kubernetes-models/apps/v1';
import type { IEnvVar, IPersistentVolumeClaim, IService, IServicePort } from 'kubernetes-models/v1';
import type { InstallConfig, VolumeConfig } from './install-config.js';
import { objectName, originSelfUrl, selectorLabels, type Component } from './names.js';
import { krillContainer, meta, podMeta, podSpec, restrictedContainer, restrictedPod, spreadOverNodes, type Rendered } from './pod-parts.js';

/** Paths inside the cluster services' pods; each is a volume of its own. */
export const ORIGIN_STORE_DIR = '/var/lib/krill/origin';
export const ORIGIN_BACKEND_DIR = '/var/lib/krill/backend';
export const BUILD_INDEX_DB = '/var/lib/krill/build-index/tags.db';
export const PROXY_UPLOAD_DIR = '/var/lib/krill/proxy-uploads';

/** Each component's ConfigMap digest, for the pod templates' `checksum/config` annotation. */
export type ConfigDigests = Record<Component, string>;

const tcp = (name: string, port: number): IServicePort => ({ name, port, targetPort: name, protocol: 'TCP' });
const fieldEnv = (name: string, fieldPath: string): IEnvVar => ({ name, valueFrom: { fieldRef: { fieldPath } } });

/**
 * A headless Service: one DNS name per pod (`krill-origin-0.krill-origin.<ns>.svc.<domain>`) and
 * one SRV record per pod and port (`_http._tcp.krill-origin.<ns>.svc.<domain>`, the DNS
 * membership), published before the pod is ready: the ring is every pod that exists, so a pod
 * restarting keeps its place (and its blobs) while clients fail over past it, and components that
 * start together resolve each other at once.
 */
function headlessService(install: InstallConfig, c: Component, ports: IServicePort[]): IService {
  return {
    apiVersion: 'v1', kind: 'Service', metadata: meta(install, c),
    spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector: selectorLabels(c), ports },
  };
}

function claim(name: string, v: VolumeConfig): IPersistentVolumeClaim {
  return {
    apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: v.size } }, ...(v.storageClassName ? { storageClassName: v.storageClassName } : {}) },
  };
}

const TRACKER_COMMENT = [
  'Trackers: a StatefulSet so that each has a stable name (a blob belongs to one tracker by rendezvous hashing over',
  'their URLs, so they cannot share one load-balanced address); no volumes, swarms are in memory.',
].join('\n');
const ORIGIN_COMMENT = [
  'Origins: stable names and volumes (the store; with the filesystem backend also a backend volume of its own, so a',
  'blob outlives an origin as long as one of its blobReplicas owners keeps its volume; S3 keeps it beyond the cluster).',
].join('\n');

/**
 * The trackers: a StatefulSet, not a Deployment, though they keep no state on disk. A digest
 * belongs to one tracker by rendezvous hashing over the trackers' URLs, so each tracker must be
 * addressable by itself; behind one load-balanced Service, announces for a blob would scatter
 * over trackers that never see each other's peers.
 */
export function trackerObjects(install: InstallConfig, digests: ConfigDigests): Rendered[] {
  const t = install.tracker;
  const container = krillContainer(install, 'tracker', {
    ports: [{ name: 'http', containerPort: install.ports.tracker, protocol: 'TCP' }],
    resources: t.resources, securityContext: restrictedContainer, probePort: 'http',
  });
  const set: IStatefulSet = {
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: meta(install, 'tracker'),
    spec: {
      serviceName: objectName('tracker'), replicas: t.replicas, podManagementPolicy: 'Parallel',
      selector: { matchLabels: selectorLabels('tracker') },
      template: {
        metadata: podMeta(install, 'tracker', digests.tracker, install.ports.tracker),
        spec: podSpec(install, 'tracker', { placement: t, container, securityContext: restrictedPod, extra: spreadOverNodes('tracker') }),
      },
    },
  };
  return [
    { comment: TRACKER_COMMENT, object: set },
    { object: headlessService(install, 'tracker', [tcp('http', install.ports.tracker)]) },
  ];
}

/**
 * The origins: a StatefulSet whose pods keep their volumes and names across restarts, so the
 * hash ring (every origin's URL) stays the same. Each pod learns its own URL on the ring and
 * its pod IP (told to agents for the peer wire) from the environment, as overrides of the
 * shared config file.
 */
export function originObjects(install: InstallConfig, digests: ConfigDigests): Rendered[] {
  const o = install.origin;
  const s3 = o.storage.backend === 's3' ? o.storage.s3 : undefined;
  const fsBackend = o.storage.backend === 'filesystem';
  const env: IEnvVar[] = [
    fieldEnv('POD_NAME', 'metadata.name'),
    { name: envName('KRILL_ORIGIN', ['advertiseUrl']), value: originSelfUrl(install) },
    fieldEnv(envName('KRILL_ORIGIN', ['peer', 'advertise']), 'status.podIP'),
    // The S3 backend leaves credentials to the AWS SDK's default chain, which reads these.
    ...(s3?.credentialsSecret
      ? ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'].map((key) => ({
          name: key, valueFrom: { secretKeyRef: { name: s3.credentialsSecret!, key, optional: key === 'AWS_SESSION_TOKEN' } },
        }))
      : []),
  ];
  const container = krillContainer(install, 'origin', {
    ports: [
      { name: 'http', containerPort: install.ports.origin, protocol: 'TCP' },
      { name: 'peer', containerPort: install.ports.originPeer, protocol: 'TCP' },
    ],
    env, resources: o.resources, securityContext: restrictedContainer, probePort: 'http',
    mounts: [{ name: 'store', mountPath: ORIGIN_STORE_DIR }, ...(fsBackend ? [{ name: 'backend', mountPath: ORIGIN_BACKEND_DIR }] : [])],
  });
  const set: IStatefulSet = {
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: meta(install, 'origin'),
    spec: {
      serviceName: objectName('origin'), replicas: o.replicas,
      // Origins do not wait for each other to start: the ring is the static list either way.
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: selectorLabels('origin') },
      template: {
        metadata: podMeta(install, 'origin', digests.origin, install.ports.origin),
        spec: podSpec(install, 'origin', { placement: o, container, securityContext: restrictedPod, extra: spreadOverNodes('origin') }),
      },
      volumeClaimTemplates: [claim('store', o.volume), ...(fsBackend ? [claim('backend', o.storage.filesystem)] : [])],
    },
  };
  return [
    { comment: ORIGIN_COMMENT, object: set },
    { object: headlessService(install, 'origin', [tcp('http', install.ports.origin), tcp('peer', install.ports.originPeer)]) },
  ];
}

/** The build-index: one pod with its SQLite tags on a volume of its own. */
export function buildIndexObjects(install: InstallConfig, digests: ConfigDigests): Rendered[] {
  const b = install.buildIndex;
  const container = krillContainer(install, 'build-index', {
    ports: [{ name: 'http', containerPort: install.ports.buildIndex, protocol: 'TCP' }],
    resources: b.resources, securityContext: restrictedContainer, probePort: 'http',
    mounts: [{ name: 'data', mountPath: BUILD_INDEX_DB.slice(0, BUILD_INDEX_DB.lastIndexOf('/')) }],
  });
  const set: IStatefulSet = {
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: meta(install, 'build-index'),
    spec: {
      serviceName: objectName('build-index'), replicas: b.replicas,
      selector: { matchLabels: selectorLabels('build-index') },
      template: {
        metadata: podMeta(install, 'build-index', digests['build-index'], install.ports.buildIndex),
        spec: podSpec(install, 'build-index', { placement: b, container, securityContext: restrictedPod }),
      },
      volumeClaimTemplates: [claim('data', b.volume)],
    },
  };
  const service: IService = {
    apiVersion: 'v1', kind: 'Service', metadata: meta(install, 'build-index'),
    spec: { selector: selectorLabels('build-index'), ports: [tcp('http', install.ports.buildIndex)] },
  };
  return [{ comment: 'The build-index: tags in SQLite on its own volume; one instance, as tags are not replicated between build-indexes.', object: set }, { object: service }];
}

/** The push proxy: stateless but for upload sessions, which live in one proxy's memory. */
export function proxyObjects(install: InstallConfig, digests: ConfigDigests): Rendered[] {
  const p = install.proxy;
  const container = krillContainer(install, 'proxy', {
    ports: [{ name: 'http', containerPort: install.ports.proxy, protocol: 'TCP' }],
    resources: p.resources, securityContext: restrictedContainer, probePort: 'http',
    mounts: [{ name: 'uploads', mountPath: PROXY_UPLOAD_DIR }],
  });
  const deployment: IDeployment = {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta(install, 'proxy'),
    spec: {
      replicas: p.replicas,
      selector: { matchLabels: selectorLabels('proxy') },
      template: {
        metadata: podMeta(install, 'proxy', digests.proxy, install.ports.proxy),
        spec: podSpec(install, 'proxy', {
          placement: p, container, securityContext: restrictedPod, volumes: [{ name: 'uploads', emptyDir: {} }], extra: spreadOverNodes('proxy'),
        }),
      },
    },
  };
  const service: IService = {
    apiVersion: 'v1', kind: 'Service', metadata: meta(install, 'proxy'),
    // A client's upload session (POST, PATCH..., PUT) must reach the proxy that opened it.
    spec: { type: p.serviceType, sessionAffinity: 'ClientIP', selector: selectorLabels('proxy'), ports: [tcp('http', install.ports.proxy)] },
  };
  return [{ comment: 'The push proxy (OCI distribution API); push with skopeo or docker to this Service.', object: deployment }, { object: service }];
}

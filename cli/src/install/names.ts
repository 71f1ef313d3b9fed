import type { DnsMembersConfig } from '@krill/lib';
import type { InstallConfig } from './install-config.js';

/** The components `krill manifests` renders, in the order their objects are printed. */
export const COMPONENTS = ['tracker', 'origin', 'build-index', 'proxy', 'node'] as const;
export type Component = (typeof COMPONENTS)[number];

/**
 * The membership every component is given: each origin's and tracker's own URL, and the
 * build-index's; with `dns`, the origins and trackers are the SRV records of their headless
 * Services instead, and `origins` and `trackers` are what they resolve to at the rendered scale.
 */
export interface ClusterUrls {
  origins: string[];
  trackers: string[];
  buildIndex: string[];
  dns?: { origins: DnsMembersConfig; trackers: DnsMembersConfig };
}

/** Every object of a component is named `krill-<component>` (its pods `krill-origin-0`, ...). */
export const objectName = (c: Component): string => `krill-${c}`;

/** Where a component's config file is mounted: `krill <component> --config /etc/krill/<component>.yaml`. */
export const CONFIG_DIR = '/etc/krill';
export const configFile = (c: Component): string => `${c}.yaml`;

/** The labels a component's pods are selected by; the selector is immutable, so no version here. */
export function selectorLabels(c: Component): Record<string, string> {
  return { 'app.kubernetes.io/name': 'krill', 'app.kubernetes.io/component': c };
}

/** Labels of every object: the selector labels plus the part-of and version labels. */
export function labels(install: InstallConfig, c?: Component): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'krill',
    ...(c ? { 'app.kubernetes.io/component': c } : {}),
    'app.kubernetes.io/part-of': 'krill',
    'app.kubernetes.io/version': install.image.tag,
  };
}

/** A Service's fully qualified name: `krill-origin.krill.svc.cluster.local`. */
const serviceHost = (install: InstallConfig, c: Component) => `${objectName(c)}.${install.namespace}.svc.${install.clusterDomain}`;

/**
 * The stable DNS name of StatefulSet pod `i` behind its headless Service, fully qualified: the
 * target of the Service's SRV records, so a static list and a DNS answer name a pod alike.
 */
function podHost(install: InstallConfig, c: Component, i: number): string {
  return `${objectName(c)}-${i}.${serviceHost(install, c)}`;
}

/** The SRV records of a headless Service's `http` port: one per pod, target its stable name. */
function srvMembers(install: InstallConfig, c: Component): DnsMembersConfig {
  return { name: `_http._tcp.${serviceHost(install, c)}`, records: 'SRV', scheme: 'http', refreshMs: install.membership.refreshMs };
}

/**
 * The static membership of an installed cluster: every origin and every tracker by its pod's
 * stable DNS name behind the headless Service (`krill-origin-0.krill-origin.<ns>.svc:15002`),
 * and the build-index by its Service. This is the one place the lists are made; the origins'
 * `cluster.origins`, the trackers' and agents' `origins.urls`, and everyone's `trackers.urls`
 * come from here.
 */
export function clusterUrls(install: InstallConfig): ClusterUrls {
  const each = (c: Component, n: number, port: number) => Array.from({ length: n }, (_, i) => `http://${podHost(install, c, i)}:${port}`);
  return {
    origins: each('origin', install.origin.replicas, install.ports.origin),
    trackers: each('tracker', install.tracker.replicas, install.ports.tracker),
    buildIndex: [`http://${serviceHost(install, 'build-index')}:${install.ports.buildIndex}`],
    ...(install.membership.mode === 'dns' ? { dns: { origins: srvMembers(install, 'origin'), trackers: srvMembers(install, 'tracker') } } : {}),
  };
}

/**
 * An origin pod's own URL, the same string as its entry in `clusterUrls().origins`, built from
 * the pod's name by the kubelet's `$(POD_NAME)` expansion in the container's environment.
 */
export function originSelfUrl(install: InstallConfig): string {
  return `http://$(POD_NAME).${serviceHost(install, 'origin')}:${install.ports.origin}`;
}

/** The image every container runs: `repository:tag`, or `repository:tag@digest` when pinned. */
export function imageRef(install: InstallConfig): string {
  return `${install.image.repository}:${install.image.tag}${install.image.digest ? `@${install.image.digest}` : ''}`;
}

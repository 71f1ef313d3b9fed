import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { validateConfig, type DnsMembersConfig, type Schema } from '@krill/lib';
import { buildIndexConfigSchema, originConfigSchema, proxyConfigSchema, trackerConfigSchema } from '@krill/cluster-services';
import { agentConfigSchema, nodeConfigSchema } from '@krill/node-daemon';
import type { IContainer, IPodTemplateSpec } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { main } from '../main.js';
import { defaultInstallConfig, validateInstallConfig, type InstallConfig } from './install-config.js';
import { validateKubeObjects } from './kube-validate.js';
import { COMPONENTS, clusterUrls, configFile, type Component } from './names.js';
import type { KubeObject } from './pod-parts.js';
import { REGENERATE, renderManifests, renderObjects } from './render.js';

const COMMITTED = new URL('../../../install/kubernetes/krill.yaml', import.meta.url);

/** A cluster unlike the defaults in every way the install config allows. */
const custom = (extra: Partial<InstallConfig> = {}): InstallConfig => validateInstallConfig({
  namespace: 'images',
  clusterDomain: 'k8s.example',
  membership: { refreshMs: 30_000 },
  image: { repository: 'registry.example/krill', tag: 'v2', pullPolicy: 'Always', pullSecrets: ['regcred'] },
  logLevel: 'debug',
  ports: { proxy: 5000, originPeer: 7001, origin: 7002, tracker: 7003, buildIndex: 7004, agent: 7005, agentPeer: 7006 },
  origin: {
    replicas: 5, blobReplicas: 2, volume: { size: '500Gi', storageClassName: 'fast' },
    storage: { backend: 's3', s3: { bucket: 'krill-blobs', endpoint: 'http://minio.storage:9000', forcePathStyle: true, credentialsSecret: 'krill-s3' } },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'krill', effect: 'NoSchedule' }],
  },
  tracker: { replicas: 3, nodeSelector: { pool: 'infra' } },
  proxy: { serviceType: 'LoadBalancer', resources: { requests: { cpu: 1, memory: '512Mi' } } },
  node: { socketDir: '/var/run/krill', cacheDir: '/data/krill', cacheCapacityBytes: 10_000_000_000, registries: [{ host: 'registry.example', mode: 'krill' }] },
  tls: { origin: 'krill-origin-tls', node: 'krill-node-tls' },
  ...extra,
});

const SCHEMAS: Record<Component, Schema> = {
  tracker: trackerConfigSchema, origin: originConfigSchema, 'build-index': buildIndexConfigSchema, proxy: proxyConfigSchema, node: nodeConfigSchema,
};

const find = (objects: KubeObject[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata?.name === name);
const template = (o: KubeObject | undefined) => (o as { spec: { template: IPodTemplateSpec } }).spec.template;
const containerOf = (o: KubeObject | undefined): IContainer => template(o).spec!.containers[0]!;
/** A component's config as its ConfigMap holds it. */
const configIn = (objects: KubeObject[], c: Component) => parse((find(objects, 'ConfigMap', `krill-${c}`) as { data: Record<string, string> }).data[configFile(c)]!) as Record<string, unknown>;

async function run(argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  const code = await main(argv, { env: {}, stdout, stderr, stopSignal: new Promise(() => {}) });
  return { code, out, err };
}

describe('krill manifests', () => {
  it('renders, from the defaults, objects that all validate against the Kubernetes schemas', async () => {
    const objects = renderObjects(defaultInstallConfig()).map((r) => r.object);
    await validateKubeObjects(objects);
    expect(objects.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([
      'Namespace/krill',
      ...COMPONENTS.map((c) => `ServiceAccount/krill-${c}`),
      ...COMPONENTS.map((c) => `ConfigMap/krill-${c}`),
      'StatefulSet/krill-tracker', 'Service/krill-tracker',
      'StatefulSet/krill-origin', 'Service/krill-origin',
      'StatefulSet/krill-build-index', 'Service/krill-build-index',
      'Deployment/krill-proxy', 'Service/krill-proxy',
      'DaemonSet/krill-node',
      'PodDisruptionBudget/krill-origin', 'PodDisruptionBudget/krill-tracker', 'PodDisruptionBudget/krill-build-index', 'PodDisruptionBudget/krill-proxy',
    ]);
  });

  it('renders a non-default config (S3, 5 origins, another namespace and ports) as valid objects that carry it', async () => {
    const install = custom();
    const objects = renderObjects(install).map((r) => r.object);
    await validateKubeObjects(objects);
    expect(objects.every((o) => o.kind === 'Namespace' ? o.metadata?.name === 'images' : o.metadata?.namespace === 'images')).toBe(true);
    const origin = configIn(objects, 'origin') as { cluster: { dns: DnsMembersConfig; replicas: number }; backends: unknown[]; listen: { port: number } };
    // The origins find each other by the SRV records of their headless Service's `http` port.
    const originsDns = { name: '_http._tcp.krill-origin.images.svc.k8s.example', records: 'SRV', scheme: 'http', refreshMs: 30_000 };
    expect(origin.cluster.dns).toEqual(originsDns);
    expect(origin.cluster.replicas).toBe(2);
    expect((find(objects, 'Service', 'krill-origin') as { spec: { ports: Array<{ name: string; port: number }> } }).spec.ports[0]).toMatchObject({ name: 'http', port: 7002 });
    for (const c of ['tracker', 'build-index', 'proxy', 'node'] as const) expect((configIn(objects, c) as { origins: { dns: unknown } }).origins.dns).toEqual(originsDns);
    const trackersDns = { name: '_http._tcp.krill-tracker.images.svc.k8s.example', records: 'SRV', scheme: 'http', refreshMs: 30_000 };
    for (const c of ['origin', 'node'] as const) expect((configIn(objects, c) as { trackers: { dns: unknown } }).trackers).toEqual({ dns: trackersDns });
    // membership: static lists every pod by name instead.
    const listed = configIn(renderObjects(custom({ membership: { mode: 'static', refreshMs: 10_000 } })).map((r) => r.object), 'origin') as { cluster: { origins: string[] }; trackers: { urls: string[] } };
    expect(listed.cluster.origins).toEqual([0, 1, 2, 3, 4].map((i) => `http://krill-origin-${i}.krill-origin.images.svc.k8s.example:7002`));
    expect(listed.trackers.urls).toHaveLength(3);
    expect(origin.backends).toEqual([{ namespace: '.*', s3: { bucket: 'krill-blobs', region: 'us-east-1', forcePathStyle: true, prefix: '', endpoint: 'http://minio.storage:9000' } }]);
    const set = find(objects, 'StatefulSet', 'krill-origin') as { spec: { replicas: number; volumeClaimTemplates: Array<{ metadata: { name: string }; spec: { storageClassName?: string } }> } };
    expect(set.spec.replicas).toBe(5);
    // S3 needs no backend volume; the store's claim takes the storage class.
    expect(set.spec.volumeClaimTemplates.map((v) => [v.metadata.name, v.spec.storageClassName])).toEqual([['store', 'fast']]);
    const env = containerOf(set).env!;
    expect(env.find((e) => e.name === 'AWS_SECRET_ACCESS_KEY')?.valueFrom?.secretKeyRef).toEqual({ name: 'krill-s3', key: 'AWS_SECRET_ACCESS_KEY', optional: false });
    expect(containerOf(set).volumeMounts!.find((m) => m.name === 'tls')).toEqual({ name: 'tls', mountPath: '/etc/krill/tls', readOnly: true });
    expect(template(set).spec!.tolerations).toEqual([{ key: 'dedicated', operator: 'Equal', value: 'krill', effect: 'NoSchedule' }]);
    expect(containerOf(find(objects, 'Deployment', 'krill-proxy')).image).toBe('registry.example/krill:v2');
    // Pinned by digest, every container (the node daemon's watchdog too) runs exactly that build.
    const digest = `sha256:${'ab'.repeat(32)}`;
    const pinned = renderObjects(custom({ image: { ...install.image, digest } })).map((r) => r.object);
    const images = pinned.flatMap((o) => (o as { spec?: { template?: IPodTemplateSpec } }).spec?.template?.spec?.containers.map((c) => c.image) ?? []);
    expect(images.length).toBeGreaterThanOrEqual(6);
    expect(new Set(images)).toEqual(new Set([`registry.example/krill:v2@${digest}`]));
    expect((find(objects, 'Service', 'krill-proxy') as { spec: { type: string } }).spec.type).toBe('LoadBalancer');
    expect(template(find(objects, 'StatefulSet', 'krill-tracker')).spec!.nodeSelector).toEqual({ pool: 'infra' });
  });

  it('matches the committed install/kubernetes/krill.yaml byte for byte', () => {
    const committed = readFileSync(COMMITTED, 'utf8');
    expect(committed, `install/kubernetes/krill.yaml is stale; regenerate it with: ${REGENERATE}`).toBe(renderManifests(defaultInstallConfig()));
  });

  it('prints the rendering of --config as multi-document YAML, and the defaults without it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krill-manifests-'));
    writeFileSync(join(dir, 'install.yaml'), 'namespace: images\norigin: { replicas: 5 }\n');
    const r = await run(['manifests', '--config', join(dir, 'install.yaml')]);
    expect(r.code).toBe(0);
    const docs = parseAllDocuments(r.out).map((d) => d.toJS() as KubeObject);
    expect(docs).toHaveLength(renderObjects(defaultInstallConfig()).length);
    expect((find(docs, 'StatefulSet', 'krill-origin') as { spec: { replicas: number } }).spec.replicas).toBe(5);
    expect((await run(['manifests'])).out).toBe(readFileSync(COMMITTED, 'utf8'));
  });

  it('rejects a bad install config naming the key, before printing anything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krill-manifests-'));
    const file = join(dir, 'install.yaml');
    writeFileSync(file, 'origin:\n  storage: { backend: s3 }\n');
    const r = await run(['manifests', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toContain(`config key origin.storage.s3 in ${file}: is required`);
    writeFileSync(file, 'ports: { origin: 15001 }\n');
    expect((await run(['manifests', '--config', file])).err).toContain('config key ports.originPeer');
  });

  it('puts in each ConfigMap a config its component accepts, with the per-pod overrides on the ring', () => {
    for (const install of [defaultInstallConfig(), custom()]) {
      const objects = renderObjects(install).map((r) => r.object);
      for (const c of COMPONENTS) expect(() => validateConfig(SCHEMAS[c], configIn(objects, c), c)).not.toThrow();
      // Each origin's own URL (POD_NAME expanded) is its entry on the ring, so replication skips
      // itself: the name its SRV record targets (DNS), or its entry in cluster.origins (static).
      const env = containerOf(find(objects, 'StatefulSet', 'krill-origin')).env!;
      const self = env.find((e) => e.name === 'KRILL_ORIGIN_ADVERTISE_URL')!.value!;
      const ring = clusterUrls(install).origins;
      expect(ring.map((_, i) => self.replace('$(POD_NAME)', `krill-origin-${i}`))).toEqual(ring);
      expect(ring[0]).toBe(`http://krill-origin-0.krill-origin.${install.namespace}.svc.${install.clusterDomain}:${install.ports.origin}`);
      const listed = renderObjects({ ...install, membership: { mode: 'static', refreshMs: 10_000 } }).map((r) => r.object);
      expect((configIn(listed, 'origin') as { cluster: { origins: string[] } }).cluster.origins).toEqual(ring);
      expect(env.map((e) => e.name).indexOf('POD_NAME')).toBeLessThan(env.map((e) => e.name).indexOf('KRILL_ORIGIN_ADVERTISE_URL'));
    }
  });

  it('probes /health and /ready on each component\'s HTTP port and asks Prometheus to scrape the cluster services', () => {
    const install = custom();
    const objects = renderObjects(install).map((r) => r.object);
    const workloads: Array<[string, string, number]> = [
      ['StatefulSet', 'krill-tracker', 7003], ['StatefulSet', 'krill-origin', 7002], ['StatefulSet', 'krill-build-index', 7004],
      ['Deployment', 'krill-proxy', 5000], ['DaemonSet', 'krill-node', 7005],
    ];
    for (const [kind, name, port] of workloads) {
      const o = find(objects, kind, name);
      const c = containerOf(o);
      const portName = c.livenessProbe!.httpGet!.port;
      expect(c.ports!.find((p) => p.name === portName)?.containerPort).toBe(port);
      expect(c.livenessProbe!.httpGet!.path).toBe('/health');
      expect(c.readinessProbe!.httpGet!.path).toBe('/ready');
      expect(c.readinessProbe!.httpGet!.port).toBe(portName);
      expect(c.command).toEqual(['krill', name.slice('krill-'.length), '--config', `/etc/krill/${name.slice('krill-'.length)}.yaml`]);
      const annotations = template(o).metadata!.annotations!;
      if (kind === 'DaemonSet') expect(annotations['prometheus.io/scrape']).toBeUndefined();
      else expect(annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' });
    }
    // The headless Services publish every pod's name before it is ready, as the static lists need.
    for (const name of ['krill-origin', 'krill-tracker']) {
      expect((find(objects, 'Service', name) as { spec: object }).spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    }
  });

  it('defaults every port to the component\'s own default', () => {
    const defaults = (schema: Schema, doc: object) => validateConfig<{ listen: { port: number }; peer?: { port: number } }>(schema, doc);
    // A fresh object per key: the schema fills defaults into it (replicas into `origins`).
    const urls = () => ({ urls: ['http://o:1'] });
    const origins = urls();
    const { ports } = defaultInstallConfig();
    expect(ports.proxy).toBe(defaults(proxyConfigSchema, { origins, buildIndex: urls(), uploadDir: '/u' }).listen.port);
    expect(ports.origin).toBe(defaults(originConfigSchema, { store: { dir: '/s' } }).listen.port);
    expect(ports.originPeer).toBe(defaults(originConfigSchema, { store: { dir: '/s' }, peer: {} }).peer!.port);
    expect(ports.tracker).toBe(defaults(trackerConfigSchema, { origins }).listen.port);
    expect(ports.buildIndex).toBe(defaults(buildIndexConfigSchema, { origins, db: '/d' }).listen.port);
    const agent = defaults(agentConfigSchema, { origins, buildIndex: urls(), cache: { dir: '/c' } });
    expect([ports.agent, ports.agentPeer]).toEqual([agent.listen.port, agent.peer!.port]);
  });
});

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { extract } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import type { Descriptor } from '@krill/lib';
import * as helpers from '../kind/helpers.mjs';
import { BUSYBOX_PATH, writeOciArchive } from './fixtures/cri-images.js';
import type { BuiltImage } from './fixtures/oci-image.js';
import { startContainerd, type Containerd } from './harness/containerd.js';
import { KRILL_BIN } from './harness/krill-process.js';

/**
 * Issue 5 §4: conformance/kind/ (the kind e2e), checked without a Docker engine. The kind config,
 * krill's install config for it and the demo Deployment are read as kind, `krill manifests` and
 * kubectl would read them, and checked against each other and against the rendered node
 * DaemonSet; the node install script runs (dry) against a fake kind node built from the kind
 * config; run.sh's syntax and option handling; the demo image gen-image --busybox builds runs in
 * a real containerd; the report's parsing and checks on recorded inputs.
 */
const run = promisify(execFile);
const KIND = fileURLToPath(new URL('../kind/', import.meta.url));
const GEN_IMAGE = fileURLToPath(new URL('../dist/bin/gen-image.js', import.meta.url));
const NODE_INSTALL = fileURLToPath(new URL('../../install/node/krill-node-install.sh', import.meta.url));
const kindFile = (name: string) => readFileSync(join(KIND, name), 'utf8');

interface KindNode { role: string; image: string; extraMounts?: Array<{ hostPath: string; containerPath: string }> }
interface KindConfig { kind: string; apiVersion: string; nodes: KindNode[]; containerdConfigPatches: string[]; kubeadmConfigPatches: string[] }
const kindConfig = parse(kindFile('kind-config.yaml')) as KindConfig;

/** `krill manifests --config conformance/kind/install.yaml`, as run.sh renders it. */
async function renderKindManifests(env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await run(process.execPath, [KRILL_BIN, 'manifests', '--config', join(KIND, 'install.yaml')], { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/**
 * The TOML subset containerd configs use: `[a."b.c".d]` tables and `key = "string"` pairs, as
 * dotted key paths with the quotes taken off. Enough to read a patch the way containerd would.
 */
function tomlKeys(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  let table: string[] = [];
  const path = (s: string) => [...s.matchAll(/"([^"]*)"|([A-Za-z0-9_-]+)/g)].map((m) => m[1] ?? m[2]!);
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) { table = path(header[1]!); continue; }
    const kv = /^([A-Za-z0-9_."-]+)\s*=\s*"([^"]*)"$/.exec(line);
    if (!kv) throw new Error(`not a TOML line this test reads: ${raw}`);
    keys.set([...table, ...path(kv[1]!)].join('.'), kv[2]!);
  }
  return keys;
}

/** The objects of a multi-document YAML stream. */
const objectsOf = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec?: any; data?: Record<string, string> }).filter(Boolean);

describe('kind-config.yaml', () => {
  it('is a kind v1alpha4 cluster of one control plane and two workers, every node on one pinned node image', () => {
    expect([kindConfig.kind, kindConfig.apiVersion]).toEqual(['Cluster', 'kind.x-k8s.io/v1alpha4']);
    expect(kindConfig.nodes.map((n) => n.role)).toEqual(['control-plane', 'worker', 'worker']);
    const images = new Set(kindConfig.nodes.map((n) => n.image));
    expect(images.size).toBe(1);
    // A node image of Kubernetes 1.29 to 1.31 (containerd 1.7), by digest, so the containerd patch below fits it.
    expect([...images][0]).toMatch(/^kindest\/node:v1\.(29|30|31)\.\d+@sha256:[0-9a-f]{64}$/);
  });

  it("patches containerd 1.7's CRI registry config_path to /etc/containerd/certs.d, in config version 2 tables", () => {
    const keys = new Map(kindConfig.containerdConfigPatches.flatMap((p) => [...tomlKeys(p)]));
    expect(keys.get('plugins.io.containerd.grpc.v1.cri.registry.config_path')).toBe('/etc/containerd/certs.d');
    // containerd 1.7 refuses config_path next to the deprecated mirrors.
    expect([...keys.keys()].filter((k) => k.includes('registry.mirrors'))).toEqual([]);
  });

  it("starts kubelet on containerd's image service, stated in the KubeletConfiguration patch", async () => {
    const patches = kindConfig.kubeadmConfigPatches.map((p) => parse(p) as Record<string, unknown>);
    const kubelet = patches.filter((p) => p['kind'] === 'KubeletConfiguration');
    expect(kubelet).toHaveLength(1);
    // Not krill's socket: kubelet exits at start when its image service does not answer
    // ImageFsInfo, and krill's only answers once kubelet runs krill's pod. The DaemonSet switches it.
    const ds = objectsOf(await renderKindManifests()).find((o) => o.kind === 'DaemonSet')!;
    const containerdSocket = ds.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'containerd-socket').hostPath.path;
    expect(kubelet[0]!['imageServiceEndpoint']).toBe(`unix://${containerdSocket}`);
    // No per-node patches, no mounts: every node is the same, and the DaemonSet brings its own host paths.
    expect(kindConfig.nodes.filter((n) => 'kubeadmConfigPatches' in n || n.extraMounts)).toEqual([]);
  });
});

describe('install.yaml, rendered by krill manifests', () => {
  let manifests: string;
  beforeAll(async () => {
    manifests = await renderKindManifests();
  });

  it('renders; the node config sends the Deployment\'s registry to krill alone, as the repository run.sh pushes to', () => {
    const facts = helpers.nodeFacts(manifests);
    const image = helpers.deploymentFacts(kindFile('deployment.yaml')).image;
    expect(facts.registries).toContainEqual({ host: helpers.splitImage(image).host, mode: 'krill' });
    expect(helpers.registryRule(facts, image)).toEqual({ mode: 'krill', repository: 'kind/demo' });
  });

  it("runs the image scripts/images.sh builds and kind loads, never pulling it; run.sh's tag override applies", async () => {
    const pullPolicies = (text: string) => objectsOf(text).filter((o) => o.spec?.template).flatMap((o) => o.spec.template.spec.containers.map((c: { image: string; imagePullPolicy: string }) => `${c.image} ${c.imagePullPolicy}`));
    expect(new Set(pullPolicies(manifests))).toEqual(new Set(['krill:0.1.0 Never']));
    expect(new Set(pullPolicies(await renderKindManifests({ KRILL_INSTALL_IMAGE__TAG: 'e2e-7' })))).toEqual(new Set(['krill:e2e-7 Never']));
  });

  it('switches kubelet to the socket krill node listens on, with the containerd mirror, from the socket directory the DaemonSet mounts', () => {
    const facts = helpers.nodeFacts(manifests);
    expect(facts.endpoint).toBe('unix:///run/krill/cri.sock');
    expect(dirname(facts.socket)).toBe(facts.socketDir);
    const ds = objectsOf(manifests).find((o) => o.kind === 'DaemonSet')!;
    const sidecar = ds.spec.template.spec.containers.find((c: { name: string }) => c.name === 'node-install');
    expect(sidecar.command).toEqual(expect.arrayContaining(['--watchdog', '--containerd-mirror']));
    // Root, though the image's USER is 65532: it edits kubelet's files and enters PID 1's namespaces.
    expect(facts.sidecarRunAsUser).toBe(0);
    expect(ds.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'krill-sockets').hostPath.path).toBe(facts.socketDir);
  });

  /**
   * The sidecar's own command, run dry on a fake kind node: kind's kubelet config with the kind
   * config's endpoint, kind's flags file, and containerd's config with the kind config's patch.
   */
  async function sidecarDryRun(containerdConfig: string): Promise<string> {
    const root = mkdtempSync(join(tmpdir(), 'krill-kind-node-'));
    try {
      const kubelet = parse(kindConfig.kubeadmConfigPatches[0]!) as { imageServiceEndpoint: string };
      const files: Record<string, string> = {
        'var/lib/kubelet/config.yaml': `apiVersion: kubelet.config.k8s.io/v1beta1\ncgroupDriver: systemd\ncgroupRoot: /kubelet\nfailSwapOn: false\nimageServiceEndpoint: ${kubelet.imageServiceEndpoint}\nkind: KubeletConfiguration\n`,
        'var/lib/kubelet/kubeadm-flags.env': 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock --node-ip=172.18.0.3 --node-labels= --pod-infra-container-image=registry.k8s.io/pause:3.10 --provider-id=kind://docker/krill-e2e/krill-e2e-worker"\n',
        'etc/containerd/config.toml': containerdConfig,
      };
      for (const [path, text] of Object.entries(files)) {
        mkdirSync(dirname(join(root, path)), { recursive: true });
        writeFileSync(join(root, path), text);
      }
      const ds = objectsOf(manifests).find((o) => o.kind === 'DaemonSet')!;
      const command: string[] = ds.spec.template.spec.containers.find((c: { name: string }) => c.name === 'node-install').command;
      // Its options, less the mode and where the host is (the fake root instead of /host and nsenter).
      const args = command.slice(2).filter((a) => a !== '--watchdog');
      for (const flag of ['--root', '--host-exec']) args.splice(args.indexOf(flag), 2);
      const kubeletVersion = /^kindest\/node:v(\d+\.\d+)/.exec(kindConfig.nodes[0]!.image)![1]!;
      const { stdout, stderr } = await run('bash', [NODE_INSTALL, ...args, '--root', root, '--kubelet-version', kubeletVersion, '--no-check', '--dry-run']);
      return stdout + stderr;
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }

  const KIND_CONTAINERD = 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  default_runtime_name = "runc"\n';

  it("on a kind node, writes krill's endpoint over the kind config's line (what run.sh waits for) and adds the mirror where the patch set config_path", async () => {
    const out = await sidecarDryRun(`${KIND_CONTAINERD}\n${kindConfig.containerdConfigPatches.join('\n')}\n`);
    const endpoint = helpers.nodeFacts(manifests).endpoint;
    expect(out).toContain(`-imageServiceEndpoint: ${(parse(kindConfig.kubeadmConfigPatches[0]!) as { imageServiceEndpoint: string }).imageServiceEndpoint}\n`);
    // run.sh: grep -qx "imageServiceEndpoint: $ENDPOINT" /var/lib/kubelet/config.yaml
    expect(out).toContain(`+imageServiceEndpoint: ${endpoint}\n`);
    expect(out).toContain('would write /etc/containerd/certs.d/_default/hosts.toml');
    expect(out).toContain(`+[host."http://127.0.0.1:${helpers.nodeFacts(manifests).agentPort}"]`);
    expect(out).toContain('would run: systemctl restart kubelet');
  });

  it('leaves containerd alone on a node without the patch: the patch is what turns the mirror on', async () => {
    const out = await sidecarDryRun(KIND_CONTAINERD);
    expect(out).toContain('config_path is not set');
    expect(out).not.toContain('hosts.toml');
  });
});

describe('deployment.yaml', () => {
  const text = kindFile('deployment.yaml');

  it('is 20 replicas of registry.krill.example/kind/demo:v1, valid Kubernetes objects, spread over every node', () => {
    const d = helpers.deploymentFacts(text);
    expect([d.replicas, d.image]).toEqual([20, 'registry.krill.example/kind/demo:v1']);
    const [ns, deployment] = objectsOf(text);
    new Namespace(ns as never).validate();
    new Deployment(deployment as never).validate();
    expect(d.namespace).toBe(ns!.metadata.name);
    expect(d.spec.template.spec.tolerations).toContainEqual(expect.objectContaining({ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists' }));
    expect(d.spec.template.spec.topologySpreadConstraints[0]).toMatchObject({ maxSkew: 1, topologyKey: 'kubernetes.io/hostname' });
  });

  it('is rendered by run.sh with only the replicas and the tag changed', () => {
    const rendered = helpers.renderDeployment(text, { replicas: 7, tag: 'run-20260101000000' });
    const before = objectsOf(text);
    const after = objectsOf(rendered);
    before[1]!.spec.replicas = 7;
    before[1]!.spec.template.spec.containers[0].image = 'registry.krill.example/kind/demo:run-20260101000000';
    expect(after).toEqual(before);
    expect(() => helpers.renderDeployment(text, { replicas: 0, tag: 'x' })).toThrow(/replicas/);
    expect(() => helpers.renderDeployment(text, { replicas: 1, tag: 'no spaces' })).toThrow(/host\/path:tag/);
  });
});

describe('run.sh', () => {
  const script = join(KIND, 'run.sh');

  it('parses (bash -n), prints its options, and rejects bad ones before touching anything', async () => {
    await run('bash', ['-n', script]);
    const help = await run('bash', [script, '--help']);
    for (const o of ['--name', '--keep', '--replicas', '--layer-mb', '--skip-build', '--busybox']) expect(help.stdout).toContain(o);
    for (const bad of [['--replicas', '0'], ['--layer-mb', 'lots'], ['--what']]) {
      await expect(run('bash', [script, ...bad])).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/^run\.sh: /) });
    }
  });

  it('calls only helpers.mjs commands that exist, and waits for every workload kind krill renders', async () => {
    const text = readFileSync(script, 'utf8');
    const used = new Set([...text.matchAll(/"\$HELPERS" ([a-z-]+)/g)].map((m) => m[1]));
    expect([...used].sort()).toEqual(['deployment', 'deployment-facts', 'facts', 'layout-bytes', 'registry-rule', 'report']);
    await expect(run(process.execPath, [join(KIND, 'helpers.mjs'), 'nonsense'])).rejects.toMatchObject({ code: 2 });
    const kinds = new Set(objectsOf(await renderKindManifests()).filter((o) => o.spec?.template).map((o) => o.kind.toLowerCase()));
    expect(kinds).toEqual(new Set(['statefulset', 'deployment', 'daemonset']));
    expect(text).toContain('get statefulset,deployment,daemonset -o name');
  });
});

describe('gen-image --busybox: the demo image', () => {
  let work: string;
  let layout: string;
  let containerd: Containerd;
  const ref = 'registry.krill.example/kind/demo:t1';
  const blob = (d: Descriptor) => readFileSync(join(layout, 'blobs', 'sha256', d.digest.slice('sha256:'.length)));

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'krill-kind-image-'));
    layout = join(work, 'image');
    await run(process.execPath, [GEN_IMAGE, '--dir', layout, '--tag', 't1', '--layer-mb', '2', '--busybox', BUSYBOX_PATH, '--seed', 'kind-test']);
  });
  afterAll(async () => {
    await containerd?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** Each entry of a gzip tar layer: its type, link target, and the sha256 and size of its content. */
  async function entries(layer: Buffer): Promise<Map<string, { type: string; linkname?: string; sha256: string; size: number }>> {
    const out = new Map<string, { type: string; linkname?: string; sha256: string; size: number }>();
    const x = extract();
    x.on('entry', (h, stream, next) => {
      const hash = createHash('sha256');
      let size = 0;
      stream.on('data', (c: Buffer) => { hash.update(c); size += c.length; });
      stream.on('end', () => { out.set(h.name, { type: h.type ?? 'file', ...(h.linkname ? { linkname: h.linkname } : {}), sha256: hash.digest('hex'), size }); next(); });
    });
    await pipeline(Readable.from([layer]), createGunzip(), x);
    return out;
  }

  it("is an OCI layout whose config runs busybox's sh until SIGTERM, for busybox's own architecture", async () => {
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    const manifest = JSON.parse(blob(index.manifests[0]!).toString()) as { config: Descriptor; layers: Descriptor[] };
    const config = JSON.parse(blob(manifest.config).toString()) as { architecture: string; os: string; config: { Entrypoint: string[]; Cmd: string[] } };
    expect([config.os, config.architecture]).toEqual(['linux', { x64: 'amd64', arm64: 'arm64' }[process.arch as 'x64' | 'arm64']]);
    expect(config.config.Entrypoint).toEqual(['/bin/sh', '-c', 'trap "exit 0" TERM INT; sleep 2147483647 & wait']);
    expect(manifest.layers).toHaveLength(2);
    const base = await entries(blob(manifest.layers[0]!));
    expect(base.get('bin/busybox')?.sha256).toBe(createHash('sha256').update(readFileSync(BUSYBOX_PATH)).digest('hex'));
    for (const applet of ['sh', 'sleep', 'test']) expect(base.get(`bin/${applet}`)).toMatchObject({ type: 'symlink', linkname: 'busybox' });
    // The Deployment's readiness probe tests the first generated layer's file with /bin/test.
    const data = await entries(blob(manifest.layers[1]!));
    expect(data.get('layer0/data.bin')?.size).toBe(2_000_000);
    const probe = helpers.deploymentFacts(kindFile('deployment.yaml')).spec.template.spec.containers[0].readinessProbe.exec.command;
    expect(probe).toEqual(['/bin/test', '-s', '/layer0/data.bin']);
  });

  it('refuses a dynamically linked or non-ELF busybox, which could not run in the image', async () => {
    await expect(run(process.execPath, [GEN_IMAGE, '--dir', join(work, 'bad'), '--busybox', '/bin/ls'])).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('dynamically linked') });
    writeFileSync(join(work, 'script'), '#!/bin/sh\n');
    await expect(run(process.execPath, [GEN_IMAGE, '--dir', join(work, 'bad'), '--busybox', join(work, 'script')])).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('not an ELF') });
  });

  it("runs in containerd: the probe's file is there, and the entrypoint runs until SIGTERM, then exits 0 at once", async () => {
    containerd = await startContainerd({ dir: join(work, 'containerd') });
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    const manifest = JSON.parse(blob(index.manifests[0]!).toString()) as { config: Descriptor; layers: Descriptor[] };
    const built = { dir: layout, tag: 't1', manifest: index.manifests[0]!, blobs: [manifest.config, ...manifest.layers, index.manifests[0]!] } as BuiltImage;
    await writeOciArchive(built, join(work, 'image.tar'), ref);
    await containerd.importImage(join(work, 'image.tar'), ref);
    await containerd.runImage(ref, 'probe', { args: ['/bin/test', '-s', '/layer0/data.bin'] });
    await expect(containerd.runImage(ref, 'probe-missing', { args: ['/bin/test', '-s', '/layer0/missing'] })).rejects.toThrow();
    // Not detached: `ctr run` exits with the container's status, so this settles once it has exited, rejecting unless 0.
    const exited = containerd.runImage(ref, 'demo');
    exited.catch(() => {});
    const status = async () => / (RUNNING|STOPPED) *$/m.exec((await containerd.ctr(['-n', 'k8s.io', 'tasks', 'ls'])).split('\n').find((l) => l.startsWith('demo ')) ?? '')?.[1];
    for (let i = 0; i < 50 && (await status()) !== 'RUNNING'; i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 500));
    expect(await status()).toBe('RUNNING');
    await containerd.ctr(['-n', 'k8s.io', 'tasks', 'kill', '--signal', 'SIGTERM', 'demo']);
    const within = (ms: number) => new Promise((_, reject) => setTimeout(() => reject(new Error(`still running ${ms} ms after SIGTERM`)), ms));
    await Promise.race([exited, within(5000)]);
  });
});

describe('helpers.mjs report', () => {
  const image = 'registry.krill.example/kind/demo:run-1';
  const digest = `sha256:${'a'.repeat(64)}`;
  const scrape = (o: { krill: number; seconds: number; peers: number; origins: number; http?: number; containerd?: number }) => [
    '# HELP krill_node_pull_bytes_total Image bytes pulled, by source',
    '# TYPE krill_node_pull_bytes_total counter',
    `krill_node_pull_bytes_total{source="peers",service="node"} ${o.peers}`,
    `krill_node_pull_bytes_total{service="node",source="origins"} ${o.origins}`,
    `krill_node_pull_bytes_total{source="origin_http",service="node"} ${o.http ?? 0}`,
    `krill_node_pull_bytes_total{source="containerd",service="node"} ${o.containerd ?? 0}`,
    `krill_node_pulls_total{via="krill",service="node"} ${o.krill}`,
    `krill_node_pull_duration_seconds_bucket{le="+Inf",service="node"} ${o.krill}`,
    `krill_node_pull_duration_seconds_sum{service="node"} ${o.seconds}`,
    `krill_node_pull_duration_seconds_count{service="node"} ${o.krill}`,
  ].join('\n');
  const zero = scrape({ krill: 0, seconds: 0, peers: 0, origins: 0 });
  const pod = (name: string, node: string, o: { ready?: boolean; imageID?: string } = {}) => ({
    metadata: { name }, spec: { nodeName: node },
    status: { conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }], containerStatuses: [{ image, imageID: o.imageID ?? `registry.krill.example/kind/demo@${digest}` }] },
  });
  const pulled = (podName: string, message: string) => ({ reason: 'Pulled', involvedObject: { kind: 'Pod', name: podName }, message });
  const input = () => ({
    image, digest, replicas: 3,
    metrics: {
      'e2e-control-plane': { before: zero, after: scrape({ krill: 1, seconds: 9.5, peers: 0, origins: 150e6 }) },
      'e2e-worker': { before: scrape({ krill: 1, seconds: 1, peers: 5, origins: 5 }), after: scrape({ krill: 3, seconds: 12, peers: 100_000_005, origins: 50_000_005 }) },
    },
    pods: { items: [pod('demo-a', 'e2e-control-plane'), pod('demo-b', 'e2e-worker'), pod('demo-c', 'e2e-worker')] },
    events: {
      items: [
        pulled('demo-a', `Successfully pulled image "${image}" in 9.512s (9.512s including waiting). Image size: 150002000 bytes.`),
        pulled('demo-b', `Successfully pulled image "${image}" in 1m2.5s (1m2.5s including waiting)`),
        pulled('demo-c', `Successfully pulled image "${image}" in 120ms (1m2.6s including waiting)`),
        pulled('demo-c', `Container image "${image}" already present on machine`),
        pulled('demo-a', 'Successfully pulled image "registry.k8s.io/pause:3.10" in 3s (3s including waiting)'),
      ],
    },
  });

  it('reads Go durations as kubelet prints them', () => {
    expect([helpers.parseGoDuration('1m2.5s'), helpers.parseGoDuration('850ms'), helpers.parseGoDuration('1h0m0s'), helpers.parseGoDuration('12µs')]).toEqual([62.5, 0.85, 3600, 0.000012]);
    expect(() => helpers.parseGoDuration('12 s')).toThrow();
  });

  it("gives each node its longest kubelet pull of the image and the deltas of krill's counters, whatever the label order", () => {
    const r = helpers.buildReport(input());
    expect(r.problems).toEqual([]);
    expect(r.rows).toEqual([
      { node: 'e2e-control-plane', pods: 1, pullSeconds: 9.512, krillPulls: 1, failedPulls: 0, krillSeconds: 9.5, bytes: { peers: 0, origins: 150e6, origin_http: 0, containerd: 0 } },
      { node: 'e2e-worker', pods: 2, pullSeconds: 62.5, krillPulls: 2, failedPulls: 0, krillSeconds: 11, bytes: { peers: 100e6, origins: 50e6, origin_http: 0, containerd: 0 } },
    ]);
    const table = helpers.formatReport(r);
    expect(table.split('\n')[0]).toMatch(/^node\s+pods\s+pull s\s+krill pulls\s+peers MB\s+origins MB\s+origin http MB\s+containerd MB$/);
    expect(table).toMatch(/^e2e-worker\s+2\s+62\.5\s+2\s+100\.0\s+50\.0\s+0\.0\s+0\.0$/m);
    expect(table).toMatch(/^total\s+3\s+3\s+100\.0\s+200\.0\s+0\.0\s+0\.0$/m);
  });

  it('fails a pod at another digest, a pod not Ready, a missing replica, and a node kubelet pulled on without krill', () => {
    const i = input();
    i.pods.items[1] = pod('demo-b', 'e2e-worker', { imageID: `registry.krill.example/kind/demo@sha256:${'b'.repeat(64)}` });
    i.pods.items[2] = pod('demo-c', 'e2e-worker', { ready: false });
    i.metrics['e2e-control-plane'].after = zero;
    i.replicas = 4;
    expect(helpers.buildReport(i).problems).toEqual([
      `pod demo-b runs registry.krill.example/kind/demo@sha256:${'b'.repeat(64)}, not registry.krill.example/kind/demo@${digest}`,
      'pod demo-c is not Ready',
      '3 pods, not 4',
      `kubelet on e2e-control-plane pulled ${image} but krill answered no pull there`,
    ]);
  });
});

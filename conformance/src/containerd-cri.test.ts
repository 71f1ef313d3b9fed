import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCriImage, cachedCriImage, criImageRef, MARKER_TEXT, writeOciArchive, type CriImageName } from './fixtures/cri-images.js';
import type { BuiltImage } from './fixtures/oci-image.js';
import { availableContainerds, startContainerd, type Containerd } from './harness/containerd.js';
import { createCriClient, type CriClient } from './harness/cri-client.js';
import { startDockerRegistry, type DockerRegistry } from './harness/docker-registry.js';
import { copy } from './harness/skopeo.js';

/** A registry name that exists only through the harness's certs.d mirror entries. */
const MIRRORED = 'registry.krill.test';
const MIRRORED_WITH_PORT = 'registry.krill.test:5000';

/** The fixture images each version runs, and what each prints (busybox `id` for the users). */
const RUNS: [CriImageName, RegExp][] = [
  ['user-1002', /^uid=1002 gid=0\(root\)/],
  ['user-www-data', /^uid=33\(www-data\) gid=33\(www-data\)/],
  ['multi-arch', /^amd64\n$/],
  ['big', /^a\.bin\nb\.bin\nc\.bin\nd\.bin\n$/],
];

let work: string;
let marker: BuiltImage;
const archives = new Map<CriImageName, string>();
let registry: DockerRegistry;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'krill-containerd-cri-'));
  marker = await buildCriImage('marker', join(work, 'marker'));
  for (const [name] of [['marker'], ...RUNS] as [CriImageName][]) {
    // `big` (201 MB) comes from the cache the other suites share; the rest take milliseconds.
    const img = name === 'marker' ? marker : name === 'big' ? await cachedCriImage('big', join(tmpdir(), 'krill-fixtures')) : await buildCriImage(name, join(work, name));
    const file = join(work, `${name}.tar`);
    await writeOciArchive(img, file, criImageRef(name));
    archives.set(name, file);
  }
  registry = await startDockerRegistry({ dir: join(work, 'registry') });
  await copy(`oci:${marker.dir}:${marker.tag}`, `docker://${registry.host}/team/marker:1`);
});
afterAll(async () => {
  await registry?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** `ctr plugins ls` as `type id` → status. */
function pluginStatus(out: string): Map<string, string> {
  return new Map(out.split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 4).map((f) => [`${f[0]} ${f[1]}`, f.at(-1)!]));
}

/** The remote addresses (hex `addr:port`, as /proc/net/tcp{,6} prints them) of a process's TCP sockets. */
function tcpPeers(pid: number): string[] {
  const inodes = new Set(readdirSync(`/proc/${pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ''; } })
    .map((l) => /^socket:\[(\d+)\]$/.exec(l)?.[1]).filter((i): i is string => !!i));
  const peers: string[] = [];
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9]!)) continue;
      peers.push(f[2]!);
    }
  }
  return peers;
}

/** A /proc/net/tcp{,6} address is unconnected (all zeros) or on loopback (127/8, ::1, ::ffff:127/8). */
function isLoopbackOrUnset(hexAddr: string): boolean {
  const ip = hexAddr.split(':')[0]!;
  if (/^0+$/.test(ip)) return true;
  if (ip.length === 8) return ip.endsWith('7F');
  return ip === '00000000000000000000000001000000' || (ip.startsWith('0000000000000000FFFF0000') && ip.endsWith('7F'));
}

/** Shim processes serving `socket` (their command line says `-address <socket>`). */
function shimsOf(socket: string): number[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((e) => {
    try { return readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').includes(socket); } catch { return false; }
  }).map(Number);
}

const mountsUnder = (dir: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(`${dir}/`));
const isAlive = (pid: number) => { try { return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; } };

describe.each(availableContainerds())('containerd $version ($release) with the CRI plugin', ({ version }) => {
  let c: Containerd;
  let cri: CriClient;

  beforeAll(async () => {
    c = await startContainerd({
      dir: join(work, `containerd-${version}`), version,
      cri: { mirrors: { [MIRRORED]: registry.url, [MIRRORED_WITH_PORT]: registry.url } },
    });
    cri = createCriClient(c.socket);
  });
  afterAll(async () => {
    cri?.close();
    await c?.close();
  });

  it('reports its version and loads the CRI plugins', async () => {
    expect(c.version.startsWith(`${version}.`)).toBe(true);
    const status = pluginStatus(await c.ctr(['plugins', 'ls']));
    // 2.x splits the CRI into an image service, a runtime service and the gRPC front (containerd-compat.md).
    const cris = version === '2.1' ? ['io.containerd.cri.v1 images', 'io.containerd.cri.v1 runtime', 'io.containerd.grpc.v1 cri'] : ['io.containerd.grpc.v1 cri'];
    expect(cris.map((p) => [p, status.get(p)])).toEqual(cris.map((p) => [p, 'ok']));
    expect(status.get(`io.containerd.snapshotter.v1 ${c.snapshotter}`)).toBe('ok');
    expect(c.snapshotter).toBe('native');
  });

  it('has the locally built sandbox image in k8s.io, known to the CRI', async () => {
    expect(c.sandboxImage).toBe('krill.test/pause:1');
    expect((await c.ctr(['-n', 'k8s.io', 'images', 'ls', '-q'])).split('\n')).toContain('krill.test/pause:1');
    const { image } = await cri.imageStatus('krill.test/pause:1');
    expect(image?.repoTags).toContain('krill.test/pause:1');
    // Imported and unpacked into the CRI's snapshotter, so a sandbox starts without a pull.
    expect(await c.ctr(['-n', 'k8s.io', 'snapshots', '--snapshotter', c.snapshotter, 'ls'])).toMatch(/Committed/);
  });

  it('imports the marker image with ctr and runs it, top layer winning', async () => {
    const ref = criImageRef('marker');
    await c.importImage(archives.get('marker')!, ref);
    // Exactly the given name, no `import-<date>` one; the CRI adds its own `sha256:<config>` records.
    const names = (await c.ctr(['-n', 'k8s.io', 'images', 'ls', '-q'])).split('\n').filter((n) => n && !n.startsWith('sha256:'));
    expect(names.sort()).toEqual([ref, 'krill.test/pause:1'].sort());
    expect(await c.runImage(ref, `marker-${version.replace('.', '-')}`)).toBe(MARKER_TEXT);
  });

  it('runs the user, multi-arch and big fixture images', async () => {
    for (const [name, expected] of RUNS) {
      await c.importImage(archives.get(name)!, criImageRef(name));
      expect([name, await c.runImage(criImageRef(name), `${name}-${version.replace('.', '-')}`)]).toEqual([name, expect.stringMatching(expected)]);
    }
  });

  it('runs a container in a host-network pod on the sandbox image', async () => {
    // The marker imported above, by image ID as kubelet names it in CreateContainer.
    const { image } = await cri.imageStatus(criImageRef('marker'));
    expect(image?.id).toBe(marker.images[0]!.config.digest);
    const { exitCode, output } = await cri.runContainer(image!.id, ['/bin/cat', '/krill/marker'], { logDir: join(work, `pod-logs-${version}`), name: `marker-${version.replace('.', '-')}` });
    expect({ exitCode, output }).toEqual({ exitCode: 0, output: MARKER_TEXT.trimEnd() });
  });

  it('pulls through the certs.d mirrors, with and without a port', async () => {
    for (const host of [MIRRORED, MIRRORED_WITH_PORT]) {
      const imageRef = await cri.pullImage(`${host}/team/marker:1`);
      expect(imageRef).toBe(marker.images[0]!.config.digest);
      const { image } = await cri.imageStatus(`${host}/team/marker:1`);
      expect(image?.repoDigests).toContain(`${host}/team/marker@${marker.manifest.digest}`);
    }
  });

  it('runs on overlayfs too: ctr import, a CRI pull through a mirror, a pod; no mount left after close', async () => {
    const dir = join(work, `overlayfs-${version}`);
    const d = await startContainerd({ dir, version, cri: { snapshotter: 'overlayfs', mirrors: { [MIRRORED]: registry.url } } });
    const client = createCriClient(d.socket);
    try {
      expect(d.snapshotter).toBe('overlayfs');
      await d.importImage(archives.get('marker')!, criImageRef('marker'));
      expect(await d.runImage(criImageRef('marker'), 'overlay-marker')).toBe(MARKER_TEXT);
      // On 2.1 the CRI pulls through the transfer service, which unpacks only where unpack_config says.
      expect(await client.pullImage(`${MIRRORED}/team/marker:1`)).toBe(marker.images[0]!.config.digest);
      const pod = await client.runContainer(`${MIRRORED}/team/marker:1`, ['/bin/cat', '/krill/marker'], { logDir: join(dir, 'pod-logs'), name: 'overlay-pod' });
      expect(pod).toEqual({ exitCode: 0, output: MARKER_TEXT.trimEnd() });
      expect(await d.ctr(['-n', 'k8s.io', 'snapshots', '--snapshotter', 'overlayfs', 'ls'])).toMatch(/Committed/);
    } finally {
      client.close();
      await d.close();
    }
    expect(mountsUnder(dir)).toEqual([]);
  });

  it('close() after containerd died kills its shims and containers, removes their cgroups and sockets, unmounts', async () => {
    const dir = join(work, `crashed-${version}`);
    const id = `left-behind-${version.replace('.', '-')}`;
    const d = await startContainerd({ dir, version, cri: {} });
    let task: number;
    let shimSocket: string;
    try {
      await d.runImage('krill.test/pause:1', id, { detach: true });
      task = Number((await d.ctr(['-n', 'k8s.io', 'tasks', 'ls'])).split('\n').find((l) => l.startsWith(`${id} `))!.trim().split(/\s+/)[1]);
      // 1.x names the shim's socket in `address`, 2.x in `bootstrap.json`.
      const bundle = join(dir, 'state', 'io.containerd.runtime.v2.task', 'k8s.io', id);
      shimSocket = /unix:\/\/([^"\s]+)/.exec(readdirSync(bundle).filter((f) => f === 'address' || f === 'bootstrap.json').map((f) => readFileSync(join(bundle, f), 'utf8')).join(' '))![1]!;
      expect(existsSync(shimSocket)).toBe(true);
      expect(shimsOf(d.socket)).not.toEqual([]);
      expect(mountsUnder(dir)).not.toEqual([]);
      expect(existsSync(`/sys/fs/cgroup/pids/${id}`)).toBe(true);
      process.kill(d.pid, 'SIGKILL');
    } finally {
      await d.close();
    }
    expect([shimsOf(d.socket), mountsUnder(dir), isAlive(task), existsSync(`/sys/fs/cgroup/pids/${id}`), existsSync(shimSocket)]).toEqual([[], [], false, false, false]);
  });

  it('sends every other registry to the closed loopback port, so nothing leaves loopback', async () => {
    for (const ref of ['docker.io/library/busybox:latest', 'registry.k8s.io/pause:3.10', 'quay.io/krill/none:1']) {
      const err = await cri.pullImage(ref).then(() => undefined, (e: Error) => e);
      expect(err?.message).toMatch(/127\.0\.0\.1:1\b.*connection refused|connection refused.*127\.0\.0\.1:1\b/s);
    }
    // Every registry host containerd resolved against, over the whole run, was on loopback...
    const hosts = new Set([...readFileSync(c.logFile, 'utf8').matchAll(/msg=resolving host="?([^\s"]+)/g)].map((m) => m[1]!));
    expect(hosts.size).toBeGreaterThan(0);
    expect([...hosts].filter((h) => !/^(127\.0\.0\.1|localhost)(:\d+)?$/.test(h))).toEqual([]);
    // ...and so is every TCP peer it has now.
    expect(tcpPeers(c.pid).filter((a) => !isLoopbackOrUnset(a))).toEqual([]);
  });
});

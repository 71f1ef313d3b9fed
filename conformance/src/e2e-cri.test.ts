import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracker, trackerConfigSchema, type TrackerConfig } from '@krill/cluster-services';
import { silentLogger, validateConfig, type Descriptor } from '@krill/lib';
import { nodeConfigSchema, startNode, type NodeConfig, type RunningNode } from '@krill/node-daemon';
import { MARKER_TEXT, cachedCriImage } from './fixtures/cri-images.js';
import { bigImage, buildImage, type BuiltImage, type BuiltManifest } from './fixtures/oci-image.js';
import { startCluster, type Cluster } from './harness/cluster.js';
import { startDockerRegistry, type DockerRegistry } from './harness/docker-registry.js';
import { availableContainerds, startContainerd, type Containerd } from './harness/containerd.js';
import { createCriClient, type CriClient } from './harness/cri-client.js';
import { copy } from './harness/skopeo.js';

/** The registry name kubelet uses for images pushed into krill; krill-only, so its errors are the answer. */
const REG = 'registry.krill.test';
/** An upstream registry that only containerd's own pull reaches (a hosts.toml mirror): the fail-open path. */
const UPSTREAM = 'upstream.krill.test';
/** A private upstream (htpasswd) that krill pulls through, with the credentials kubelet hands it. */
const PRIVATE = 'private.krill.test';
/** A registry configured direct-only: krill hands every pull of it to containerd. */
const DIRECT = 'direct.krill.test';
const USER = 'alice';
const PASSWORD = 'correct horse';
/** Nothing listens on port 1 of loopback: a connection there is refused at once. */
const DEAD = 'http://127.0.0.1:1';
/** The bottom layer two test images share (same bytes, so the same digest). */
const SHARED_LAYER = Buffer.from(Array.from({ length: 2_000_000 }, (_, i) => (i * 7919) % 251));

let work: string;
let cluster: Cluster;
let tracker: { url: string; close(): Promise<void> };
let upstream: DockerRegistry;
let privateUpstream: DockerRegistry;
const images: Record<string, BuiltImage> = {};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'krill-cri-e2e-'));
  upstream = await startDockerRegistry({ dir: join(work, 'upstream') });
  privateUpstream = await startDockerRegistry({ dir: join(work, 'private'), htpasswd: { user: USER, password: PASSWORD } });
  cluster = await startCluster({
    dir: join(work, 'cluster'),
    registries: { [PRIVATE]: { endpoints: [privateUpstream.url], username: USER, password: PASSWORD } },
    backends: [{ namespace: `^${PRIVATE.replace(/\./g, '\\.')}/`, registry: {} }, { namespace: '.*', fs: { root: join(work, 'cluster', 'backend') } }],
    pullThrough: [{ namespace: `^${PRIVATE.replace(/\./g, '\\.')}/`, tagTtlSeconds: 60 }],
  });
  tracker = await startTracker(validateConfig<TrackerConfig>(trackerConfigSchema, { listen: { port: 0 }, origins: { urls: cluster.originUrls } }), { logger: silentLogger() });
  const cache = join(tmpdir(), 'krill-fixtures');
  // Runnable busybox images (fixtures/cri-images.ts): marker's top layer puts /krill/marker there.
  images['small'] = await cachedCriImage('marker', cache);
  images['four'] = await cachedCriImage('big', cache);
  images['index'] = await cachedCriImage('multi-arch', cache);
  images['user-1002'] = await cachedCriImage('user-1002', cache);
  images['user-www-data'] = await cachedCriImage('user-www-data', cache);
  // Another big image, for the pulls that are cut short: its blobs are never in containerd already.
  images['big'] = await bigImage(cache);
  const push = (img: BuiltImage, ref: string) => copy(`oci:${img.dir}:${img.tag}`, `docker://${cluster.proxyHost}/${ref}`, { all: true });
  await push(images['small']!, 'team/small:v1');
  await push(images['user-1002']!, 'team/user-1002:v1');
  // Two images with their bottom layer in common, for the concurrent pulls.
  for (const name of ['shared-x', 'shared-y'] as const) {
    images[name] = await buildImage({ dir: join(work, name), tag: 'v1', seed: name, layers: [{ files: [{ path: 'shared.bin', content: SHARED_LAYER }] }, { files: [{ path: `${name}.bin`, size: 3_000_000 }] }] });
    await push(images[name]!, `team/${name}:v1`);
  }
  await push(images['user-www-data']!, 'team/user-www-data:v1');
  await push(images['small']!, 'team/small:latest');
  await push(images['four']!, 'team/four:v1');
  await push(images['index']!, 'team/multi:v1');
  await push(images['big']!, 'team/big:v1');
  // The fail-open image is in krill (whose origins the fail-open node cannot reach) and upstream.
  await push(images['small']!, 'team/fallback:v1');
  await copy(`oci:${images['small']!.dir}:${images['small']!.tag}`, `docker://${upstream.host}/team/fallback:v1`);
  await copy(`oci:${images['small']!.dir}:${images['small']!.tag}`, `docker://${privateUpstream.host}/team/secret:v1`, { destCreds: `${USER}:${PASSWORD}` });
});
afterAll(async () => {
  await tracker?.close();
  await cluster?.close();
  await upstream?.close();
  await privateUpstream?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The chain IDs of the image spec (config.md, "Layer ChainID"), computed here independently of krill. */
function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length ? `sha256:${createHash('sha256').update(`${out.at(-1)} ${d}`).digest('hex')}` : d);
  return out;
}

function diffIdsOf(img: BuiltImage, m: BuiltManifest): string[] {
  const config = JSON.parse(readFileSync(join(img.dir, 'blobs', 'sha256', m.config.digest.slice(7)), 'utf8')) as { rootfs: { diff_ids: string[] } };
  return config.rootfs.diff_ids;
}

describe.each(availableContainerds())('CRI socket in front of containerd $version', ({ version }) => {
  let containerd: Containerd;
  let node: RunningNode;
  let krill: CriClient;
  let direct: CriClient;

  beforeAll(async () => {
    const dir = join(work, `containerd-${version}`);
    containerd = await startContainerd({ dir, version, cri: { mirrors: { [UPSTREAM]: upstream.url, [DIRECT]: upstream.url } } });
    node = await startNode(nodeConfig(dir, 'krill', {}), { logger: silentLogger() });
    krill = createCriClient(node.criSocket);
    direct = createCriClient(containerd.socket);
  });
  afterAll(async () => {
    krill?.close();
    direct?.close();
    await node?.close();
    await containerd?.close();
  });

  /** A node daemon in front of this containerd; `over` replaces agent keys (dead trackers and origins). */
  function nodeConfig(dir: string, name: string, over: Record<string, unknown>): NodeConfig {
    return validateConfig<NodeConfig>(nodeConfigSchema, {
      listen: { port: 0 }, peer: { port: 0 }, trackers: { urls: [tracker.url] }, origins: { urls: cluster.originUrls },
      buildIndex: { urls: [cluster.buildIndexUrl] }, cache: { dir: join(dir, `${name}-cache`) },
      cri: {
        socket: join(dir, name, 'cri.sock'), containerd: { socket: containerd.socket },
        registries: [{ host: REG, mode: 'krill' }, { host: UPSTREAM, mode: 'auto' }, { host: PRIVATE, mode: 'auto', repositoryPrefix: `${PRIVATE}/` }, { host: DIRECT, mode: 'direct' }],
      },
      ...over,
    });
  }

  const ctr = async (...args: string[]) => (await containerd.ctr(['-n', 'k8s.io', ...args])).split('\n').map((l) => l.trim()).filter(Boolean);

  /** What acceptance 1 checks after every pull, on containerd directly. */
  async function expectPulled(imageRef: string, o: { img: BuiltImage; m: BuiltManifest; tags: string[]; digests: string[] }) {
    expect(imageRef).toBe(o.m.config.digest);
    const st = await direct.imageStatus(imageRef);
    expect(st.image).toMatchObject({ id: imageRef, repoTags: o.tags, repoDigests: o.digests });
    expect(st.image!.size).toBeGreaterThan(0);
    // krill's socket answers ImageStatus from containerd's CRI: the same answer.
    expect(await krill.imageStatus(imageRef)).toEqual(st);
    const content = await ctr('content', 'ls', '-q');
    const blobs: Descriptor[] = [o.m.config, ...o.m.layers, o.m.manifest, ...(o.img.manifest.digest !== o.m.manifest.digest ? [o.img.manifest] : [])];
    for (const b of blobs) expect(content).toContain(b.digest);
    const records = await ctr('images', 'ls', '-q');
    for (const name of [...o.tags, ...o.digests, imageRef]) expect(records).toContain(name);
    const snapshots = (await ctr('snapshots', '--snapshotter', containerd.snapshotter, 'ls')).map((l) => l.split(/\s+/)[0]);
    for (const c of chainIds(diffIdsOf(o.img, o.m))) expect(snapshots).toContain(c);
    expect((await ctr('leases', 'ls', '-q')).filter((l) => l.startsWith('krill-'))).toEqual([]);
  }

  async function removeAndCheckGone(imageRef: string) {
    // crictl rmi: ImageStatus, then RemoveImage by id.
    const st = await krill.imageStatus(imageRef, true);
    await krill.removeImage(st.image!.id);
    expect((await krill.imageStatus(imageRef)).image).toBeUndefined();
    expect((await krill.listImages()).map((i) => i.id)).not.toContain(imageRef);
  }

  it('a tag, with the calls kubelet makes', async () => {
    const img = images['small']!;
    const ref = await krill.pullImage(`${REG}/team/small:v1`, {
      annotations: { 'io.kubernetes.pod.name': 'web-0' },
      sandboxConfig: { metadata: { name: 'web-0', uid: 'u-1', namespace: 'default', attempt: 0 }, annotations: { a: 'b' } },
    });
    await expectPulled(ref, { img, m: img.images[0]!, tags: [`${REG}/team/small:v1`], digests: [`${REG}/team/small@${img.manifest.digest}`] });
    // kubelet: ImageStatus by the id it got, ListImages, ImageFsInfo.
    expect((await krill.imageStatus(ref)).image!.id).toBe(ref);
    expect((await krill.listImages()).map((i) => i.id)).toContain(ref);
    const fs = await krill.imageFsInfo();
    expect(fs).toEqual(await direct.imageFsInfo().then((d) => ({ ...d, imageFilesystems: d.imageFilesystems.map((f, i) => ({ ...f, timestamp: fs.imageFilesystems[i]?.timestamp })) })));
    expect(fs.imageFilesystems[0]!.fsId!.mountpoint).toContain(`io.containerd.snapshotter.v1.${containerd.snapshotter}`);
    await removeAndCheckGone(ref);
  });

  it('a reference without a tag (crictl pull, images, inspecti, rmi)', async () => {
    const img = images['small']!;
    const ref = await krill.pullImage(`${REG}/team/small`);
    await expectPulled(ref, { img, m: img.images[0]!, tags: [`${REG}/team/small:latest`], digests: [`${REG}/team/small@${img.manifest.digest}`] });
    expect((await krill.listImages(`${REG}/team/small`)).some((i) => i.id === ref)).toBe(true);
    const verbose = await krill.imageStatus(`${REG}/team/small:latest`, true);
    expect(JSON.parse(verbose.info['info']!)).toHaveProperty('imageSpec');
    await removeAndCheckGone(ref);
  });

  it('a digest reference', async () => {
    const img = images['small']!;
    const name = `${REG}/team/small@${img.manifest.digest}`;
    const ref = await krill.pullImage(name);
    await expectPulled(ref, { img, m: img.images[0]!, tags: [], digests: [name] });
    await removeAndCheckGone(ref);
  });

  it('a container created from the pulled image (RunPodSandbox, CreateContainer, StartContainer through krill\'s socket) reads its top layer\'s file', async () => {
    const ref = await krill.pullImage(`${REG}/team/small:v1`);
    const logDir = join(work, `logs-${version}`);
    const run = await krill.runContainer(ref, ['/bin/cat', '/krill/marker'], { logDir, name: 'marker' });
    expect(run).toEqual({ exitCode: 0, output: MARKER_TEXT.trimEnd() });
  });

  it('USER 1002 reports uid 1002 (and the container runs as it); USER www-data reports the username', async () => {
    const numeric = await krill.pullImage(`${REG}/team/user-1002:v1`);
    const st = (await krill.imageStatus(numeric)).image!;
    expect([st.uid?.value, st.username]).toEqual([1002, '']);
    const run = await krill.runContainer(numeric, ['/bin/id', '-u'], { logDir: join(work, `logs-${version}`), name: 'uid' });
    expect(run).toEqual({ exitCode: 0, output: '1002' });
    const named = await krill.pullImage(`${REG}/team/user-www-data:v1`);
    const st2 = (await krill.imageStatus(named)).image!;
    expect([st2.uid, st2.username]).toEqual([null, 'www-data']);
  });

  it('concurrent pulls of one image, and of an image sharing its bottom layer, share the work', async () => {
    const metric = async (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, 'm').exec(await (await fetch(`${node.url}/metrics`)).text())?.[1] ?? 'NaN');
    const before = await metric('krill_agent_downloads');
    const [x, y] = [images['shared-x']!, images['shared-y']!];
    const ids = await Promise.all([
      krill.pullImage(`${REG}/team/shared-x:v1`), krill.pullImage(`${REG}/team/shared-x:v1`), krill.pullImage(`${REG}/team/shared-y:v1`),
    ]);
    expect(ids).toEqual([x.images[0]!.config.digest, x.images[0]!.config.digest, y.images[0]!.config.digest]);
    // Each distinct blob fetched once: two manifests, two configs, the shared layer and one layer each.
    const distinct = new Set([...x.blobs, ...y.blobs].map((b) => b.digest));
    expect(distinct.size).toBe(7);
    expect((await metric('krill_agent_downloads')) - before).toBe(7);
    for (const id of ids.slice(1)) await krill.removeImage(id);
  });

  it('a multi-layer image (5 layers, 203 MB)', async () => {
    const img = images['four']!;
    const ref = await krill.pullImage(`${REG}/team/four:v1`);
    await expectPulled(ref, { img, m: img.images[0]!, tags: [`${REG}/team/four:v1`], digests: [`${REG}/team/four@${img.manifest.digest}`] });
    await removeAndCheckGone(ref);
  });

  it('an OCI index with two platforms: the node\'s platform is unpacked', async () => {
    const img = images['index']!;
    const amd64 = img.images.find((i) => i.platform.architecture === 'amd64')!;
    const ref = await krill.pullImage(`${REG}/team/multi:v1`);
    await expectPulled(ref, { img, m: amd64, tags: [`${REG}/team/multi:v1`], digests: [`${REG}/team/multi@${img.manifest.digest}`] });
    await removeAndCheckGone(ref);
  });

  it('bad input: an invalid reference and an unknown image, with no record and no lease left', async () => {
    const before = await ctr('images', 'ls', '-q');
    await expect(krill.pullImage('Not/Valid:ref')).rejects.toMatchObject({ code: 3, details: expect.stringMatching(/invalid image reference/) });
    await expect(krill.pullImage(`${REG}/team/nothing:v1`)).rejects.toMatchObject({ code: 5 });
    expect(await ctr('images', 'ls', '-q')).toEqual(before);
    expect((await ctr('leases', 'ls', '-q')).filter((l) => l.startsWith('krill-'))).toEqual([]);
  });

  it('a PullImage cancelled half-way stops its transfers and leaves no record and no lease', async () => {
    // A node of its own whose agent takes in 20 MB/s, so the 105 MB image is still arriving
    // long after the cancel.
    const slow = await startNode(nodeConfig(join(work, `containerd-${version}`), 'slow', { limits: { ingressMBps: 20 } }), { logger: process.env.DBG ? (await import('@krill/lib')).createLogger({ name: 'slow', level: 'info' }) : silentLogger() });
    const cri = createCriClient(slow.criSocket);
    try {
      const before = await ctr('images', 'ls', '-q');
      const ac = new AbortController();
      const pulling = cri.pullImage(`${REG}/team/big:v1`, { signal: ac.signal });
      setTimeout(() => ac.abort(), 500);
      await expect(pulling).rejects.toMatchObject({ code: 1 });
      const cancelledAt = Date.now();
      const metric = async (name: string) => [...(await (await fetch(`${slow.url}/metrics`)).text()).matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
      // The lease goes when the ingest unwinds, and the agent abandons the downloads nobody reads.
      for (let i = 0; i < 50 && ((await ctr('leases', 'ls', '-q')).some((l) => l.startsWith('krill-')) || (await metric('krill_agent_downloads_active')) > 0); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await metric('krill_agent_downloads_active')).toBe(0);
      expect(Date.now() - cancelledAt).toBeLessThan(2500);
      const received = await metric('krill_agent_received_bytes');
      await new Promise((r) => setTimeout(r, 500));
      expect(await metric('krill_agent_received_bytes')).toBe(received);
      expect(received).toBeLessThan(images['big']!.blobs.reduce((n, d) => n + d.size, 0) / 2);
      expect((await ctr('leases', 'ls', '-q')).filter((l) => l.startsWith('krill-'))).toEqual([]);
      expect(await ctr('images', 'ls', '-q')).toEqual(before);
    } finally {
      cri.close();
      await slow.close();
    }
  });

  it('fail open: with trackers and origins down, containerd\'s own pull serves it from the upstream mirror and the fallback is counted', async () => {
    const down = await startNode(nodeConfig(join(work, `containerd-${version}`), 'down', { trackers: { urls: [DEAD] }, origins: { urls: [DEAD] } }), { logger: silentLogger() });
    const cri = createCriClient(down.criSocket);
    try {
      const fallbacks = async () => Number(/^krill_node_pull_fallbacks_total (\d+)/m.exec(await (await fetch(`${down.url}/metrics`)).text())?.[1] ?? 'NaN');
      const before = await fallbacks();
      const img = images['small']!;
      const ref = await cri.pullImage(`${UPSTREAM}/team/fallback:v1`);
      expect(ref).toBe(img.images[0]!.config.digest);
      expect((await direct.imageStatus(`${UPSTREAM}/team/fallback:v1`)).image?.id).toBe(ref);
      expect(await fallbacks()).toBe(before + 1);
      await cri.removeImage(ref);
    } finally {
      cri.close();
      await down.close();
    }
  });

  it('a direct-only registry: the pull goes to containerd\'s own PullImage, krill fetches nothing and counts it as direct', async () => {
    const text = async () => (await fetch(`${node.url}/metrics`)).text();
    const value = (t: string, re: RegExp) => Number(re.exec(t)?.[1] ?? '0');
    const t0 = await text();
    const ref = await krill.pullImage(`${DIRECT}/team/fallback:v1`);
    expect(ref).toBe(images['small']!.images[0]!.config.digest);
    expect((await direct.imageStatus(`${DIRECT}/team/fallback:v1`)).image?.id).toBe(ref);
    const t1 = await text();
    expect(value(t1, /^krill_node_pulls_total\{via="direct"[^}]*\} (\d+)/m) - value(t0, /^krill_node_pulls_total\{via="direct"[^}]*\} (\d+)/m)).toBe(1);
    expect(value(t1, /^krill_node_pull_fallbacks_total\{[^}]*\} (\d+)/m)).toBe(value(t0, /^krill_node_pull_fallbacks_total\{[^}]*\} (\d+)/m));
    expect(value(t1, /^krill_agent_downloads\{[^}]*\} (\d+)/m)).toBe(value(t0, /^krill_agent_downloads\{[^}]*\} (\d+)/m));
    await krill.removeImage(ref);
  });

  it('a private upstream: the caller\'s right password pulls through krill, a wrong one is UNAUTHENTICATED with nothing left behind', async () => {
    const img = images['small']!;
    const before = await ctr('images', 'ls', '-q');
    await expect(krill.pullImage(`${PRIVATE}/team/secret:v1`, { auth: { username: USER, password: 'wrong' } }))
      .rejects.toMatchObject({ code: 16, details: expect.stringMatching(/alice/) });
    expect(await ctr('images', 'ls', '-q')).toEqual(before);
    expect((await ctr('leases', 'ls', '-q')).filter((l) => l.startsWith('krill-'))).toEqual([]);
    const ref = await krill.pullImage(`${PRIVATE}/team/secret:v1`, { auth: { username: USER, password: PASSWORD } });
    expect(ref).toBe(img.images[0]!.config.digest);
    await krill.removeImage(ref);
  });

  it('a PullImage past its deadline is DEADLINE_EXCEEDED', async () => {
    await expect(krill.pullImage(`${REG}/team/big:v1`, { deadline: new Date(Date.now() + 50) })).rejects.toMatchObject({ code: 4 });
  });
});


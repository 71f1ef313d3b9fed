import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, type BuiltImage } from './fixtures/oci-image.js';
import { startContainerd, type Containerd } from './harness/containerd.js';
import { createCriClient } from './harness/cri-client.js';
import { KRILL_ARGV } from './harness/krill-process.js';
import { linkBytes } from './harness/link-trace.js';
import { copy } from './harness/skopeo.js';
import { createLab, type Lab, type LabHost, type LabProcess } from './lab/index.js';

/** Fixed ports: every lab host has its own address. */
const PORT = { proxy: 15000, originPeer: 15001, origin: 15002, tracker: 15003, buildIndex: 15004, node: 15005, nodePeer: 15006 } as const;
const REG = 'registry.krill.test';
const MB = 1_000_000;

const work = mkdtempSync(join(tmpdir(), 'krill-lab-cri-'));
let lab: Lab;
let image: BuiltImage;
const procs: LabProcess[] = [];
const containerds: Containerd[] = [];

/** Starts `krill <command>` on a lab host and waits until it says it listens. */
async function service(host: LabHost, command: string, name: string, config: Record<string, unknown>): Promise<LabProcess> {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, JSON.stringify(config));
  const p = host.spawn(process.execPath, [...KRILL_ARGV, command, '--config', file], { logFile: join(work, `${name}.log`) });
  procs.push(p);
  await p.waitForLine(new RegExp(`"msg":"${command} listening"`), { timeoutMs: 30_000 });
  return p;
}

/** Resolves once `ready()` holds, polled every 50 ms; rejects if `pull` ends first or after 60 s. */
async function underWay(pull: Promise<unknown>, ready: () => boolean): Promise<void> {
  let ended = false;
  void pull.then(() => { ended = true; }, () => { ended = true; });
  for (const deadline = Date.now() + 60_000; !ready(); await new Promise((r) => setTimeout(r, 50))) {
    if (ended) throw new Error('the first pull ended before 15 MB reached its node');
    if (Date.now() > deadline) throw new Error('15 MB did not reach the first node within 60 s');
  }
}

async function pullBytes(host: LabHost): Promise<Record<string, number>> {
  const text = await (await fetch(`http://${host.ip}:${PORT.node}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^krill_node_pull_bytes_total\{source="(\w+)"[^}]*\} (\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

beforeAll(async () => {
  // Origin host at 10 MB/s, nodes at 40 MB/s: the origin's link carries about one copy of the
  // image in the time the pulls take, so the second node must get most of its bytes from the first.
  lab = await createLab({ hosts: [{ name: 'cluster', capMBps: 10 }, { name: 'node-a', capMBps: 40 }, { name: 'node-b', capMBps: 40 }] });
  const cluster = lab.host('cluster');
  const url = (port: number) => `http://${cluster.ip}:${port}`;
  const listen = (port: number) => ({ host: cluster.ip, port });
  await Promise.all([
    service(cluster, 'origin', 'origin', {
      listen: listen(PORT.origin), peer: { host: cluster.ip, port: PORT.originPeer }, cluster: { origins: [url(PORT.origin)], replicas: 1 },
      store: { dir: join(work, 'origin') }, backends: [{ namespace: '.*', fs: { root: join(work, 'backend') } }], trackers: { urls: [url(PORT.tracker)] },
    }),
    service(cluster, 'tracker', 'tracker', { listen: listen(PORT.tracker), origins: { urls: [url(PORT.origin)] } }),
  ]);
  await service(cluster, 'build-index', 'build-index', { listen: listen(PORT.buildIndex), db: join(work, 'tags.db'), origins: { urls: [url(PORT.origin)] } });
  await service(cluster, 'proxy', 'proxy', { listen: listen(PORT.proxy), origins: { urls: [url(PORT.origin)] }, buildIndex: { urls: [url(PORT.buildIndex)] }, uploadDir: join(work, 'uploads') });
  image = await buildImage({
    dir: join(work, 'image'), tag: 'v1', seed: 'lab-cri',
    layers: [{ files: [{ path: 'etc/a.txt', content: 'a' }] }, { files: [{ path: 'opt/b.bin', size: 10 * MB }] }, { files: [{ path: 'opt/c.bin', size: 30 * MB }] }],
  });
  await copy(`oci:${image.dir}:v1`, `docker://${cluster.ip}:${PORT.proxy}/team/app:v1`);
  for (const h of [lab.host('node-a'), lab.host('node-b')]) {
    const containerd = await startContainerd({ dir: join(work, `containerd-${h.name}`), cri: {}, netns: h.netns });
    containerds.push(containerd);
    await service(h, 'node', `node-${h.name}`, {
      listen: { host: h.ip, port: PORT.node }, peer: { host: h.ip, port: PORT.nodePeer },
      trackers: { urls: [url(PORT.tracker)] }, origins: { urls: [url(PORT.origin)], replicas: 1 }, buildIndex: { urls: [url(PORT.buildIndex)] },
      cache: { dir: join(work, `cache-${h.name}`) },
      cri: { socket: join(work, `cri-${h.name}.sock`), containerd: { socket: containerd.socket }, registries: [{ host: REG, mode: 'krill' }] },
    });
  }
}, 180_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill('SIGTERM')));
  for (const c of containerds) await c.close().catch(() => {});
  await lab?.close();
  if (!process.env.KEEP) rmSync(work, { recursive: true, force: true });
});

describe('two nodes in the lab, each its own containerd and node daemon (issue 4, acceptance 6)', () => {
  it('pull the same image at the same time; both complete and the second got most of its bytes from the first', async () => {
    const [a, b] = [lab.host('node-a'), lab.host('node-b')];
    const clients = [a, b].map((h) => createCriClient(join(work, `cri-${h.name}.sock`)));
    try {
      const before = linkBytes(a).received;
      const first = clients[0]!.pullImage(`${REG}/team/app:v1`);
      // The second kubelet asks while the first pull is under way: once 15 MB of the image's 40
      // have reached node-a. (A fixed delay was not that: on a loaded machine node-a could still
      // be resolving when node-b asked, and the two then split the origin's one copy evenly.)
      await underWay(first, () => linkBytes(a).received - before >= 15 * MB);
      const second = clients[1]!.pullImage(`${REG}/team/app:v1`);
      const ids = await Promise.all([first, second]);
      expect(ids).toEqual([image.images[0]!.config.digest, image.images[0]!.config.digest]);
      for (const c of containerds) {
        const st = await createCriClient(c.socket).imageStatus(ids[0]!);
        expect(st.image?.repoTags).toEqual([`${REG}/team/app:v1`]);
      }
      const [bytesA, bytesB] = await Promise.all([pullBytes(a), pullBytes(b)]);
      const total = image.blobs.reduce((n, d) => n + d.size, 0);
      const sum = (x: Record<string, number>) => (x['peers'] ?? 0) + (x['origins'] ?? 0) + (x['origin_http'] ?? 0);
      expect(sum(bytesA)).toBe(total);
      expect(sum(bytesB)).toBe(total);
      process.stdout.write(`lab-cri: node-a ${JSON.stringify(bytesA)}, node-b ${JSON.stringify(bytesB)} of ${total} bytes\n`);
      expect(bytesB['peers'] ?? 0).toBeGreaterThan(total / 2);
    } finally {
      for (const c of clients) c.close();
    }
  });
});

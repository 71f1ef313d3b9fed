import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildImage, cachedFixture, type BuiltImage } from '../fixtures/oci-image.js';
import { startContainerd, type ContainerdVersion } from '../harness/containerd.js';
import { createCriClient } from '../harness/cri-client.js';
import { startDockerRegistry } from '../harness/docker-registry.js';
import { benchNodeArgs, freePort, startKrillProcess, type KrillProcess } from '../harness/krill-process.js';
import { copy } from '../harness/skopeo.js';
import { createContainerd } from '@krill/node-daemon';
import { cpuSeconds, withCpu } from './cpu.js';

/**
 * `npm run bench:cri-pull [-- --size-mb 500 --runs 3 --containerd 1.6]`: one node, an image of 4
 * gzip layers pulled (a) through krill's CRI socket from warm origins (the image pushed through
 * krill's proxy beforehand, so the origins hold every blob; the agent's cache starts empty) and
 * (b) by containerd alone, its CRI PullImage from Debian's docker-registry (a hosts.toml mirror)
 * holding the same image, in one run. Each pull gets a fresh containerd (new root, so an empty
 * content store and no snapshots) and krill a fresh agent cache. Prints both times, the cores
 * busy, and the ratio (goal: krill <= 1.1 x containerd alone). Each run also measures (c) the
 * floor under (a): krill's content.Write writer putting the image's layers, read from files,
 * into a fresh containerd, three at a time as a pull does, with nothing else running: the
 * time and CPU containerd itself needs to take the bytes in over its API.
 */
const { values } = parseArgs({ options: { 'size-mb': { type: 'string', default: '500' }, runs: { type: 'string', default: '3' }, containerd: { type: 'string', default: '1.6' } } });
const SIZE_MB = Number(values['size-mb']);
const RUNS = Number(values.runs);
const VERSION = values.containerd as ContainerdVersion;
const KRILL_HOST = 'registry.krill.test';
const UPSTREAM_HOST = 'registry.upstream.test';

/** Four layers in the proportions of a typical application image: base, runtime, libraries, app. */
function benchImage(cache: string): Promise<BuiltImage> {
  const mb = [0.02, 0.18, 0.3, 0.5].map((f) => Math.round(f * SIZE_MB * 1_000_000));
  const o = { tag: 'v1', seed: `cri-pull-${SIZE_MB}`, layers: mb.map((n, i) => ({ files: [{ path: `layer${i}/data.bin`, size: n }] })) };
  return cachedFixture(cache, ['image', o], (dir) => buildImage({ ...o, dir }));
}

async function startKrill(dir: string): Promise<{ procs: KrillProcess[]; proxyHost: string; trackerUrl: string; originUrl: string; buildIndexUrl: string }> {
  const [origin, originPeer, tracker, bi, proxy] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const originUrl = `http://127.0.0.1:${origin}`;
  const trackerUrl = `http://127.0.0.1:${tracker}`;
  const buildIndexUrl = `http://127.0.0.1:${bi}`;
  mkdirSync(dir, { recursive: true });
  const procs: KrillProcess[] = [];
  procs.push(await startKrillProcess({ command: 'tracker', name: 'tracker', dir, config: { listen: { port: tracker }, origins: { urls: [originUrl] }, logLevel: 'warn' } }));
  procs.push(await startKrillProcess({ command: 'origin', name: 'origin', dir, config: {
    listen: { port: origin }, cluster: { origins: [originUrl], replicas: 1 }, store: { dir: join(dir, 'origin') }, backends: [],
    peer: { host: '127.0.0.1', port: originPeer }, trackers: { urls: [trackerUrl] }, logLevel: 'warn',
  } }));
  procs.push(await startKrillProcess({ command: 'build-index', name: 'build-index', dir, config: { listen: { port: bi }, db: join(dir, 'tags.db'), origins: { urls: [originUrl] }, logLevel: 'warn' } }));
  procs.push(await startKrillProcess({ command: 'proxy', name: 'proxy', dir, config: {
    listen: { port: proxy }, origins: { urls: [originUrl] }, buildIndex: { urls: [buildIndexUrl] }, uploadDir: join(dir, 'uploads'), logLevel: 'warn',
  } }));
  return { procs, proxyHost: `127.0.0.1:${proxy}`, trackerUrl, originUrl, buildIndexUrl };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** (c): the image's layers written into a fresh containerd with krill's writer; ms and containerd's CPU seconds. */
async function contentWriteAlone(dir: string, img: BuiltImage): Promise<{ ms: number; cpu: number; bytes: number }> {
  const containerd = await startContainerd({ dir: join(dir, 'containerd'), version: VERSION });
  const client = createContainerd({ socket: containerd.socket, namespace: 'k8s.io' });
  try {
    const layers = img.images[0]!.layers;
    const lease = await client.createLease(600_000);
    const cpu0 = cpuSeconds(containerd.pid);
    const t0 = performance.now();
    const queue = [...layers];
    await Promise.all([0, 1, 2].map(async () => {
      for (let l = queue.shift(); l; l = queue.shift()) {
        const body = createReadStream(join(img.dir, 'blobs', 'sha256', l.digest.slice(7)), { highWaterMark: 4 * 1024 * 1024 });
        await client.writeBlob({ lease, desc: { mediaType: l.mediaType, digest: l.digest, size: l.size }, body, labels: {} });
      }
    }));
    const ms = performance.now() - t0;
    const cpu = cpuSeconds(containerd.pid) - cpu0;
    await lease.delete();
    return { ms, cpu, bytes: layers.reduce((n, l) => n + l.size, 0) };
  } finally {
    client.close();
    await containerd.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'krill-bench-cri-'));
  const img = await benchImage(join(tmpdir(), 'krill-bench'));
  const total = img.blobs.reduce((n, b) => n + b.size, 0);
  process.stdout.write(`bench:cri-pull: ${(total / 1e6).toFixed(0)} MB image of ${img.images[0]!.layers.length} layers, containerd ${VERSION}, ${RUNS} runs per side\n`);
  const registry = await startDockerRegistry({ dir: join(work, 'registry') });
  const krill = await startKrill(join(work, 'krill'));
  const times: Record<'krill' | 'containerd', number[]> = { krill: [], containerd: [] };
  const floor: number[] = [];
  const cores: Record<'krill' | 'containerd', number[]> = { krill: [], containerd: [] };
  try {
    await copy(`oci:${img.dir}:v1`, `docker://${registry.host}/bench/app:v1`);
    await copy(`oci:${img.dir}:v1`, `docker://${krill.proxyHost}/bench/app:v1`);
    for (let run = 0; run < RUNS; run++) {
      execFileSync('sync');
      const w = await contentWriteAlone(join(work, `run-${run}-content-write`), img);
      floor.push(w.ms);
      process.stdout.write(`  run ${run + 1} content.Write alone (layers from files) ${(w.ms / 1000).toFixed(2)} s, ${(w.bytes / 1e6 / (w.ms / 1000)).toFixed(0)} MB/s (CPU s: containerd ${w.cpu.toFixed(2)})\n`);
      for (const side of ['containerd', 'krill'] as const) {
        const dir = join(work, `run-${run}-${side}`);
        mkdirSync(dir, { recursive: true });
        execFileSync('sync');
        const containerd = await startContainerd({ dir: join(dir, 'containerd'), version: VERSION, cri: { mirrors: { [UPSTREAM_HOST]: registry.url } } });
        let node: KrillProcess | undefined;
        try {
          let socket = containerd.socket;
          let ref = `${UPSTREAM_HOST}/bench/app:v1`;
          const pids = [containerd.pid];
          if (side === 'krill') {
            const port = await freePort();
            socket = join(dir, 'krill-cri.sock');
            ref = `${KRILL_HOST}/bench/app:v1`;
            // BENCH_NODE_PROF=<dir>: a V8 CPU profile of the node daemon per run, for finding its costs;
            // BENCH_NODE_ARGS: more node flags for it (e.g. --trace-gc).
            node = await startKrillProcess({ command: 'node', name: 'node', dir, nodeArgs: benchNodeArgs({ prof: 'BENCH_NODE_PROF', args: 'BENCH_NODE_ARGS' }), config: {
              listen: { port }, peer: { port: await freePort() }, trackers: { urls: [krill.trackerUrl] }, origins: { urls: [krill.originUrl], replicas: 1 },
              buildIndex: { urls: [krill.buildIndexUrl] }, cache: { dir: join(dir, 'cache') }, logLevel: process.env.BENCH_NODE_LOG ?? 'warn',
              cri: { socket, containerd: { socket: containerd.socket }, registries: [{ host: KRILL_HOST, mode: 'krill' }] },
            } });
            pids.push(node.child.pid!, ...krill.procs.map((p) => p.child.pid!));
          } else {
            pids.push(registry.pid);
          }
          const cri = createCriClient(socket);
          try {
            // CPU seconds by process, so a run shows whose work the pull waited for.
            const parts: [string, number[]][] = side === 'krill'
              ? [['containerd', [containerd.pid]], ['krill node', [node!.child.pid!]], ['origin+services', krill.procs.map((p) => p.child.pid!)]]
              : [['containerd', [containerd.pid]], ['docker-registry', [registry.pid]]];
            const cpu0 = parts.map(([, ps]) => ps.reduce((n, p) => n + cpuSeconds(p), 0));
            const r = await withCpu(pids, async () => {
              const t0 = performance.now();
              const id = await cri.pullImage(ref);
              if (id !== img.images[0]!.config.digest) throw new Error(`${side} pulled ${id}, expected ${img.images[0]!.config.digest}`);
              return performance.now() - t0;
            });
            times[side].push(r.value);
            cores[side].push(r.serverCores);
            const split = parts.map(([name, ps], i) => `${name} ${(ps.reduce((n, p) => n + cpuSeconds(p), 0) - cpu0[i]!).toFixed(2)}`).join(', ');
            process.stdout.write(`  run ${run + 1} ${side.padEnd(10)} ${(r.value / 1000).toFixed(2)} s, ${(total / 1e6 / (r.value / 1000)).toFixed(0)} MB/s, cores busy ${r.serverCores.toFixed(2)} (CPU s: ${split})\n`);
          } finally {
            cri.close();
          }
        } finally {
          await node?.kill('SIGTERM');
          await containerd.close();
          if (process.env.BENCH_NODE_LOG && node) process.stdout.write(`node log: ${readFileSync(join(dir, 'node.log'), 'utf8')}\n`);
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    await Promise.all(krill.procs.map((p) => p.kill('SIGTERM')));
    await registry.close();
    rmSync(work, { recursive: true, force: true });
  }
  const k = median(times.krill);
  const c = median(times.containerd);
  process.stdout.write(`krill (CRI socket, warm origins)   median ${(k / 1000).toFixed(2)} s, cores ${median(cores.krill).toFixed(2)}\n`);
  process.stdout.write(`containerd alone (docker-registry) median ${(c / 1000).toFixed(2)} s, cores ${median(cores.containerd).toFixed(2)}\n`);
  process.stdout.write(`ratio krill/containerd (median): ${(k / c).toFixed(2)} (goal <= 1.10)\n`);
  const f = median(floor);
  process.stdout.write(`content.Write alone, the floor under krill's pull before any unpack: median ${(f / 1000).toFixed(2)} s, ${(f / c).toFixed(2)} x containerd's whole pull\n`);
}

main().catch((err) => {
  process.stderr.write(`bench:cri-pull failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});

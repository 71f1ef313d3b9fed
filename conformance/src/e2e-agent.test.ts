import { createCipheriv, createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracker, trackerConfigSchema, type TrackerConfig } from '@krill/cluster-services';
import { PeerNode, PieceFile, Swarm, silentLogger, startTestDnsServer, validateConfig, type Digest, type MemberResolver, type Metainfo } from '@krill/lib';
import { agentConfigSchema, startAgent, type AgentConfig, type RunningAgent } from '@krill/node-daemon';
import { smallImage } from './fixtures/oci-image.js';
import { startCluster, type Cluster } from './harness/cluster.js';
import { startContainerd } from './harness/containerd.js';
import { copy, inspect } from './harness/skopeo.js';

const MiB = 1024 * 1024;
/** Nothing listens on port 1 of loopback: a connection there is refused at once. */
const DEAD = 'http://127.0.0.1:1';

let cluster: Cluster;
let tracker: { url: string; close(): Promise<void> };
let work: string;
const agents: RunningAgent[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'krill-agent-e2e-'));
  cluster = await startCluster({ dir: join(work, 'cluster') });
  tracker = await startTracker(validateConfig<TrackerConfig>(trackerConfigSchema, { listen: { port: 0 }, origins: { urls: cluster.originUrls } }), { logger: silentLogger() });
});
afterAll(async () => {
  for (const a of agents) await a.close().catch(() => undefined);
  await tracker?.close();
  await cluster?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function agent(name: string, over: Record<string, unknown> = {}, dnsResolver?: MemberResolver): Promise<RunningAgent> {
  const config = validateConfig<AgentConfig>(agentConfigSchema, {
    listen: { port: 0 }, peer: { port: 0 }, trackers: { urls: [tracker.url] }, origins: { urls: cluster.originUrls },
    buildIndex: { urls: [cluster.buildIndexUrl] }, cache: { dir: join(work, name) }, ...over,
  });
  const logger = process.env.AGENT_DEBUG ? (await import('@krill/lib')).createLogger({ name: name, level: 'debug' }) : silentLogger();
  const a = await startAgent(config, { logger, ...(dnsResolver ? { dnsResolver } : {}) });
  agents.push(a);
  return a;
}

/** A blob of deterministic bytes uploaded to the origins under `namespace`. */
async function blob(seed: number, size: number, namespace = 'team/blobs'): Promise<{ bytes: Buffer; digest: Digest }> {
  const bytes = createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16)).update(Buffer.alloc(size));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
  await cluster.originClient.upload(namespace, digest, { size, open: () => Readable.from([bytes]) });
  return { bytes, digest };
}

async function get(url: string): Promise<{ status: number; body: Buffer }> {
  const res = await request(url);
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  return { status: res.statusCode, body: Buffer.concat(chunks) };
}

describe('agent: the node registry API over P2P', () => {
  it('skopeo copies an image out of the agent with every digest intact', async () => {
    const image = await smallImage(join(work, 'img'), 'v1', 'agent-e2e', 3 * MiB);
    await copy(`oci:${image.dir}:v1`, `docker://${cluster.proxyHost}/team/app:v1`);
    const a = await agent('a-skopeo');
    const host = new URL(a.url).host;
    expect((await inspect(`docker://${host}/team/app:v1`))['Digest']).toBe(image.manifest.digest);
    const out = join(work, 'out');
    await copy(`docker://${host}/team/app:v1`, `oci:${out}:v1`);
    for (const name of readdirSync(join(image.dir, 'blobs', 'sha256'))) {
      expect(createHash('sha256').update(readFileSync(join(out, 'blobs', 'sha256', name))).digest('hex')).toBe(name);
    }
    expect((await inspect(`oci:${out}:v1`))['Digest']).toBe(image.manifest.digest);
  });

  it('containerd pulls and unpacks an image from the agent (ctr images pull --plain-http)', async () => {
    const image = await smallImage(join(work, 'img-ctr'), 'v1', 'agent-ctr', 2 * MiB);
    await copy(`oci:${image.dir}:v1`, `docker://${cluster.proxyHost}/team/ctr:v1`);
    const a = await agent('a-ctr');
    const containerd = await startContainerd({ dir: join(work, 'containerd') });
    try {
      const ref = `${new URL(a.url).host}/team/ctr:v1`;
      await containerd.ctr(['images', 'pull', '--plain-http', ref]);
      const images = await containerd.ctr(['images', 'ls']);
      expect(images).toContain(ref);
      expect(images).toContain(image.manifest.digest);
      // Every blob is in containerd's content store, and the layer was unpacked into a snapshot.
      const content = await containerd.ctr(['content', 'ls']);
      for (const b of image.blobs) expect(content).toContain(b.digest);
      expect(await containerd.ctr(['snapshots', 'ls'])).toMatch(/Committed/);
    } finally {
      await containerd.close();
    }
  });

  it('serves HEAD, Range reads and the spec error for an unknown blob', async () => {
    const { bytes, digest } = await blob(1, 3 * MiB + 17);
    const a = await agent('a-range');
    const head = await request(`${a.url}/v2/team/blobs/blobs/${digest}`, { method: 'HEAD' });
    expect(head.statusCode).toBe(200);
    expect(Number(head.headers['content-length'])).toBe(bytes.length);
    await head.body.dump();
    const res = await request(`${a.url}/v2/team/blobs/blobs/${digest}`, { headers: { range: `bytes=${MiB - 5}-${2 * MiB + 5}` } });
    expect(res.statusCode).toBe(206);
    expect(Buffer.from(await res.body.arrayBuffer()).equals(bytes.subarray(MiB - 5, 2 * MiB + 6))).toBe(true);
    const missing = await get(`${a.url}/v2/team/blobs/blobs/sha256:${'0'.repeat(64)}`);
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body.toString()).errors[0].code).toBe('BLOB_UNKNOWN');
  });

  it('streams a blob before it is complete', async () => {
    const { bytes, digest } = await blob(2, 12 * MiB);
    // 3 MB/s in: the 12 MiB take about four seconds, so the first piece is read long before the end.
    const a = await agent('a-stream', { limits: { ingressMBps: 3 } });
    const h = await a.agent.open('team/blobs', digest);
    let settled = false;
    void h.done.then(() => { settled = true; }, () => { settled = true; });
    const chunks: Buffer[] = [];
    let completeAtFirstByte: boolean | undefined;
    for await (const c of h.read()) {
      completeAtFirstByte ??= settled;
      chunks.push(c as Buffer);
    }
    h.release();
    expect(completeAtFirstByte).toBe(false);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
  });
});

describe('agent: membership from DNS', () => {
  it('finds the origins and the tracker by SRV records and serves an image with every digest intact', async () => {
    const port = (url: string) => Number(new URL(url).port);
    // Targets are 127.0.0.1, each with its own port: HTTP reaches them without this test's DNS.
    const dns = await startTestDnsServer({}, {
      '_http._tcp.origins.krill.test': cluster.originUrls.map((u) => ({ target: '127.0.0.1', port: port(u) })),
      '_http._tcp.trackers.krill.test': [{ target: '127.0.0.1', port: port(tracker.url) }],
    });
    try {
      const image = await smallImage(join(work, 'img-dns'), 'v1', 'agent-dns', 2 * MiB);
      await copy(`oci:${image.dir}:v1`, `docker://${cluster.proxyHost}/team/dns:v1`);
      const a = await agent('a-dns', {
        origins: { dns: { name: '_http._tcp.origins.krill.test', records: 'SRV' } },
        trackers: { dns: { name: '_http._tcp.trackers.krill.test', records: 'SRV' } },
      }, dns.resolver);
      const host = new URL(a.url).host;
      const out = join(work, 'out-dns');
      await copy(`docker://${host}/team/dns:v1`, `oci:${out}:v1`);
      expect((await inspect(`oci:${out}:v1`))['Digest']).toBe(image.manifest.digest);
      for (const name of readdirSync(join(image.dir, 'blobs', 'sha256'))) {
        expect(createHash('sha256').update(readFileSync(join(out, 'blobs', 'sha256', name))).digest('hex')).toBe(name);
      }
      // The bytes came over the peer wire (the origins seed): the tracker resolved by SRV answered.
      const metrics = (await get(`${a.url}/metrics`)).body.toString();
      const received = [...metrics.matchAll(/^krill_agent_received_bytes\{source="(\w+)"[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[2]), 0);
      expect(received).toBeGreaterThan(2 * MiB);
    } finally {
      await dns.close();
    }
  });
});

describe('agent: seeding', () => {
  it('seeds a cached blob to a peer that dials it after the download stopped seeding, for longer than its idle time', async () => {
    // 12 MiB at 3 MB/s (after a 4 MiB burst) takes about 3 s to send: far longer than the 200 ms
    // a seed swarm stays open without a new connection or a piece sent.
    const { bytes, digest } = await blob(5, 12 * MiB);
    const a = await agent('a-seed', { seedMs: 200, limits: { egressMBps: 3 } });
    expect((await get(`${a.url}/v2/team/blobs/blobs/${digest}`)).body.equals(bytes)).toBe(true);
    // The download's own seeding ends within a tick after seedMs.
    await new Promise((r) => setTimeout(r, 1200));
    const metainfo = (await (await request(`${cluster.originUrls[0]}/blobs/${digest}/metainfo`)).body.json()) as Metainfo;
    const dataPath = join(work, 'peer-b.blob');
    const file = await PieceFile.open(dataPath, metainfo);
    const swarm = new Swarm({ file, dataPath });
    const node = await PeerNode.start();
    node.register(digest, 'team/blobs', swarm);
    try {
      const done = new Promise<void>((resolve, reject) => { swarm.once('complete', () => resolve()); swarm.once('error', reject); });
      await node.connect(a.agent.peerAddress.ip, a.agent.peerAddress.port, digest);
      const stuck = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the seed swarm stopped before the peer had the blob')), 30_000).unref());
      await Promise.race([done, stuck]);
      expect(readFileSync(dataPath).equals(bytes)).toBe(true);
      expect(swarm.received.peer).toBe(bytes.length);
    } finally {
      await node.close();
      await file.close();
    }
  });
});

describe('agent: failures (acceptance 4)', () => {
  it('completes from the origins when no tracker answers', async () => {
    const { bytes, digest } = await blob(3, 6 * MiB);
    const a = await agent('a-no-tracker', { trackers: { urls: [DEAD] }, httpFallbackAfterMs: 500 });
    const { status, body } = await get(`${a.url}/v2/team/blobs/blobs/${digest}`);
    expect(status).toBe(200);
    expect(body.equals(bytes)).toBe(true);
    const r = a.agent.stats().received;
    expect(r.origins + r.originHttp).toBe(bytes.length);
    expect(r.peers).toBe(0);
  });

  it('fails with a clear error, within its timeout, when neither trackers nor origins answer', async () => {
    const { digest } = await blob(4, MiB);
    // One origin refuses connections, the other accepts them and never answers: the hang that
    // the timeout must cut short.
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const hung = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const a = await agent('a-nothing', { trackers: { urls: [DEAD] }, origins: { urls: [DEAD, hung] }, metainfoTimeoutMs: 1500 });
      const started = Date.now();
      const { status, body } = await get(`${a.url}/v2/team/blobs/blobs/${digest}`);
      const took = Date.now() - started;
      expect(status).toBe(503);
      const err = JSON.parse(body.toString()).errors[0];
      expect(err.code).toBe('UNAVAILABLE');
      expect(err.message).toMatch(/no tracker and no origin answered/);
      // It waited for the hung origin up to the configured bound, and not much past it.
      expect(took).toBeGreaterThanOrEqual(1400);
      expect(took).toBeLessThan(1500 + 3000);
    } finally {
      silent.close();
    }
  });
});

import { createReadStream, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { PieceHasher, pieceLengthFor, sha256, silentLogger, validateConfig, type Digest, type Metainfo } from '@krill/lib';
import { createTrackerClient, startTracker, trackerConfigSchema, type TrackerConfig } from '../../tracker/index.js';
import { createBackendRouter, createFsBackend, type Backend, type BackendRouter } from '../../backend/index.js';
import { createMissFetcher } from '../server/fetch-on-miss.js';
import { createBlobStore } from '../store/fs-blob-store.js';
import { bufferSource, eventually, headStatus, randomBlob, trackedOriginClusters, type OriginCluster } from '../testing/origin-cluster.js';
import { firstAnswer, startTestAgent } from '../testing/test-agent.js';
import { createOriginSeeder } from './origin-seeder.js';
import type { PeerEndpoint } from './seeder.js';

const MiB = 1024 * 1024;
const logger = silentLogger();
const cluster = trackedOriginClusters();
let open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const o of open.reverse()) await o.close();
  open = [];
});

const seeding = (idleMs = 60_000) => () => ({ peer: { host: '127.0.0.1', port: 0, idleMs } });
const metric = async (url: string, re: RegExp) => Number(re.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);
const peerOf = async (url: string) => (await (await fetch(`${url}/peer`)).json()) as PeerEndpoint;

function metainfoOf(b: Buffer): Metainfo {
  const h = new PieceHasher(pieceLengthFor(b.length));
  h.update(b);
  return h.finish(sha256(b));
}

async function agent(metainfo: Metainfo) {
  const a = await startTestAgent(metainfo);
  open.push(a);
  return a;
}

/** Downloads the blob from the origin's seeder over the wire and checks the bytes. */
async function pullFrom(c: OriginCluster, metainfo: Metainfo, bytes: Buffer) {
  const peer = await peerOf(c.urls[0]!);
  const a = await agent(metainfo);
  await a.node.connect(peer.ip, peer.port, metainfo.digest, { origin: true });
  await a.done;
  expect(readFileSync(a.dataPath).equals(bytes)).toBe(true);
  return a;
}

describe('origin seeder', () => {
  it('answers GET /peer and seeds a stored blob, held while seeded and released when idle', async () => {
    const c = await cluster(1, { replicas: 1, configure: seeding(400) });
    const { b, d } = randomBlob(3 * MiB + 17);
    await c.client.upload('team/app', d, bufferSource(b));
    await eventually(async () => (await metric(c.urls[0]!, /krill_origin_writeback_pending\S* (\d+)/)) === 0);
    const peer = await peerOf(c.urls[0]!);
    expect(peer).toEqual({ ip: '127.0.0.1', port: c.origins[0]!.peer!.port, peerId: expect.stringMatching(/^[a-f0-9]{40}$/) });
    const metainfo = (await (await fetch(`${c.urls[0]}/blobs/${d}/metainfo`)).json()) as Metainfo;
    const a = await pullFrom(c, metainfo, b);
    expect(a.swarm.received.origin).toBe(b.length);
    // Written back with its metainfo beside it, for a later miss to stream.
    expect(await c.backend.getMetainfo!('team/app', d)).toEqual(metainfo);
    const held = await fetch(`${c.urls[0]}/blobs/${d}`, { method: 'DELETE' });
    expect(held.status).toBe(412);
    expect((await held.json()).code).toBe('ERR_BLOB_HELD');
    expect(await metric(c.urls[0]!, /krill_origin_seed_swarms\S* (\d+)/)).toBe(1);
    // Exactly the blob: a piece whose write is in flight is not asked for again (regression:
    // the swarm used to re-request it, and the origin sent about twice the blob).
    // (Counted once each send has drained, which may be just after the agent has the piece.)
    await eventually(async () => (await metric(c.urls[0]!, /krill_origin_p2p_served_bytes_total\S* (\d+)/)) === b.length);
    await eventually(async () => (await metric(c.urls[0]!, /krill_origin_seed_swarms\S* (\d+)/)) === 0);
    expect((await fetch(`${c.urls[0]}/blobs/${d}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('fetches a blob only in the backend (no sidecar) on a miss and seeds it', async () => {
    const c = await cluster(1, { replicas: 1, configure: seeding() });
    const { b, d } = randomBlob(2 * MiB + 5);
    await c.backend.upload('team/app', d, Readable.from([b]), b.length);
    expect(await c.backend.getMetainfo!('team/app', d)).toBeUndefined();
    expect(await headStatus(c.urls[0]!, d)).toBe(404);
    await pullFrom(c, metainfoOf(b), b);
    expect(await headStatus(c.urls[0]!, d)).toBe(200);
    expect(await metric(c.urls[0]!, /krill_origin_fetch_on_miss_total\{result="ok"[^}]*\} (\d+)/)).toBe(1);
  });

  it('announces an open seed swarm to the tracker as a complete origin', async () => {
    const root = mkdtempSync(join(tmpdir(), 'krill-seeder-'));
    const tracker = await startTracker(validateConfig<TrackerConfig>(trackerConfigSchema, { listen: { port: 0 }, origins: { urls: ['http://127.0.0.1:1'] }, announceIntervalMs: 100 }), { logger });
    open.push(tracker);
    const c = await cluster(1, { root, replicas: 1, configure: () => ({ peer: { host: '127.0.0.1', port: 0, idleMs: 60_000 }, trackers: { urls: [tracker.url] } }) });
    const { b, d } = randomBlob(MiB + 1);
    await c.client.upload('team/app', d, bufferSource(b));
    const peer = await peerOf(c.urls[0]!);
    await pullFrom(c, metainfoOf(b), b);
    const client = createTrackerClient({ urls: [tracker.url], logger });
    open.push(client);
    const ask = () => client.announce({ digest: d, namespace: 'team/app', peerId: 'ab'.repeat(20), ip: '127.0.0.1', port: 1, complete: false });
    await eventually(async () => (await ask()).peers.some((p) => p.port === peer.port));
    expect((await ask()).peers.find((p) => p.port === peer.port)).toMatchObject({ ip: '127.0.0.1', complete: true, origin: true });
  });

  it('refuses an unknown digest with BLOB_UNKNOWN, and GET /peer is 404 without peer config', async () => {
    const c = await cluster(1, { replicas: 1, configure: seeding() });
    const peer = await peerOf(c.urls[0]!);
    expect(await firstAnswer(peer.port, sha256('absent'), 1)).toMatchObject({ type: 'error', code: 'BLOB_UNKNOWN' });
    // A namespace no backend rule would accept is refused the same way.
    expect(await firstAnswer(peer.port, sha256('absent'), 1, 'Not A Namespace')).toMatchObject({ type: 'error', code: 'BLOB_UNKNOWN' });
    const plain = await cluster(1, { replicas: 1 });
    const res = await fetch(`${plain.urls[0]}/peer`);
    expect(res.status).toBe(404);
    expect((await res.json()).code).toBe('ERR_PEER_NOT_CONFIGURED');
  });
});

/**
 * The backend's body held half-way until `release()`: a real fs backend whose download stream
 * stops after `holdAfter` bytes. It is a fake backend around a real one, not a mock: nothing
 * checks how it is called, only what the seeder serves meanwhile.
 */
function heldBackend(real: Backend, holdAfter: number) {
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  let downloads = 0;
  const backend: Backend = {
    ...real,
    async download(namespace, digest, signal) {
      downloads++;
      const source = await real.download(namespace, digest, signal);
      const out = new PassThrough({ highWaterMark: MiB });
      void (async () => {
        let sent = 0;
        for await (const chunk of source) {
          const c = chunk as Buffer;
          if (sent < holdAfter && sent + c.length >= holdAfter) {
            out.write(c.subarray(0, holdAfter - sent));
            await gate;
            out.write(c.subarray(holdAfter - sent));
          } else {
            out.write(c);
          }
          sent += c.length;
        }
        out.end();
      })().catch((err: unknown) => out.destroy(err as Error));
      return out;
    },
  };
  return { backend, release, downloads: () => downloads };
}

describe('origin seeder, streaming a miss', () => {
  it('serves verified pieces before the whole blob has arrived from the backend, and stores it once complete', async () => {
    const root = mkdtempSync(join(tmpdir(), 'krill-seeder-'));
    const { b, d } = randomBlob(8 * MiB + 3);
    const metainfo = metainfoOf(b);
    const fs = createFsBackend({ root: join(root, 'backend'), logger });
    await fs.upload('team/app', d, Readable.from([b]), b.length);
    await fs.putMetainfo!('team/app', d, metainfo);
    const real: BackendRouter = createBackendRouter({ rules: [{ namespace: '.*', fs: { root: join(root, 'backend') } }], registries: {}, logger });
    const heldAt = 4 * MiB + 100;
    const held = heldBackend(real.route('team/app'), heldAt);
    // The pieces wholly inside the bytes the backend has given so far.
    const before = Math.floor(heldAt / metainfo.pieceLength);
    const router: BackendRouter = { route: () => held.backend, tryRoute: () => held.backend, close: () => real.close() };
    const store = await createBlobStore({ dir: join(root, 'store'), capacityBytes: 1e9, logger });
    const fetcher = createMissFetcher({ store, router, logger });
    const seeder = await createOriginSeeder({
      peer: { host: '127.0.0.1', port: 0, idleMs: 60_000 }, store, fetcher, router, scratchDir: join(root, 'seeding'), logger,
    });
    open.push(router, store, seeder);

    // The metainfo comes from the sidecar at once, before the blob is in the store.
    expect(await seeder.metainfo('team/app', d)).toEqual(metainfo);
    const a = await agent(metainfo);
    await a.node.connect('127.0.0.1', seeder.endpoint.port, d, { origin: true });
    // An HTTP reader meanwhile shares the download rather than starting another.
    const viaHttp = fetcher.ensure('team/app', d);
    await eventually(async () => a.file.presentCount === before);
    await new Promise((r) => setTimeout(r, 100));
    expect(a.file.presentCount).toBe(before);
    await expect(store.stat(d)).rejects.toMatchObject({ code: 'ERR_BLOB_NOT_FOUND' });
    held.release();
    await a.done;
    await viaHttp;
    expect(readFileSync(a.dataPath).equals(b)).toBe(true);
    expect(held.downloads()).toBe(1);
    expect((await store.stat(d)).size).toBe(b.length);
    const stored: Buffer[] = [];
    for await (const c of createReadStream(join(root, 'store', 'blobs', d.slice(7, 9), d.slice(7), 'data'))) stored.push(c as Buffer);
    expect(sha256(Buffer.concat(stored))).toBe(d as Digest);
  });
});

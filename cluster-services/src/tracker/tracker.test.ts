import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256, silentLogger, validateConfig, type Digest } from '@krill/lib';
import { createOriginClient, originConfigSchema, startOrigin, type OriginConfig } from '../origin/index.js';
import { createTrackerClient } from './client/http-tracker-client.js';
import { trackerConfigSchema, type TrackerConfig } from './config.js';
import { startTracker } from './server/tracker-server.js';
import { createPeerStore } from './store/memory-peer-store.js';

const logger = silentLogger();
const d = sha256('blob') as Digest;
const id = (n: number) => n.toString(16).padStart(40, '0');
const peer = (n: number, complete = false, origin = false) => ({ peerId: id(n), ip: '10.0.0.1', port: 16000 + n, complete, origin });
let closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers = [];
});

describe('peer store', () => {
  it('hands out seeders and origins first, then leechers, capped, never the caller', () => {
    const store = createPeerStore({ ttlMs: 1000 });
    for (let i = 1; i <= 10; i++) store.upsert(d, peer(i));
    store.upsert(d, peer(20, true));
    store.upsert(d, peer(21, false, true));
    const out = store.handout(d, id(1), 5);
    expect(out).toHaveLength(5);
    expect(new Set(out.slice(0, 2).map((p) => p.peerId))).toEqual(new Set([id(20), id(21)]));
    expect(out.map((p) => p.peerId)).not.toContain(id(1));
    expect(store.handout(sha256('other') as Digest, id(1), 5)).toEqual([]);
  });

  it('forgets a peer that stops announcing after the TTL', () => {
    let t = 0;
    const store = createPeerStore({ ttlMs: 1000, now: () => t });
    store.upsert(d, peer(1));
    store.upsert(d, peer(2));
    t = 600;
    store.upsert(d, peer(2));
    t = 1200;
    expect(store.handout(d, id(9), 10).map((p) => p.peerId)).toEqual([id(2)]);
    expect(store.size()).toEqual({ blobs: 1, peers: 1 });
    t = 5000;
    expect(store.handout(d, id(9), 10)).toEqual([]);
    expect(store.size()).toEqual({ blobs: 0, peers: 0 });
  });
});

async function tracker(extra: Partial<TrackerConfig> = {}) {
  const t = await startTracker(validateConfig<TrackerConfig>(trackerConfigSchema, { listen: { port: 0 }, origins: { urls: ['http://127.0.0.1:1'] }, ...extra }), { logger });
  closers.push(() => t.close());
  return t;
}

describe('tracker server and client', () => {
  it('records announcers and hands them each other, with the interval', async () => {
    const t = await tracker({ announceIntervalMs: 2500 });
    const client = createTrackerClient({ urls: [t.url], logger });
    closers.push(() => client.close());
    const first = await client.announce({ digest: d, namespace: 'team/app', ...peer(1) });
    expect(first).toEqual({ peers: [], intervalMs: 2500 });
    await client.announce({ digest: d, namespace: 'team/app', ...peer(2, true) });
    const again = await client.announce({ digest: d, namespace: 'team/app', ...peer(1) });
    expect(again.peers).toEqual([peer(2, true)]);
    // A seeder is handed nobody.
    expect((await client.announce({ digest: d, namespace: 'team/app', ...peer(2, true) })).peers).toEqual([]);
  });

  it('rejects bad announces with their codes', async () => {
    const t = await tracker();
    const client = createTrackerClient({ urls: [t.url], logger });
    closers.push(() => client.close());
    const code = (p: Promise<unknown>) => p.then(() => undefined, (e: { code?: string }) => e.code);
    expect(await code(client.announce({ digest: 'sha256:zz' as Digest, namespace: 'team/app', ...peer(1) }))).toBe('ERR_DIGEST_INVALID');
    expect(await code(client.announce({ digest: d, namespace: 'team/app', ...peer(1), peerId: 'short' }))).toBe('ERR_PEER_INVALID');
    expect(await code(client.announce({ digest: d, namespace: 'team/app', ...peer(1), ip: '300.1.1.1' }))).toBe('ERR_PEER_INVALID');
    expect(await code(client.announce({ digest: d, namespace: 'team/app', ...peer(1), port: 0 }))).toBe('ERR_PEER_INVALID');
    expect(await code(client.announce({ digest: d, namespace: '../x', ...peer(1) }))).toBe('ERR_NAME_INVALID');
  });

  it('moves to the next tracker in rendezvous order when one is down', async () => {
    const a = await tracker();
    const b = await tracker();
    const client = createTrackerClient({ urls: [a.url, b.url], logger });
    closers.push(() => client.close());
    await client.announce({ digest: d, namespace: 'team/app', ...peer(1) });
    await a.close();
    await b.close();
    expect(await client.announce({ digest: d, namespace: 'team/app', ...peer(1) }).catch((e: { code?: string }) => e.code)).toBe('ERR_TRACKER_UNAVAILABLE');
    const c = await tracker();
    const failover = createTrackerClient({ urls: ['http://127.0.0.1:1', c.url], logger });
    closers.push(() => failover.close());
    expect((await failover.announce({ digest: d, namespace: 'team/app', ...peer(3) })).peers).toEqual([]);
  });

  it('serves metainfo from the origins', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krill-tracker-'));
    const origin = await startOrigin(validateConfig<OriginConfig>(originConfigSchema, { listen: { port: 0 }, store: { dir } }), { logger });
    closers.push(() => origin.close());
    const oc = createOriginClient({ origins: [origin.url], logger });
    closers.push(() => oc.close());
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 1, 9);
    const digest = sha256(bytes) as Digest;
    await oc.upload('team/app', digest, { size: bytes.length, open: () => Readable.from([bytes]) });
    const t = await tracker({ origins: { urls: [origin.url], replicas: 1 } });
    const client = createTrackerClient({ urls: [t.url], logger });
    closers.push(() => client.close());
    const m = await client.metainfo('team/app', digest);
    expect(m).toMatchObject({ digest, length: bytes.length, pieceLength: 512 * 1024 });
    expect(m.pieces).toHaveLength(7);
    expect(await client.metainfo('team/app', sha256('absent') as Digest).catch((e: { code?: string }) => e.code)).toBe('ERR_BLOB_NOT_FOUND');
  });
});

describe('tracker announce responses', () => {
  // Responses are built from cached per-peer JSON; a peer that moves must not be handed out at
  // its old address.
  it('hands out a peer at the address of its latest announce', async () => {
    const t = await tracker();
    const client = createTrackerClient({ urls: [t.url], logger });
    closers.push(() => client.close());
    await client.announce({ digest: d, namespace: 'team/app', ...peer(2) });
    expect((await client.announce({ digest: d, namespace: 'team/app', ...peer(1) })).peers).toEqual([peer(2)]);
    await client.announce({ digest: d, namespace: 'team/app', ...peer(2), ip: '10.0.0.2', port: 17002 });
    expect((await client.announce({ digest: d, namespace: 'team/app', ...peer(1) })).peers).toEqual([{ ...peer(2), ip: '10.0.0.2', port: 17002 }]);
  });
});

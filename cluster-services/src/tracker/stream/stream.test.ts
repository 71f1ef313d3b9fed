import { createServer } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256, silentLogger, validateConfig, type Digest } from '@krill/lib';
import { createTrackerClient } from '../client/http-tracker-client.js';
import { trackerConfigSchema, type TrackerConfig } from '../config.js';
import { startTracker } from '../server/tracker-server.js';
import { createPeerStore } from '../store/memory-peer-store.js';
import { FrameError, FrameType, createFrameReader, decodeAnnounce, decodeError, decodePeers, encodeAnnounce, encodeError, encodePeers } from './frames.js';
import { connectAnnounceStream } from './stream-client.js';

const logger = silentLogger();
const id = (n: number) => n.toString(16).padStart(40, '0');
const digest = sha256('stream-blob') as Digest;
const announceOf = (n: number, complete = false) => ({ digest, namespace: 'team/app', peerId: id(n), ip: `10.0.${n >> 8}.${n & 255}`, port: 16000 + n, complete, origin: false });
let closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers = [];
});

async function tracker(): Promise<{ url: string; port: number }> {
  const t = await startTracker(validateConfig<TrackerConfig>(trackerConfigSchema, { listen: { port: 0 }, origins: { urls: ['http://127.0.0.1:1'] }, announceIntervalMs: 2500 }), { logger });
  closers.push(() => t.close());
  return { url: t.url, port: Number(new URL(t.url).port) };
}

/** Frames split over reads as a socket may deliver them. */
function frames(bytes: Buffer, cut: number): Array<[number, number, Buffer]> {
  const got: Array<[number, number, Buffer]> = [];
  const r = createFrameReader((type, i, body) => got.push([type, i, Buffer.from(body)]));
  for (let at = 0; at < bytes.length; at += cut) r.push(bytes.subarray(at, at + cut));
  return got;
}

describe('announce stream frames', () => {
  it('round-trips announces, peers and errors, whole or split into 1-byte reads', () => {
    const a = { ...announceOf(7), origin: true, namespace: 'team/äpp' };
    const store = createPeerStore({ ttlMs: 10_000 });
    for (let n = 1; n <= 3; n++) store.upsert(digest, { ...announceOf(n, n === 2), origin: n === 3 });
    const wire = store.handoutWire(digest, id(9), 50);
    const stream = Buffer.concat([encodeAnnounce({ ...a, id: 41 }), encodePeers(42, wire, 3000), encodeError(43, 'ERR_NAME_INVALID', 'bad name')]);
    for (const cut of [stream.length, 1, 7]) {
      const [f1, f2, f3] = frames(stream, cut);
      expect(f1![0]).toBe(FrameType.Announce);
      expect(decodeAnnounce(f1![1], f1![2])).toEqual({ ...a, id: 41 });
      expect(f2![1]).toBe(42);
      const peers = decodePeers(f2![2]);
      expect(peers.intervalMs).toBe(3000);
      // Every peer of the store as the JSON handout gives it (no caller to leave out: id 9 is new).
      const want = [1, 2, 3].map((n) => ({ peerId: id(n), ip: `10.0.0.${n}`, port: 16000 + n, complete: n === 2, origin: n === 3 }));
      expect(peers.peers.map((x) => x.peerId).sort()).toEqual(want.map((x) => x.peerId));
      expect([...peers.peers].sort((x, y) => x.peerId.localeCompare(y.peerId))).toEqual(want);
      expect(new Set(store.handout(digest, id(9), 50).map((x) => x.peerId))).toEqual(new Set(want.map((x) => x.peerId)));
      expect(decodeError(f3![2])).toEqual({ code: 'ERR_NAME_INVALID', message: 'bad name' });
    }
  });

  it('refuses what cannot be encoded, and frames too large or too short for their head', () => {
    expect(() => encodeAnnounce({ ...announceOf(1), id: 1, peerId: 'xyz' })).toThrow(/peerId "xyz" must be 40 hex characters/);
    expect(() => encodeAnnounce({ ...announceOf(1), id: 1, ip: '::1' })).toThrow(/not an IPv4 address/);
    expect(() => encodeAnnounce({ ...announceOf(1), id: 1, digest: 'sha256:00' as Digest })).toThrow(/not a sha256 digest/);
    const r = createFrameReader(() => {});
    expect(() => r.push(Buffer.from([0, 1, 0, 0]))).toThrow(FrameError);
    expect(() => createFrameReader(() => {}).push(Buffer.from([0, 0, 0, 2, 1, 0]))).toThrow(/outside/);
    expect(() => decodeAnnounce(1, Buffer.alloc(10))).toThrow(/too short/);
  });
});

describe('announce stream', () => {
  it('answers as POST /announce does: peers, seeders first, never the caller, and a refused announce', async () => {
    const t = await tracker();
    const c = connectAnnounceStream(t.url, { timeoutMs: 5000 });
    closers.push(() => c.close());
    await c.announce({ ...announceOf(1, true) });
    const [r2, r3] = await Promise.all([c.announce(announceOf(2)), c.announce(announceOf(3))]);
    expect(r2.intervalMs).toBe(2500);
    expect(r2.peers[0]).toEqual({ peerId: id(1), ip: '10.0.0.1', port: 16001, complete: true, origin: false });
    expect(r3.peers.map((p) => p.peerId)).not.toContain(id(3));
    // Over HTTP the same tracker hands out the same swarm.
    const http = createTrackerClient({ urls: [t.url], logger, stream: false });
    closers.push(() => http.close());
    expect(new Set((await http.announce(announceOf(4))).peers.map((p) => p.peerId))).toEqual(new Set([id(1), id(2), id(3)]));
    await expect(c.announce({ ...announceOf(5), namespace: '../etc' })).rejects.toMatchObject({ category: 'InvalidArgument' });
    // The connection is still good after a refused announce.
    expect((await c.announce(announceOf(6))).peers.length).toBe(4);
  });

  it('closes a connection that breaks the protocol, counts it, and keeps serving others', async () => {
    const t = await tracker();
    const raw = connect(t.port, '127.0.0.1');
    const closed = new Promise<void>((r) => raw.once('close', () => r()));
    raw.on('error', () => {});
    // Flowing, or the tracker's close would wait unread behind the 101.
    raw.resume();
    raw.write('GET /announce/stream HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: krill-announce/1\r\n\r\n');
    // A frame announcing a length of 1 MiB.
    raw.write(Buffer.from([0, 16, 0, 0, 1, 0, 0, 0, 1]));
    await closed;
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/^krill_tracker_stream_violations_total\{[^}]*\} 1$/m);
    const c = connectAnnounceStream(t.url, { timeoutMs: 5000 });
    closers.push(() => c.close());
    expect((await c.announce(announceOf(1))).peers).toEqual([]);
    // A wrong upgrade is refused with a 400 that says what is served.
    const res = await new Promise<string>((resolve) => {
      const s = connect(t.port, '127.0.0.1');
      let text = '';
      s.on('data', (d) => { text += d.toString(); });
      s.on('close', () => resolve(text));
      s.write('GET /announce/stream HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n');
    });
    expect(res).toMatch(/^HTTP\/1\.1 400 [\s\S]*upgrade to krill-announce\/1 on \/announce\/stream only/);
  });

  it('the tracker client announces over HTTP to a tracker without the stream, and fails over when a tracker dies mid-stream', async () => {
    // A tracker of an earlier version: POST /announce only, the upgrade refused.
    let posts = 0;
    const old = createServer((req, res) => {
      posts++;
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"peers":[],"intervalMs":1234}'));
    });
    old.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n'));
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => old.close(() => r())));
    const oldUrl = `http://127.0.0.1:${(old.address() as { port: number }).port}`;
    const c = createTrackerClient({ urls: [oldUrl], logger });
    closers.push(() => c.close());
    expect((await c.announce(announceOf(1))).intervalMs).toBe(1234);
    expect((await c.announce(announceOf(2))).intervalMs).toBe(1234);
    expect(posts).toBe(2);

    // Two real trackers; the one a digest belongs to stops: its stream breaks, the next answers.
    const t1 = await startTracker(validateConfig<TrackerConfig>(trackerConfigSchema, { listen: { port: 0 }, origins: { urls: ['http://127.0.0.1:1'] } }), { logger });
    const t2 = await tracker();
    const both = createTrackerClient({ urls: [t1.url, t2.url], logger });
    closers.push(() => both.close());
    await both.announce(announceOf(1, true));
    await t1.close();
    await both.announce(announceOf(2, true));
    const got = await both.announce(announceOf(3));
    expect(got.peers.length).toBeGreaterThanOrEqual(1);
  });
});

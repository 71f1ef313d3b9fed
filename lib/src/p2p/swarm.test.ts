import { createCipheriv, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PieceHasher } from '../metainfo.js';
import type { Metainfo } from '../metainfo.js';
import { PeerNode } from './peer-node.js';
import { PieceFile } from './piece-file.js';
import { Swarm } from './swarm.js';
import { TokenBucket } from './token-bucket.js';

const MiB = 1024 * 1024;
let nodes: PeerNode[] = [];
let dirs: string[] = [];
afterEach(async () => {
  await Promise.all(nodes.map((n) => n.close()));
  nodes = [];
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** Stores every piece of `bytes` (1 MiB pieces): the file of a complete seeder. */
async function writeAll(file: PieceFile, bytes: Buffer): Promise<void> {
  for (let i = 0; i < file.pieceCount; i++) await file.write(i, bytes.subarray(i * MiB, (i + 1) * MiB));
}

/** A working directory removed after the test (each holds several copies of a blob). */
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'krill-swarm-'));
  dirs.push(d);
  return d;
}

function makeBlob(size: number): { bytes: Buffer; metainfo: Metainfo } {
  const bytes = createCipheriv('aes-128-ctr', Buffer.alloc(16, 3), Buffer.alloc(16)).update(Buffer.alloc(size));
  const h = new PieceHasher(MiB);
  h.update(bytes);
  return { bytes, metainfo: h.finish(`sha256:${createHash('sha256').update(bytes).digest('hex')}`) };
}

async function peer(dir: string, name: string, metainfo: Metainfo, opts: { egress?: TokenBucket } = {}) {
  const dataPath = join(dir, name);
  const file = await PieceFile.open(dataPath, metainfo);
  const swarm = new Swarm({ file, pipeline: 4, requestTimeoutMs: 5000, ...(opts.egress ? { egress: opts.egress } : {}) });
  const node = await PeerNode.start();
  nodes.push(node);
  node.register(metainfo.digest, 'team/app', swarm);
  const done = new Promise<void>((resolve) => (file.complete ? resolve() : swarm.once('complete', () => resolve())));
  return { node, swarm, file, dataPath, done };
}

describe('swarm on loopback', () => {
  it('1 seeder + 5 agents get a 64 MB blob, byte-identical and verified, mostly from each other', async () => {
    const dir = tempDir();
    const { bytes, metainfo } = makeBlob(64 * MiB);
    // The seeder is capped (16 MB/s) so that the agents must share to finish quickly.
    const seed = await peer(dir, 'seed', metainfo, { egress: new TokenBucket(16 * MiB, 2 * MiB) });
    await writeAll(seed.file, bytes);
    const agents = await Promise.all([1, 2, 3, 4, 5].map((i) => peer(dir, `agent-${i}`, metainfo)));
    for (const [i, a] of agents.entries()) {
      await a.node.connect('127.0.0.1', seed.node.port, metainfo.digest, { origin: true });
      for (const b of agents.slice(0, i)) await a.node.connect('127.0.0.1', b.node.port, metainfo.digest);
    }
    await Promise.all(agents.map((a) => a.done));
    const fromPeers = agents.reduce((n, a) => n + a.swarm.received.peer, 0);
    const fromOrigin = agents.reduce((n, a) => n + a.swarm.received.origin, 0);
    for (const a of agents) expect(readFileSync(a.dataPath).equals(bytes)).toBe(true);
    expect(fromPeers + fromOrigin).toBe(5 * bytes.length);
    // The agents served each other at least half of what they received (counted, not assumed).
    expect(fromPeers / (fromPeers + fromOrigin)).toBeGreaterThanOrEqual(0.5);
    expect(seed.swarm.served).toBeGreaterThanOrEqual(fromOrigin);
  });

  it('blacklists a peer that sends corrupt pieces and still completes correctly', async () => {
    const dir = tempDir();
    const { bytes, metainfo } = makeBlob(8 * MiB);
    const good = await peer(dir, 'good', metainfo, { egress: new TokenBucket(8 * MiB, MiB) });
    await writeAll(good.file, bytes);
    // A liar: it claims every piece and answers requests with garbage.
    const liarFile = await PieceFile.open(join(dir, 'liar'), metainfo);
    const liarSwarm = new Swarm({ file: liarFile });
    (liarFile as unknown as { has: (i: number) => boolean }).has = () => true;
    (liarFile as unknown as { bitfield: () => Buffer }).bitfield = () => Buffer.alloc(1, 0xff);
    (liarFile as unknown as { read: (i: number) => Promise<Buffer> }).read = async () => Buffer.alloc(MiB, 7);
    const liar = await PeerNode.start();
    nodes.push(liar);
    liar.register(metainfo.digest, 'team/app', liarSwarm);
    const agent = await peer(dir, 'agent', metainfo);
    const banned: string[] = [];
    agent.swarm.on('blacklist', (key: string) => banned.push(key));
    await agent.node.connect('127.0.0.1', liar.port, metainfo.digest);
    await agent.node.connect('127.0.0.1', good.node.port, metainfo.digest);
    await agent.done;
    expect(banned).toEqual([liar.peerId.toString('hex')]);
    expect(readFileSync(agent.dataPath).equals(bytes)).toBe(true);
  });

  it('a peer killed mid-transfer does not stop the others', async () => {
    const dir = tempDir();
    const { bytes, metainfo } = makeBlob(16 * MiB);
    const seeds = await Promise.all(['s1', 's2'].map((n) => peer(dir, n, metainfo, { egress: new TokenBucket(8 * MiB, MiB) })));
    for (const s of seeds) await writeAll(s.file, bytes);
    const agent = await peer(dir, 'agent', metainfo);
    for (const s of seeds) await agent.node.connect('127.0.0.1', s.node.port, metainfo.digest);
    // Kill the first seeder once the agent is part-way through.
    await new Promise<void>((resolve) => agent.file.on('piece', () => agent.file.presentCount === 4 && resolve()));
    await seeds[0]!.node.close();
    await agent.done;
    expect(readFileSync(agent.dataPath).equals(bytes)).toBe(true);
  });

  it('an agent restarted mid-download resumes and does not fetch again the pieces it had verified', async () => {
    const dir = tempDir();
    const { bytes, metainfo } = makeBlob(16 * MiB);
    const seed = await peer(dir, 'seed', metainfo, { egress: new TokenBucket(8 * MiB, MiB) });
    await writeAll(seed.file, bytes);
    const first = await peer(dir, 'agent', metainfo);
    await first.node.connect('127.0.0.1', seed.node.port, metainfo.digest);
    await new Promise<void>((resolve) => first.file.on('piece', () => first.file.presentCount === 6 && resolve()));
    await first.node.close();
    await first.file.close();
    const had = first.file.presentCount;
    const servedBefore = seed.swarm.served;
    const again = await peer(dir, 'agent', metainfo);
    const resumed = again.file.presentCount;
    expect(resumed).toBeGreaterThanOrEqual(had);
    await again.node.connect('127.0.0.1', seed.node.port, metainfo.digest);
    await again.done;
    expect(readFileSync(again.dataPath).equals(bytes)).toBe(true);
    // Exactly the missing pieces were fetched after the restart; none of the verified ones again.
    expect(again.swarm.received.peer + again.swarm.received.origin).toBe((metainfo.pieces.length - resumed) * MiB);
    expect(seed.swarm.served - servedBefore).toBeLessThanOrEqual((metainfo.pieces.length - resumed) * MiB);
  });

  it('a seeder declines a piece a peer holds, so it sends each piece once, and serves it when asked again', async () => {
    const dir = tempDir();
    const { bytes, metainfo } = makeBlob(16 * MiB);
    const seed = await peer(dir, 'seed', metainfo, { egress: new TokenBucket(32 * MiB, MiB) });
    await writeAll(seed.file, bytes);
    const first = await peer(dir, 'first', metainfo);
    await first.node.connect('127.0.0.1', seed.node.port, metainfo.digest, { origin: true });
    await first.done;
    expect(seed.swarm.served).toBe(bytes.length);
    // The second agent asks the seeder too; the seeder knows the first one holds every piece.
    const second = await peer(dir, 'second', metainfo);
    await second.node.connect('127.0.0.1', seed.node.port, metainfo.digest, { origin: true });
    await second.node.connect('127.0.0.1', first.node.port, metainfo.digest);
    await second.done;
    expect(readFileSync(second.dataPath).equals(bytes)).toBe(true);
    expect(seed.swarm.declined).toBeGreaterThan(0);
    expect(second.swarm.received.peer).toBeGreaterThanOrEqual(bytes.length - 2 * MiB);
    expect(seed.swarm.served).toBeLessThanOrEqual(bytes.length + 2 * MiB);

    // A holder that never sends: declined once, the asker comes back, and the seeder serves it.
    const { bytes: small, metainfo: smallInfo } = makeBlob(3 * MiB);
    const seed2 = await peer(dir, 'seed2', smallInfo);
    await writeAll(seed2.file, small);
    const mute = await peer(dir, 'mute', smallInfo, { egress: new TokenBucket(1, 1) });
    await mute.node.connect('127.0.0.1', seed2.node.port, smallInfo.digest, { origin: true });
    await mute.done;
    const asker = await peer(dir, 'asker', smallInfo);
    await asker.node.connect('127.0.0.1', mute.node.port, smallInfo.digest);
    await asker.node.connect('127.0.0.1', seed2.node.port, smallInfo.digest, { origin: true });
    await asker.done;
    expect(readFileSync(asker.dataPath).equals(small)).toBe(true);
    expect(seed2.swarm.declined).toBeGreaterThan(0);
    expect(asker.swarm.received.origin).toBe(small.length);
  });

  it('refuses a connection for a blob the node does not serve', async () => {
    const dir = tempDir();
    const { metainfo } = makeBlob(2 * MiB);
    const other = makeBlob(3 * MiB).metainfo;
    const a = await peer(dir, 'a', metainfo);
    const b = await peer(dir, 'b', other);
    await expect(a.node.connect('127.0.0.1', b.node.port, metainfo.digest)).rejects.toMatchObject({ code: 'ERR_WIRE_HANDSHAKE' });
  });
});

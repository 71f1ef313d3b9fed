import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PieceHasher, type Metainfo } from '../metainfo.js';
import { FrameDecoder, encodeFrame } from '../wire/framing.js';
import { PEER_ID_BYTES, WIRE_VERSION, encodeHeader, type WireMessage } from '../wire/messages.js';
import { PeerNode } from './peer-node.js';
import { PieceFile } from './piece-file.js';
import { Swarm } from './swarm.js';

const PIECE = 64 * 1024;
let nodes: PeerNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.map((n) => n.close()));
  nodes = [];
});

function makeBlob(size: number): { bytes: Buffer; metainfo: Metainfo } {
  const bytes = randomBytes(size);
  const h = new PieceHasher(PIECE);
  h.update(bytes);
  return { bytes, metainfo: h.finish(`sha256:${createHash('sha256').update(bytes).digest('hex')}`) };
}

async function start(o: Parameters<typeof PeerNode.start>[0] = {}): Promise<PeerNode> {
  const n = await PeerNode.start(o);
  nodes.push(n);
  return n;
}

/** A downloader for `metainfo` in `dir`; resolves `done` when the blob is complete and verified. */
async function downloader(dir: string, metainfo: Metainfo) {
  const dataPath = join(dir, 'agent');
  const file = await PieceFile.open(dataPath, metainfo);
  const swarm = new Swarm({ file });
  const node = await start();
  node.register(metainfo.digest, 'team/app', swarm);
  const done = new Promise<void>((resolve) => swarm.once('complete', () => resolve()));
  return { node, dataPath, done };
}

/**
 * Sends a handshake for `metainfo` over a raw socket and returns the first message answered.
 * A Wire would turn an error before the handshake into a violation and hide its code.
 */
async function firstAnswer(port: number, metainfo: Metainfo): Promise<WireMessage> {
  const socket = connect({ host: '127.0.0.1', port });
  const n = metainfo.pieces.length;
  const hello: WireMessage = { type: 'handshake', version: WIRE_VERSION, peerId: randomBytes(PEER_ID_BYTES), digest: metainfo.digest, namespace: 'team/app', bitfield: Buffer.alloc(Math.ceil(n / 8)), pieceCount: n };
  for (const b of encodeFrame(hello, encodeHeader(hello))) socket.write(b);
  const decoder = new FrameDecoder(PIECE);
  try {
    return await new Promise<WireMessage>((resolve, reject) => {
      socket.on('data', (c: Buffer) => decoder.feed(c, resolve));
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('closed without an answer')));
    });
  } finally {
    socket.destroy();
  }
}

describe('peer node', () => {
  it('creates a swarm on demand for a digest it has none for, once for concurrent dialers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krill-node-'));
    const { bytes, metainfo } = makeBlob(5 * PIECE + 9);
    const seedPath = join(dir, 'seed');
    writeFileSync(seedPath, bytes);
    const asked: Array<[string, string]> = [];
    const seeder = await start({
      resolve: async (digest, namespace) => {
        asked.push([digest, namespace]);
        if (digest !== metainfo.digest) return undefined;
        await new Promise((r) => setTimeout(r, 50));
        return new Swarm({ file: await PieceFile.seed(seedPath, metainfo) });
      },
    });
    const joined: string[] = [];
    seeder.on('peer', (digest: string) => joined.push(digest));
    const a = await downloader(join(dir), metainfo);
    const b = await downloader(mkdtempSync(join(tmpdir(), 'krill-node-')), metainfo);
    await Promise.all([a, b].map((x) => x.node.connect('127.0.0.1', seeder.port, metainfo.digest, { origin: true })));
    await Promise.all([a.done, b.done]);
    for (const x of [a, b]) expect(readFileSync(x.dataPath).equals(bytes)).toBe(true);
    expect(asked).toEqual([[metainfo.digest, 'team/app']]);
    expect(joined).toEqual([metainfo.digest, metainfo.digest]);
    expect(seeder.swarmOf(metainfo.digest)).toBeDefined();
  });

  it('reads what an accepted connection brings into its shared buffer, as a dialled one does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krill-node-'));
    // Several reads' worth of pieces, so the one buffer is reused many times over.
    const { bytes, metainfo } = makeBlob(40 * PIECE + 5);
    const seedPath = join(dir, 'seed');
    writeFileSync(seedPath, bytes);
    const seeder = await start();
    seeder.register(metainfo.digest, 'team/app', new Swarm({ file: await PieceFile.seed(seedPath, metainfo) }));
    const a = await downloader(dir, metainfo);
    // The seeder dials: every piece reaches the downloader over a connection it accepted.
    await seeder.connect('127.0.0.1', a.node.port, metainfo.digest);
    await a.done;
    expect(readFileSync(a.dataPath).equals(bytes)).toBe(true);
    expect(a.node.sharedReadsAccepted).toBe(1);
    expect(seeder.sharedReadsAccepted).toBe(0);
  });

  it('answers BLOB_UNKNOWN when resolve finds nothing or fails, and after unregister', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krill-node-'));
    const { bytes, metainfo } = makeBlob(2 * PIECE);
    const seedPath = join(dir, 'seed');
    writeFileSync(seedPath, bytes);
    let mode: 'none' | 'throw' = 'none';
    const seeder = await start({
      resolve: async () => {
        if (mode === 'throw') throw new Error('backend down');
        return undefined;
      },
    });
    const a = await downloader(dir, metainfo);
    expect(await firstAnswer(seeder.port, metainfo)).toMatchObject({ type: 'error', code: 'BLOB_UNKNOWN' });
    await expect(a.node.connect('127.0.0.1', seeder.port, metainfo.digest)).rejects.toMatchObject({ code: 'ERR_WIRE_HANDSHAKE' });
    mode = 'throw';
    expect(await firstAnswer(seeder.port, metainfo)).toMatchObject({ type: 'error', code: 'BLOB_UNKNOWN' });
    // A registered swarm is served; once unregistered, the digest is resolved again (and refused).
    const seedSwarm = new Swarm({ file: await PieceFile.seed(seedPath, metainfo) });
    seeder.register(metainfo.digest, 'team/app', seedSwarm);
    await a.node.connect('127.0.0.1', seeder.port, metainfo.digest);
    await a.done;
    seeder.unregister(metainfo.digest);
    seedSwarm.close();
    expect(seeder.swarmOf(metainfo.digest)).toBeUndefined();
    mode = 'none';
    expect(await firstAnswer(seeder.port, metainfo)).toMatchObject({ type: 'error', code: 'BLOB_UNKNOWN' });
  });
});

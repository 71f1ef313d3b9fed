import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { WireMessage } from '../wire/messages.js';
import type { Wire } from '../wire/wire.js';
import { PieceFile } from './piece-file.js';
import { Swarm } from './swarm.js';
import { testBlob } from './test-blob.js';
import { handshakenPair, until } from './test-wires.js';

const PIECE = 4096;
let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/**
 * Connects a seeder holding all 8 pieces to `swarm` over a real wire pair as peer `key` (an origin
 * unless `origin` is false); the requests it is sent arrive in `asked`.
 */
function connectOrigin(swarm: Swarm, key: string, origin = true): { asked: number[]; remote: Wire } {
  const { local, remote, handshake } = handshakenPair(key, PIECE, true);
  const asked: number[] = [];
  remote.on('message', (m: WireMessage) => { if (m.type === 'request') asked.push(m.index); });
  swarm.add(key, local, handshake, origin);
  return { asked, remote };
}

/** The swarm under test, with a pipeline of 2, over an empty file of an 8-piece blob. */
async function subject(maxPeers?: number, dialledReserve?: number): Promise<{ bytes: Buffer; file: PieceFile; swarm: Swarm }> {
  const dir = mkdtempSync(join(tmpdir(), 'krill-requests-'));
  dirs.push(dir);
  const { bytes, metainfo } = testBlob(8 * PIECE, PIECE);
  const file = await PieceFile.open(join(dir, 'blob'), metainfo);
  return { bytes, file, swarm: new Swarm({ file, pipeline: 2, ...(maxPeers ? { maxPeers } : {}), ...(dialledReserve ? { dialledReserve } : {}) }) };
}

describe('swarm requests', () => {
  it('asks for pieces in index order, and asks each of several origins from its own share of the blob', async () => {
    const { file, swarm } = await subject();
    const first = connectOrigin(swarm, 'a').asked;
    await until(() => first.length === 2);
    expect(first).toEqual([0, 1]);
    // Second of two origins by peer id: its share starts half way.
    const second = connectOrigin(swarm, 'b').asked;
    await until(() => second.length === 2);
    expect(second).toEqual([4, 5]);
    swarm.close();
    await file.close();
  });

  it('takes a piece it did not ask for from a complete agent, as from an origin (super-seeding)', async () => {
    const { bytes, file, swarm } = await subject();
    const { asked, remote } = connectOrigin(swarm, 'c', false);
    await until(() => asked.length === 2);
    // Asked for 0 and 1, it sends 6 in place of 0 (and would say PIECE_UNAVAILABLE for 0).
    await remote.send({ type: 'piece', index: 6, data: bytes.subarray(6 * PIECE, 7 * PIECE) });
    await until(() => file.has(6));
    expect(swarm.received.peer).toBe(PIECE);
    expect(swarm.discarded.peer).toBe(0);
    swarm.close();
    await file.close();
  });

  it('tells a new piece to the peers that lack it and to origins only; a peer that completes is told of every piece', async () => {
    const { bytes, file, swarm } = await subject();
    const haves = new Map<string, number[]>();
    const connect = (key: string, full: boolean, origin: boolean): Wire => {
      const { local, remote, handshake } = handshakenPair(key, PIECE, full);
      haves.set(key, []);
      remote.on('message', (m: WireMessage) => { if (m.type === 'have') haves.get(key)!.push(m.index); });
      swarm.add(key, local, handshake, origin);
      return remote;
    };
    connect('origin', true, true);
    const holder = connect('holder', false, false);
    connect('lacker', false, false);
    const asked: number[] = [];
    holder.on('message', (m: WireMessage) => { if (m.type === 'request') asked.push(m.index); });
    // The holder announces piece 5, is asked for it (nobody else has been) and sends it.
    await holder.send({ type: 'have', index: 5 });
    await until(() => asked.includes(5));
    await holder.send({ type: 'piece', index: 5, data: bytes.subarray(5 * PIECE, 6 * PIECE) });
    await until(() => haves.get('lacker')!.includes(5) && haves.get('origin')!.includes(5));
    await new Promise((r) => setTimeout(r, 20));
    expect(haves.get('holder')).toEqual([]);
    // Complete, the holder chooses what to send by what its peers hold: it learns of piece 5 now.
    await holder.send({ type: 'complete' });
    await until(() => haves.get('holder')!.includes(5));
    swarm.close();
    await file.close();
  });

  it('keeps a connection to an origin when its slots are full of agents, and closes one more agent', async () => {
    const { file, swarm } = await subject(1);
    const add = (key: string, origin: boolean): Wire => {
      const { local, handshake } = handshakenPair(key, PIECE, origin);
      swarm.add(key, local, handshake, origin);
      return local;
    };
    const agent = add('agent-a', false);
    const extra = add('agent-b', false);
    const origin = add('origin', true);
    expect(extra.isClosed).toBe(true);
    expect(agent.isClosed).toBe(false);
    expect(origin.isClosed).toBe(false);
    expect([swarm.peerCount, swarm.originCount]).toEqual([2, 1]);
    swarm.close();
    await file.close();
  });

  it('keeps connections it dialled beyond the cap up to its reserve, when agents that dialled in fill it', async () => {
    const { file, swarm } = await subject(1, 1);
    const add = (key: string, dialled: boolean): Wire => {
      const { local, handshake } = handshakenPair(key, PIECE, false);
      swarm.add(key, local, handshake, false, dialled);
      return local;
    };
    const dialledIn = add('agent-in', false);
    const refused = add('agent-in-2', false);
    const chosen = add('agent-out', true);
    const beyond = add('agent-out-2', true);
    expect([dialledIn.isClosed, refused.isClosed, chosen.isClosed, beyond.isClosed]).toEqual([false, true, false, true]);
    expect([swarm.peerCount, swarm.dialledCount]).toEqual([2, 1]);
    swarm.close();
    await file.close();
  });
});

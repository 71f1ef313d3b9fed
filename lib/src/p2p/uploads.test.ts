import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { WireMessage } from '../wire/messages.js';
import { PieceFile } from './piece-file.js';
import { testBlob } from './test-blob.js';
import { handshakenPair, until } from './test-wires.js';
import { Uploads, type Pacer, type UploadPeer } from './uploads.js';

const PIECE = 4096;
let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** A piece file holding the pieces `present` of a blob of `count` pieces. */
async function file(present: number[], count = 8): Promise<PieceFile> {
  const dir = mkdtempSync(join(tmpdir(), 'krill-uploads-'));
  dirs.push(dir);
  const { bytes, metainfo } = testBlob(count * PIECE, PIECE);
  const f = await PieceFile.open(join(dir, 'blob'), metainfo);
  for (const i of present) await f.write(i, bytes.subarray(i * PIECE, (i + 1) * PIECE));
  return f;
}

/**
 * A connected peer over a real wire pair: what it is sent arrives in `got`, in order, and the
 * piece's arrival is noted in `arrivals` under the peer's name.
 */
function peer(name: string, arrivals: string[] = []): UploadPeer & { name: string; got: WireMessage[] } {
  const { local: wire, remote } = handshakenPair(name, PIECE, false);
  const got: WireMessage[] = [];
  remote.on('message', (m: WireMessage) => {
    got.push(m);
    if (m.type === 'piece') arrivals.push(name);
  });
  return { name, wire, has: new Uint8Array(8), origin: false, declined: new Set(), got };
}

/**
 * Egress budget handed out one piece at a time, when the test says so: `release` lets the next
 * sender through once one waits, then waits until `sent()` holds.
 */
function gate(): Pacer & { release(sent: () => boolean): Promise<void> } {
  const waiting: Array<() => void> = [];
  return {
    take: () => new Promise<void>((resolve) => waiting.push(resolve)),
    async release(sent) {
      await until(() => waiting.length > 0);
      waiting.shift()!();
      await until(sent);
    },
  };
}

const pieces = (p: { got: WireMessage[] }) => p.got.flatMap((m) => (m.type === 'piece' ? [m.index] : []));

describe('uploads', () => {
  it('a seeder with pieces never sent serves the peer served least, not the first to ask', async () => {
    const f = await file([0, 1, 2, 3, 4, 5, 6, 7]);
    const order: string[] = [];
    const a = peer('a', order);
    const b = peer('b', order);
    const egress = gate();
    const up = new Uploads({ file: f, egress, peers: () => [a, b], onWarning: (err) => { throw err; } });
    for (const i of [0, 1, 2]) up.request(a, i);
    up.request(b, 3);
    for (let k = 1; k <= 4; k++) await egress.release(() => order.length === k);
    expect(order).toEqual(['a', 'b', 'a', 'a']);
    expect(pieces(a).sort()).toEqual([0, 1, 2]);
    expect(pieces(b)).toEqual([3]);
    await f.close();
  });

  it('an origin still fetching its blob sends, in place of a piece it already sent, the next one it holds and never sent', async () => {
    const f = await file([0, 2, 3]);
    const a = peer('a');
    const b = peer('b');
    const egress = gate();
    const up = new Uploads({ file: f, egress, peers: () => [a, b], onWarning: (err) => { throw err; }, seeder: true });
    up.request(a, 0);
    await egress.release(() => pieces(a).length === 1);
    up.request(b, 0);
    await egress.release(() => pieces(b).length === 1);
    expect(pieces(a)).toEqual([0]);
    // Piece 1 is not here yet: 2 goes instead, and b is told to ask a peer for 0.
    expect(pieces(b)).toEqual([2]);
    expect(b.got.find((m) => m.type === 'error')).toMatchObject({ code: 'PIECE_UNAVAILABLE', index: 0 });
    // An agent that is not a seeder sends what it is asked for.
    const g = await file([0, 2, 3]);
    const c = peer('c');
    const plain = new Uploads({ file: g, egress, peers: () => [a, c], onWarning: (err) => { throw err; } });
    plain.request(a, 0);
    await egress.release(() => pieces(a).length === 2);
    plain.request(c, 0);
    await egress.release(() => pieces(c).length === 1);
    expect(pieces(c)).toEqual([0]);
    await Promise.all([f.close(), g.close()]);
  });

  it('a request for a piece sent before waits for at most eight fresher ones, then goes first', async () => {
    // 24 pieces, 23 here: an agent, not a seeder, so it sends what it is asked for.
    const f = await file(Array.from({ length: 23 }, (_, i) => i), 24);
    const order: string[] = [];
    const [a, b, c] = [peer('a', order), peer('b', order), peer('c', order)];
    const egress = gate();
    const up = new Uploads({ file: f, egress, peers: () => [a, b, c], onWarning: (err) => { throw err; } });
    up.request(b, 0);
    await egress.release(() => order.length === 1);
    // Piece 0 has been sent once; c's twelve pieces never: each of those would go first.
    up.request(a, 0);
    for (let i = 1; i <= 12; i++) up.request(c, i);
    for (let k = 2; k <= 14; k++) await egress.release(() => order.length === k);
    expect(order).toEqual(['b', ...Array<string>(8).fill('c'), 'a', ...Array<string>(4).fill('c')]);
    expect(pieces(a)).toEqual([0]);
    expect(pieces(c)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    await f.close();
  });
});

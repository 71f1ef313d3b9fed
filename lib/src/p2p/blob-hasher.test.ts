import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BlobHasher } from './blob-hasher.js';
import { PieceFile } from './piece-file.js';
import { flipOnDisk, testBlob } from './test-blob.js';

const PIECE = 64 * 1024;
const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

const blob = (size: number) => testBlob(size, PIECE);
const piece = (b: Buffer, i: number) => b.subarray(i * PIECE, (i + 1) * PIECE);
function path(): string {
  const d = mkdtempSync(join(tmpdir(), 'krill-hasher-'));
  dirs.push(d);
  return join(d, 'blob');
}
/** A hasher fed by the file's `piece` events, as the swarm feeds it. */
function attach(f: PieceFile): BlobHasher {
  const h = new BlobHasher(f);
  f.on('piece', (i: number, bytes?: Buffer) => h.stored(i, bytes));
  return h;
}

describe('blob hasher', () => {
  it('hashes the whole blob as pieces arrive in any order', async () => {
    const { bytes, metainfo } = blob(7 * PIECE + 99);
    const f = await PieceFile.open(path(), metainfo);
    const h = attach(f);
    for (const i of [0, 1, 4, 2, 7, 3, 6, 5]) await f.write(i, piece(bytes, i));
    expect(await h.digest()).toBe(metainfo.digest);
    // Asked again, the same answer.
    expect(await h.digest()).toBe(metainfo.digest);
    await f.close();
  });

  it('takes the pieces a resumed file already holds from disk', async () => {
    const { bytes, metainfo } = blob(4 * PIECE);
    const p = path();
    const first = await PieceFile.open(p, metainfo);
    for (const i of [0, 2]) await first.write(i, piece(bytes, i));
    await first.close();
    const again = await PieceFile.open(p, metainfo);
    const h = attach(again);
    const pending = h.digest();
    for (const i of [3, 1]) await again.write(i, piece(bytes, i));
    expect(await pending).toBe(metainfo.digest);
    await again.close();
  });

  it('hashes what is on disk for pieces it reads back, so a file changed under it does not match', async () => {
    const { bytes, metainfo } = blob(3 * PIECE);
    const p = path();
    // No copies of recent pieces: a read-back goes to the disk.
    const f = await PieceFile.open(p, metainfo, { keepRecent: false });
    const h = attach(f);
    await f.write(2, piece(bytes, 2));
    // Piece 2 is read back once 0 and 1 are in; flip a byte of it on disk first.
    flipOnDisk(p, 2 * PIECE + 5, bytes);
    for (const i of [0, 1]) await f.write(i, piece(bytes, i));
    expect(await h.digest()).not.toBe(metainfo.digest);
    await f.close();
  });
});

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PieceFile } from './piece-file.js';
import { RecentPieces } from './recent-pieces.js';
import { flipOnDisk, testBlob } from './test-blob.js';

const PIECE = 64 * 1024;
const piece = (b: Buffer, i: number) => b.subarray(i * PIECE, (i + 1) * PIECE);

describe('recent pieces', () => {
  it('serve a piece file\'s reads of pieces written lately from memory, until it forgets them', async () => {
    const { bytes, metainfo } = testBlob(4 * PIECE, PIECE);
    const p = join(mkdtempSync(join(tmpdir(), 'krill-recent-')), 'blob');
    const f = await PieceFile.open(p, metainfo);
    await f.write(2, piece(bytes, 2));
    flipOnDisk(p, 2 * PIECE + 3, bytes);
    // From the copy kept: the change on disk is not seen.
    expect((await f.read(2)).equals(piece(bytes, 2))).toBe(true);
    f.forgetRecent();
    // From the disk now.
    expect((await f.read(2)).equals(piece(bytes, 2))).toBe(false);
    await f.close();
  });

  it('keep the newest pieces within the budget, which every file of the process shares', () => {
    const data = (n: number) => Buffer.alloc(PIECE, n);
    const out = Buffer.alloc(PIECE);
    const a = new RecentPieces(true, 2 * PIECE);
    for (const i of [0, 1, 2]) a.keep(i, data(i));
    // The oldest went to make room.
    expect(a.copyTo(0, out)).toBe(false);
    expect(a.copyTo(2, out)).toBe(true);
    expect(out.equals(data(2))).toBe(true);
    // A second file finds the budget taken, and keeps nothing until the first lets go.
    const b = new RecentPieces(true, 2 * PIECE);
    b.keep(7, data(7));
    expect(b.copyTo(7, out)).toBe(false);
    a.clear();
    b.keep(7, data(7));
    expect(b.copyTo(7, out)).toBe(true);
    b.clear();
    // Disabled (pieces too large to keep), nothing is kept.
    const c = new RecentPieces(false);
    c.keep(1, data(1));
    expect(c.copyTo(1, out)).toBe(false);
  });
});

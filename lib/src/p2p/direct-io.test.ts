import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BufferPool } from '../wire/buffer-pool.js';
import { PieceFile } from './piece-file.js';
import { testBlob } from './test-blob.js';

const PIECE = 64 * 1024;
const dirs: string[] = [];
const path = () => {
  const dir = mkdtempSync(join(tmpdir(), 'krill-direct-'));
  dirs.push(dir);
  return join(dir, 'blob');
};
const piece = (b: Buffer, i: number) => b.subarray(i * PIECE, (i + 1) * PIECE);
/** Bytes of `file` held in the page cache (util-linux fincore). */
const cached = (file: string) => Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('piece file direct I/O', () => {
  it('writes and reads whole pieces in pool buffers past the page cache; the odd last piece goes through it', async () => {
    const pool = new BufferPool(1 << 24);
    const { bytes, metainfo } = testBlob(8 * PIECE + 1000, PIECE);
    const p = path();
    const f = await PieceFile.open(p, metainfo);
    for (let i = 0; i < 8; i++) {
      const buf = pool.take(PIECE);
      piece(bytes, i).copy(buf);
      expect(await f.write(i, buf)).toBe(true);
      pool.give(buf);
    }
    await f.write(8, bytes.subarray(8 * PIECE));
    await f.sync();
    // Only the last piece's page came through the page cache.
    expect(cached(p)).toBeLessThanOrEqual(4096);
    for (const i of [3, 0, 7]) {
      const got = await f.read(i, pool);
      expect(got.equals(piece(bytes, i))).toBe(true);
      pool.give(got);
    }
    expect(cached(p)).toBeLessThanOrEqual(4096);
    expect((await f.read(8, pool)).equals(bytes.subarray(8 * PIECE))).toBe(true);
    await f.close();
    expect(readFileSync(p).equals(bytes)).toBe(true);
  });

  it('reads into a pool buffer what was just written through the page cache (not yet on disk)', async () => {
    const pool = new BufferPool(1 << 24);
    const { bytes, metainfo } = testBlob(4 * PIECE, PIECE);
    const p = path();
    const f = await PieceFile.open(p, metainfo);
    // Plain buffers: written through the page cache, dirty until written back.
    for (let i = 0; i < 4; i++) await f.write(i, Buffer.from(piece(bytes, i)));
    for (let i = 0; i < 4; i++) expect((await f.read(i, pool)).equals(piece(bytes, i))).toBe(true);
    await f.close();
  });

  it('a seed file serves pieces into pool buffers, even right after it was written through the page cache', async () => {
    const pool = new BufferPool(1 << 24);
    const { bytes, metainfo } = testBlob(3 * PIECE + 5, PIECE);
    const p = path();
    writeFileSync(p, bytes);
    const f = await PieceFile.seed(p, metainfo);
    for (const i of [2, 0, 1, 3]) expect((await f.read(i, pool)).equals(bytes.subarray(i * PIECE, (i + 1) * PIECE))).toBe(true);
    await f.close();
  });
});

import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PieceFile } from './piece-file.js';
import { testBlob } from './test-blob.js';

const PIECE = 64 * 1024;

const blob = (size: number) => testBlob(size, PIECE);
const piece = (b: Buffer, i: number) => b.subarray(i * PIECE, (i + 1) * PIECE);
const path = () => join(mkdtempSync(join(tmpdir(), 'krill-pieces-')), 'blob');

describe('piece file', () => {
  it('assembles a blob from pieces in any order, verifying each', async () => {
    const { bytes, metainfo } = blob(5 * PIECE + 123);
    const p = path();
    const f = await PieceFile.open(p, metainfo);
    for (const i of [5, 0, 3, 1, 4, 2]) await f.write(i, piece(bytes, i));
    expect(f.complete).toBe(true);
    expect(readFileSync(p).equals(bytes)).toBe(true);
    expect((await f.read(5)).equals(piece(bytes, 5))).toBe(true);
    await f.close();
  });

  it('refuses a corrupt or wrongly sized piece and keeps it absent', async () => {
    const { bytes, metainfo } = blob(3 * PIECE);
    const f = await PieceFile.open(path(), metainfo);
    const bad = Buffer.from(piece(bytes, 1));
    bad[100]! ^= 1;
    await expect(f.write(1, bad)).rejects.toMatchObject({ code: 'ERR_PIECE_CORRUPT' });
    await expect(f.write(1, piece(bytes, 1).subarray(1))).rejects.toMatchObject({ code: 'ERR_PIECE_CORRUPT' });
    await expect(f.write(3, piece(bytes, 0))).rejects.toMatchObject({ code: 'ERR_PIECE_INDEX' });
    expect(f.has(1)).toBe(false);
    await expect(f.read(1)).rejects.toMatchObject({ code: 'ERR_PIECE_MISSING' });
    await f.close();
  });

  it('resumes after a restart with the pieces already verified, and reports them in the bitfield', async () => {
    const { bytes, metainfo } = blob(10 * PIECE);
    const p = path();
    const first = await PieceFile.open(p, metainfo);
    for (const i of [0, 2, 9]) await first.write(i, piece(bytes, i));
    await first.close();
    const again = await PieceFile.open(p, metainfo);
    expect(again.presentCount).toBe(3);
    expect([...Array(10).keys()].filter((i) => again.has(i))).toEqual([0, 2, 9]);
    expect(again.bitfield()).toEqual(Buffer.from([0b1010_0000, 0b0100_0000]));
    for (const i of [1, 3, 4, 5, 6, 7, 8]) await again.write(i, piece(bytes, i));
    expect(again.complete).toBe(true);
    expect(readFileSync(p).equals(bytes)).toBe(true);
    await again.close();
  });

  it('marks pieces in the status file only once synced, a group in one write that keeps the marks before it', async () => {
    const { bytes, metainfo } = blob(10 * PIECE);
    const p = path();
    const status = () => [...readFileSync(`${p}.status`)];
    const first = await PieceFile.open(p, metainfo);
    for (const i of [2, 7]) await first.write(i, piece(bytes, i));
    await first.close();
    const again = await PieceFile.open(p, metainfo);
    await again.write(5, piece(bytes, 5));
    await again.write(3, piece(bytes, 3));
    // Written and served, not yet synced: not marked (the group sync is a timer away).
    expect(status()).toEqual([0, 0, 1, 0, 0, 0, 0, 1, 0, 0]);
    await again.sync();
    // The span 3..5 was written whole: piece 4, absent, stays unmarked, and 2 and 7 stay marked.
    expect(status()).toEqual([0, 0, 1, 1, 0, 1, 0, 1, 0, 0]);
    await again.close();
  });

  it('a reader gets the bytes in order as pieces arrive, before the blob is complete', async () => {
    const { bytes, metainfo } = blob(4 * PIECE + 7);
    const f = await PieceFile.open(path(), metainfo);
    const got: Buffer[] = [];
    const reader = f.reader();
    reader.on('data', (c: Buffer) => got.push(c));
    const ended = new Promise((r) => reader.once('end', r));
    await f.write(1, piece(bytes, 1));
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toHaveLength(0);
    await f.write(0, piece(bytes, 0));
    // Pieces 0 and 1 are read from the file as soon as 0 lands; wait for them (a loaded machine
    // may take longer than a fixed pause), then check that nothing past them came.
    for (const deadline = Date.now() + 5000; Buffer.concat(got).length < 2 * PIECE && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(Buffer.concat(got).equals(bytes.subarray(0, 2 * PIECE))).toBe(true);
    for (const i of [4, 3, 2]) await f.write(i, piece(bytes, i));
    await ended;
    expect(Buffer.concat(got).equals(bytes)).toBe(true);
    await f.close();
  });

  it('opens a complete blob for seeding: every piece present, reads in order, writes refused, no status file', async () => {
    const { bytes, metainfo } = blob(3 * PIECE + 5);
    const p = path();
    writeFileSync(p, bytes);
    const f = await PieceFile.seed(p, metainfo);
    expect(f.seedOnly).toBe(true);
    expect(f.complete).toBe(true);
    expect(f.bitfield()).toEqual(Buffer.from([0b1111_0000]));
    expect((await f.read(3)).equals(piece(bytes, 3))).toBe(true);
    const got: Buffer[] = [];
    for await (const c of f.reader()) got.push(c as Buffer);
    expect(Buffer.concat(got).equals(bytes)).toBe(true);
    await expect(f.write(0, piece(bytes, 0))).rejects.toMatchObject({ code: 'ERR_PIECE_READ_ONLY' });
    expect(existsSync(`${p}.status`)).toBe(false);
    expect(readFileSync(p).equals(bytes)).toBe(true);
    await f.close();
  });

  it('refuses to seed a file whose length is not the metainfo\'s', async () => {
    const { bytes, metainfo } = blob(2 * PIECE);
    const p = path();
    writeFileSync(p, bytes.subarray(1));
    await expect(PieceFile.seed(p, metainfo)).rejects.toMatchObject({ code: 'ERR_PIECE_FILE_SIZE' });
  });
});

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PieceHasher, pieceLengthFor } from './metainfo.js';
import { sha256 } from './digest.js';

const MiB = 1024 * 1024;

describe('metainfo', () => {
  it('chooses piece length by size', () => {
    expect(pieceLengthFor(0)).toBe(MiB / 2);
    expect(pieceLengthFor(512 * MiB - 1)).toBe(MiB / 2);
    expect(pieceLengthFor(512 * MiB)).toBe(MiB);
    expect(pieceLengthFor(1024 * MiB - 1)).toBe(MiB);
    expect(pieceLengthFor(1024 * MiB)).toBe(4 * MiB);
    expect(pieceLengthFor(4 * 1024 * MiB + 1)).toBe(8 * MiB);
    expect(pieceLengthFor(17 * 1024 * MiB)).toBe(16 * MiB);
  });

  it('hashes pieces whatever the chunking', () => {
    const data = Buffer.alloc(2.5 * MiB, 7);
    data.write('edge', MiB - 2);
    const h = new PieceHasher(MiB);
    for (let off = 0; off < data.length; off += 300_001) h.update(data.subarray(off, off + 300_001));
    const m = h.finish(sha256(data));
    expect(m.length).toBe(data.length);
    expect(m.pieces).toEqual([0, 1, 2].map((i) => createHash('sha256').update(data.subarray(i * MiB, (i + 1) * MiB)).digest('hex')));
  });

  it('gives an empty blob one empty piece', () => {
    const m = new PieceHasher(MiB).finish(sha256(''));
    expect(m.pieces).toEqual([createHash('sha256').digest('hex')]);
  });
});

import { describe, expect, it } from 'vitest';
import { sha256 } from '@krill/lib';
import { BlobIndex } from './lru.js';

const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((x) => sha256(x)) as [ReturnType<typeof sha256>, ReturnType<typeof sha256>, ReturnType<typeof sha256>, ReturnType<typeof sha256>];

describe('blob index (LRU by bytes)', () => {
  it('evicts by last access, oldest first, skipping pinned blobs', () => {
    const index = new BlobIndex();
    index.add(a, 100, 1_000);
    index.add(b, 100, 2_000);
    index.add(c, 100, 3_000);
    expect(index.victims(100, 300)).toEqual([a]);
    // Reading `a` makes it the most recent; `b` is now the oldest.
    expect(index.touch(a, 100_000)).toBe(true);
    expect(index.victims(150, 300)).toEqual([b, c]);
    index.pin(b);
    expect(index.victims(150, 300)).toEqual([c, a]);
    index.pin(c);
    index.pin(a);
    expect(index.victims(1, 300)).toBeUndefined();
    expect(index.victims(0, 300)).toEqual([]);
  });

  it('updates last access at most once a minute', () => {
    const index = new BlobIndex();
    index.add(a, 1, 0);
    expect(index.touch(a, 30_000)).toBe(false);
    expect(index.touch(a, 61_000)).toBe(true);
    expect(index.touch(a, 100_000)).toBe(false);
    expect(index.touch(d, 200_000)).toBe(false);
  });


  it('never evicts a held blob, counts holds, and keeps holds apart from pins', () => {
    const index = new BlobIndex();
    index.add(a, 100, 1_000);
    index.add(b, 100, 2_000);
    index.hold(a);
    index.hold(a);
    index.pin(a);
    expect(index.victims(100, 200)).toEqual([b]);
    // The write-back finishing does not free a blob still being seeded.
    index.unpin(a);
    expect(index.victims(100, 200)).toEqual([b]);
    index.release(a);
    expect(index.isHeld(a)).toBe(true);
    index.release(a);
    expect(index.isHeld(a)).toBe(false);
    expect(index.victims(100, 200)).toEqual([a]);
  });
});

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { PieceHasher, sha256, silentLogger, type Digest } from '@krill/lib';
import { createBlobStore } from './fs-blob-store.js';

const logger = silentLogger();
const dir = () => mkdtempSync(join(tmpdir(), 'krill-store-'));
const blob = (n: number) => { const b = randomBytes(n); return { b, d: sha256(b) }; };
async function code(p: Promise<unknown>): Promise<string | undefined> {
  try { await p; } catch (err) { return (err as { code?: string }).code; }
  return undefined;
}
async function read(s: Readable): Promise<Buffer> {
  const c: Buffer[] = [];
  for await (const x of s) c.push(x as Buffer);
  return Buffer.concat(c);
}

describe('blob store', () => {
  it('stores a verified blob with its piece hashes and serves ranges', async () => {
    const store = await createBlobStore({ dir: dir(), capacityBytes: 1e9, logger });
    const { b, d } = blob(3 * 1024 * 1024 + 5);
    expect(await store.put(d, Readable.from([b]), { size: b.length })).toEqual({ size: b.length });
    const [m, again] = await Promise.all([store.metainfo(d), store.metainfo(d)]);
    expect(again).toEqual(m);
    expect(m).toMatchObject({ digest: d, length: b.length, pieceLength: 512 * 1024 });
    expect(m.pieces).toHaveLength(7);
    expect(m.pieces[6]).toBe(createHash('sha256').update(b.subarray(6 * 512 * 1024)).digest('hex'));
    expect((await read(await store.open(d))).equals(b)).toBe(true);
    expect((await read(await store.open(d, { start: 10, end: 19 }))).equals(b.subarray(10, 20))).toBe(true);
    expect(await store.metainfo(d)).toEqual(m);
  });

  it('adopts a verified file by renaming it into place, with its metainfo, and refuses one of the wrong size', async () => {
    const root = dir();
    const store = await createBlobStore({ dir: root, capacityBytes: 1e9, logger });
    const { b, d } = blob(2 * 1024 * 1024 + 7);
    const hasher = new PieceHasher(1024 * 1024);
    hasher.update(b);
    const m = hasher.finish(d);
    const file = join(root, 'seeding-copy');
    writeFileSync(file, b);
    expect(await code(store.adopt(file, { ...m, length: b.length + 1 }))).toBe('ERR_SIZE_INVALID');
    expect(await code(store.stat(d))).toBe('ERR_BLOB_NOT_FOUND');
    expect(existsSync(file)).toBe(true);
    expect(await store.adopt(file, m)).toEqual({ size: b.length });
    // Moved, not copied: the file is gone from where it was.
    expect(existsSync(file)).toBe(false);
    expect((await read(await store.open(d))).equals(b)).toBe(true);
    expect(await store.metainfo(d)).toEqual(m);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    // Stored already: the stored copy stays, and the file is not taken.
    writeFileSync(file, b);
    expect(await store.adopt(file, m)).toEqual({ size: b.length });
    expect(existsSync(file)).toBe(true);
    // Survives a reopen like any stored blob.
    const again = await createBlobStore({ dir: root, capacityBytes: 1e9, logger });
    expect(await again.metainfo(d)).toEqual(m);
  });

  it('keeps nothing when the bytes do not match the digest or the size', async () => {
    const root = dir();
    const store = await createBlobStore({ dir: root, capacityBytes: 1e9, logger });
    const { b } = blob(1000);
    const other = sha256('other');
    expect(await code(store.put(other, Readable.from([b])))).toBe('ERR_DIGEST_MISMATCH');
    expect(await code(store.put(sha256(b), Readable.from([b]), { size: 999 }))).toBe('ERR_SIZE_INVALID');
    expect(await code(store.put(sha256(b), Readable.from([b]), { size: 1001 }))).toBe('ERR_SIZE_INVALID');
    expect(await code(store.stat(other))).toBe('ERR_BLOB_NOT_FOUND');
    expect(await code(store.stat(sha256(b)))).toBe('ERR_BLOB_NOT_FOUND');
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });

  it('evicts least recently used unpinned blobs by bytes and never a pinned one', async () => {
    const store = await createBlobStore({ dir: dir(), capacityBytes: 3000, logger });
    const [a, b, c, e] = [blob(1000), blob(1000), blob(1000), blob(1000)];
    await store.put(a.d, Readable.from([a.b]), { pin: true });
    await store.put(b.d, Readable.from([b.b]));
    await store.put(c.d, Readable.from([c.b]));
    await store.put(e.d, Readable.from([e.b]));
    expect(await code(store.stat(a.d))).toBeUndefined();
    expect(await code(store.stat(b.d))).toBe('ERR_BLOB_NOT_FOUND');
    expect(store.usedBytes()).toBe(3000);
    await store.setPinned(c.d, true);
    await store.setPinned(e.d, true);
    const f = blob(1000);
    expect(await code(store.put(f.d, Readable.from([f.b])))).toBe('ERR_STORE_FULL');
    expect(await code(store.delete(a.d))).toBe('ERR_BLOB_PINNED');
  });

  it('resumes uploads by offset and commits only matching bytes', async () => {
    const store = await createBlobStore({ dir: dir(), capacityBytes: 1e9, logger });
    const { b, d } = blob(5000);
    const id = await store.startUpload();
    expect(await store.append(id, 0, Readable.from([b.subarray(0, 2000)]))).toBe(2000);
    expect(await code(store.append(id, 0, Readable.from([b.subarray(0, 10)])))).toBe('ERR_UPLOAD_OFFSET');
    expect(await store.append(id, 2000, Readable.from([b.subarray(2000)]))).toBe(5000);
    await store.commit(id, d);
    expect((await store.stat(d)).size).toBe(5000);
    const id2 = await store.startUpload();
    await store.append(id2, 0, Readable.from([b.subarray(0, 4000)]));
    const d2 = sha256(Buffer.concat([b, b]));
    expect(await code(store.commit(id2, d2))).toBe('ERR_DIGEST_MISMATCH');
    expect(await code(store.uploadSize(id2))).toBe('ERR_UPLOAD_NOT_FOUND');
    expect(await code(store.stat(d2))).toBe('ERR_BLOB_NOT_FOUND');
    expect(await code(store.uploadSize('../../etc'))).toBe('ERR_UPLOAD_NOT_FOUND');
  });

  it('reopens with its blobs and without leftover temporary files', async () => {
    const root = dir();
    const store = await createBlobStore({ dir: root, capacityBytes: 1e9, logger });
    const { b, d } = blob(100);
    await store.put(d, Readable.from([b]));
    mkdirSync(join(root, 'tmp', 'crashed'), { recursive: true });
    writeFileSync(join(root, 'tmp', 'crashed', 'data'), 'partial');
    const again = await createBlobStore({ dir: root, capacityBytes: 1e9, logger });
    expect((await again.stat(d as Digest)).size).toBe(100);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });
});

describe('blob store under concurrency and wear', () => {
  it('never exceeds capacity when several blobs are placed at once', async () => {
    const store = await createBlobStore({ dir: dir(), capacityBytes: 5000, logger });
    const blobs = Array.from({ length: 8 }, () => blob(1000));
    await Promise.all(blobs.map((x) => store.put(x.d, Readable.from([x.b]))));
    expect(store.usedBytes()).toBeLessThanOrEqual(5000);
    const present = await Promise.all(blobs.map((x) => store.stat(x.d).then(() => 1, () => 0)));
    expect(present.reduce<number>((s, n) => s + n, 0)).toBe(5);
  });

  it('stores concurrent writes of one digest once', async () => {
    const store = await createBlobStore({ dir: dir(), capacityBytes: 1e9, logger });
    const { b, d } = blob(200_000);
    await Promise.all([1, 2, 3].map(() => store.put(d, Readable.from([b]))));
    expect(store.usedBytes()).toBe(200_000);
    expect((await read(await store.open(d))).equals(b)).toBe(true);
  });

  it('refuses a second append to an upload while one is running', async () => {
    const store = await createBlobStore({ dir: dir(), capacityBytes: 1e9, logger });
    const id = await store.startUpload();
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const slow = Readable.from((async function* () { yield Buffer.from('abc'); await gate; yield Buffer.from('def'); })());
    const first = store.append(id, 0, slow);
    await new Promise((r) => setTimeout(r, 20));
    expect(await code(store.append(id, 0, Readable.from([Buffer.from('x')])))).toBe('ERR_UPLOAD_BUSY');
    expect(await code(store.commit(id, sha256('abcdef')))).toBe('ERR_UPLOAD_BUSY');
    release();
    expect(await first).toBe(6);
    await store.commit(id, sha256('abcdef'));
    expect((await store.stat(sha256('abcdef'))).size).toBe(6);
  });

  it('removes abandoned uploads at open and recomputes an unreadable metainfo file', async () => {
    const root = dir();
    const store = await createBlobStore({ dir: root, capacityBytes: 1e9, logger });
    const id = await store.startUpload();
    const { b, d } = blob(3000);
    await store.put(d, Readable.from([b]));
    const m = await store.metainfo(d);
    writeFileSync(join(root, 'blobs', d.slice(7, 9), d.slice(7), 'metainfo.json'), '');
    const again = await createBlobStore({ dir: root, capacityBytes: 1e9, logger, uploadMaxAgeMs: -1 });
    expect(await code(again.uploadSize(id))).toBe('ERR_UPLOAD_NOT_FOUND');
    expect(await again.metainfo(d)).toEqual(m);
    expect(readdirSync(join(root, 'blobs', d.slice(7, 9), d.slice(7))).sort()).toEqual(['data', 'metainfo.json']);
    await Promise.all([store.close(), again.close()]);
  });
});

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256, silentLogger } from '@krill/lib';
import { createBlobStore } from './fs-blob-store.js';
import { createUploadArea, type UploadArea } from './upload-area.js';

const logger = silentLogger();
let dir: string;
let area: UploadArea;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'krill-upload-area-'));
  area = createUploadArea(dir, logger);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Emits `bytes`, then fails as a connection that breaks off does. */
function breaking(bytes: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(bytes);
      } else {
        setImmediate(() => this.destroy(new Error('connection reset')));
      }
    },
  });
}

const code = (p: Promise<unknown>) => p.then(() => 'ok', (err: { code?: string }) => err.code);
const hashed = (id: string) => area.withUpload(id, (file) => area.hashed(id, file));

describe('upload area: incremental hashing', () => {
  it('chunks appended in order are hashed as they arrive; the commit does not read the file', async () => {
    const id = await area.start();
    await area.append(id, 0, Readable.from([Buffer.from('hello ')]));
    await area.append(id, 6, Readable.from([Buffer.from('big '), Buffer.from('world')]));
    expect(await hashed(id)).toEqual({ digest: sha256('hello big world'), size: 15, incremental: true });
  });

  it('an atomic chunk that breaks off is cut back to its offset, and the running hash with it', async () => {
    const id = await area.start();
    await area.append(id, 0, Readable.from([Buffer.from('first-')]), { atomic: true });
    expect(await code(area.append(id, 6, breaking(Buffer.alloc(50_000, 7)), { atomic: true }))).toBe('ERR_UPLOAD_INVALID');
    expect(await area.size(id)).toBe(6);
    await area.append(id, 6, Readable.from([Buffer.from('second')]), { atomic: true });
    expect(await hashed(id)).toEqual({ digest: sha256('first-second'), size: 12, incremental: true });
  });

  it('a resumed upload (a broken body kept what arrived) is still verified, by reading the file', async () => {
    const id = await area.start();
    const b = Buffer.alloc(40_000, 3);
    expect(await code(area.append(id, 0, breaking(b.subarray(0, 25_000))))).not.toBe('ok');
    const kept = await area.size(id);
    await area.append(id, kept, Readable.from([b.subarray(kept)]));
    expect(await hashed(id)).toEqual({ digest: sha256(b), size: b.length, incremental: false });
  });

  it('bytes that reach the file behind the running hash are still what is verified', async () => {
    const id = await area.start();
    await area.append(id, 0, Readable.from([Buffer.from('abc')]));
    writeFileSync(join(dir, id), 'abcdef');
    // The running hash covers 3 bytes, the file holds 6: the file is read instead.
    expect(await hashed(id)).toEqual({ digest: sha256('abcdef'), size: 6, incremental: false });
  });

  it('an atomic append waits for an abandoned one to let go instead of failing as busy', async () => {
    const id = await area.start();
    const stalled = new Readable({ read() {} });
    const first = area.append(id, 0, stalled, { atomic: true });
    stalled.push(Buffer.from('partial'));
    await new Promise((r) => setTimeout(r, 50));
    const second = area.append(id, 0, Readable.from([Buffer.from('whole')]), { atomic: true });
    setTimeout(() => stalled.destroy(new Error('gone')), 100);
    expect(await code(first)).toBe('ERR_UPLOAD_INVALID');
    expect(await second).toBe(5);
    expect(readFileSync(join(dir, id), 'utf8')).toBe('whole');
  });
});

describe('fs blob store: commits of uploads', () => {
  it('commits after a restart (no running hash) by reading the file, and refuses a wrong digest', async () => {
    const storeDir = join(dir, 'store');
    let store = await createBlobStore({ dir: storeDir, capacityBytes: 1 << 30, logger });
    const id = await store.startUpload();
    await store.append(id, 0, Readable.from([Buffer.from('before restart')]));
    const other = await store.startUpload();
    await store.append(other, 0, Readable.from([Buffer.from('wrong')]));
    await store.close();
    store = await createBlobStore({ dir: storeDir, capacityBytes: 1 << 30, logger });
    expect(await code(store.commit(other, sha256('right')))).toBe('ERR_DIGEST_MISMATCH');
    expect(await store.commit(id, sha256('before restart'))).toEqual({ size: 14 });
    expect(await store.stat(sha256('before restart'))).toEqual({ size: 14 });
    await store.close();
  });

  it('committing a blob that is stored already keeps the stored copy and ends the upload', async () => {
    const store = await createBlobStore({ dir: join(dir, 'store'), capacityBytes: 1 << 30, logger });
    const d = sha256('same bytes');
    await store.put(d, Readable.from([Buffer.from('same bytes')]));
    const id = await store.startUpload();
    await store.append(id, 0, Readable.from([Buffer.from('same bytes')]));
    expect(await store.commit(id, d)).toEqual({ size: 10 });
    expect(await code(store.uploadSize(id))).toBe('ERR_UPLOAD_NOT_FOUND');
    expect(await store.stat(d)).toEqual({ size: 10 });
    await store.close();
  });

  it('a commit with wait waits for an abandoned atomic chunk to be cut back, then verifies', async () => {
    const store = await createBlobStore({ dir: join(dir, 'store'), capacityBytes: 1 << 30, logger });
    const id = await store.startUpload();
    await store.append(id, 0, Readable.from([Buffer.from('kept')]), { atomic: true });
    const stalled = new Readable({ read() {} });
    const chunk = store.append(id, 4, stalled, { atomic: true });
    stalled.push(Buffer.from('-lost'));
    await new Promise((r) => setTimeout(r, 50));
    expect(await code(store.commit(id, sha256('kept')))).toBe('ERR_UPLOAD_BUSY');
    const commit = store.commit(id, sha256('kept'), { wait: true });
    setTimeout(() => stalled.destroy(new Error('gone')), 100);
    expect(await code(chunk)).toBe('ERR_UPLOAD_INVALID');
    expect(await commit).toEqual({ size: 4 });
    await store.close();
  });
});

import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend } from '@krill/cluster-services';
import { Digester, sha256, type Digest } from '@krill/lib';

/** What a backend test's factory returns; a fresh, empty backend per call. */
export interface BackendFixture {
  backend: Backend;
  /** Closes the backend and stops and removes whatever the factory started. */
  cleanup(): Promise<void>;
  /**
   * Puts a blob in place behind the backend's back. Required for read-only backends (the suite
   * cannot upload through them); writable backends default to `backend.upload`.
   */
  seed?(digest: Digest, body: Readable, size: number): Promise<void>;
}

export interface BackendSuiteOptions {
  /**
   * Size of the "larger than one part" blob. The S3 test sets 5 MiB parts and ~12 MiB here, so
   * the blob spans three parts, the last one short. Default 12 MiB.
   */
  largeBlobBytes?: number;
  /** Runs the read-only subset and checks that uploads are refused with ERR_BACKEND_READ_ONLY. */
  readOnly?: boolean;
}

const NS = 'conformance/app';
const CHUNK_BYTES = 64 * 1024;

/** A deterministic pseudo-random blob generated as a stream (AES-CTR over zeros), never held whole. */
export interface GeneratedBlob {
  size: number;
  digest: Digest;
  stream(): Readable;
}

export async function generatedBlob(seed: string, size: number): Promise<GeneratedBlob> {
  const stream = (): Readable => Readable.from(chunks(seed, size), { objectMode: false });
  const digester = new Digester();
  for await (const chunk of stream()) digester.update(chunk as Buffer);
  return { size, digest: digester.digest(), stream };
}

function* chunks(seed: string, size: number): Generator<Buffer> {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK_BYTES);
  for (let left = size; left > 0; left -= CHUNK_BYTES) yield cipher.update(zeros.subarray(0, Math.min(CHUNK_BYTES, left)));
}

/** A small blob held in memory. */
function smallBlob(size = 1000): { bytes: Buffer; digest: Digest } {
  const bytes = randomBytes(size);
  return { bytes, digest: sha256(bytes) };
}

/** Reads a stream to its end, returning its size and SHA-256 without keeping the bytes. */
export async function hashStream(stream: Readable): Promise<{ size: number; digest: Digest }> {
  const digester = new Digester();
  for await (const chunk of stream) digester.update(chunk as Buffer);
  return { size: digester.size, digest: digester.digest() };
}

/** The rejection's `code`, or 'resolved' when the promise did not reject. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return (err as { code?: string }).code ?? `uncoded: ${String(err)}`;
  }
}

/** A body that yields `bytes` and then fails, as a dropped client connection does. */
function failingBody(bytes: Buffer | Iterable<Buffer>): Readable {
  const parts = Buffer.isBuffer(bytes) ? [bytes] : bytes;
  return Readable.from(
    (function* () {
      yield* parts;
      throw new Error('connection reset by the test');
    })(),
    { objectMode: false },
  );
}

/**
 * The conformance suite every Backend passes (containerd's ContentSuite): one `describe` per
 * backend, a fresh backend from `factory` for every test.
 */
export function defineBackendSuite(name: string, factory: () => Promise<BackendFixture>, options: BackendSuiteOptions = {}): void {
  const largeBytes = options.largeBlobBytes ?? 12 * 1024 * 1024;

  describe(`backend conformance: ${name}`, () => {
    let fx: BackendFixture;
    let backend: Backend;
    const seed = (digest: Digest, body: Readable, size: number): Promise<void> =>
      fx.seed ? fx.seed(digest, body, size) : backend.upload(NS, digest, body, size);

    beforeEach(async () => {
      fx = await factory();
      backend = fx.backend;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    it('reports a missing blob as ERR_BACKEND_BLOB_NOT_FOUND on stat and download', async () => {
      const { digest } = smallBlob();
      expect(await codeOf(backend.stat(NS, digest))).toBe('ERR_BACKEND_BLOB_NOT_FOUND');
      expect(await codeOf(backend.download(NS, digest))).toBe('ERR_BACKEND_BLOB_NOT_FOUND');
    });

    it('serves a stored blob: stat gives its size and download its exact bytes', async () => {
      const blob = smallBlob(4321);
      await seed(blob.digest, Readable.from([blob.bytes]), blob.bytes.length);
      expect(await backend.stat(NS, blob.digest)).toEqual({ size: 4321 });
      expect(await hashStream(await backend.download(NS, blob.digest))).toEqual({ size: 4321, digest: blob.digest });
    });

    it('stores and serves an empty blob', async () => {
      const empty = sha256(new Uint8Array(0));
      await seed(empty, Readable.from([]), 0);
      expect(await backend.stat(NS, empty)).toEqual({ size: 0 });
      expect(await hashStream(await backend.download(NS, empty))).toEqual({ size: 0, digest: empty });
    });

    it(`streams a blob larger than one multipart part (${largeBytes} bytes)`, async () => {
      const blob = await generatedBlob(`${name}-large`, largeBytes);
      await seed(blob.digest, blob.stream(), blob.size);
      expect(await backend.stat(NS, blob.digest)).toEqual({ size: blob.size });
      expect(await hashStream(await backend.download(NS, blob.digest))).toEqual({ size: blob.size, digest: blob.digest });
    });

    it('refuses a malformed digest and an invalid namespace with InvalidArgument codes', async () => {
      const { digest } = smallBlob();
      expect(await codeOf(backend.stat(NS, 'sha256:abc' as Digest))).toBe('ERR_DIGEST_INVALID');
      expect(await codeOf(backend.download(NS, 'md5:abc' as Digest))).toBe('ERR_DIGEST_UNSUPPORTED');
      expect(await codeOf(backend.stat('../etc', digest))).toBe('ERR_BACKEND_NAMESPACE_INVALID');
      expect(await codeOf(backend.stat('Team/App', digest))).toBe('ERR_BACKEND_NAMESPACE_INVALID');
    });

    if (options.readOnly) {
      it('refuses uploads with ERR_BACKEND_READ_ONLY and stores nothing', async () => {
        const blob = smallBlob();
        expect(backend.readOnly).toBe(true);
        expect(await codeOf(backend.upload(NS, blob.digest, Readable.from([blob.bytes]), blob.bytes.length))).toBe('ERR_BACKEND_READ_ONLY');
        expect(await codeOf(backend.stat(NS, blob.digest))).toBe('ERR_BACKEND_BLOB_NOT_FOUND');
      });
      return;
    }

    defineWriteTests(() => backend, largeBytes, name);
  });
}

function defineWriteTests(get: () => Backend, largeBytes: number, name: string): void {
  it('is writable', () => {
    expect(get().readOnly).toBe(false);
  });

  it('accepts a re-upload of a stored blob (idempotent)', async () => {
    const backend = get();
    const blob = smallBlob();
    await backend.upload(NS, blob.digest, Readable.from([blob.bytes]), blob.bytes.length);
    await backend.upload('other/repo', blob.digest, Readable.from([blob.bytes]), blob.bytes.length);
    expect(await hashStream(await backend.download(NS, blob.digest))).toEqual({ size: blob.bytes.length, digest: blob.digest });
  });

  it('fails a body shorter or longer than the declared size with ERR_SIZE_INVALID and stores nothing', async () => {
    const backend = get();
    const blob = smallBlob(1000);
    expect(await codeOf(backend.upload(NS, blob.digest, Readable.from([blob.bytes.subarray(0, 600)]), 1000))).toBe('ERR_SIZE_INVALID');
    expect(await codeOf(backend.upload(NS, blob.digest, Readable.from([blob.bytes, Buffer.from('x')]), 1000))).toBe('ERR_SIZE_INVALID');
    expect(await codeOf(backend.stat(NS, blob.digest))).toBe('ERR_BACKEND_BLOB_NOT_FOUND');
  });

  it('fails a body whose bytes do not hash to the digest with ERR_DIGEST_MISMATCH and stores nothing', async () => {
    const backend = get();
    const blob = smallBlob(1000);
    const other = randomBytes(1000);
    expect(await codeOf(backend.upload(NS, blob.digest, Readable.from([other]), 1000))).toBe('ERR_DIGEST_MISMATCH');
    expect(await codeOf(backend.stat(NS, blob.digest))).toBe('ERR_BACKEND_BLOB_NOT_FOUND');
    expect(await codeOf(backend.stat(NS, sha256(other)))).toBe('ERR_BACKEND_BLOB_NOT_FOUND');

    // The same check for a blob of several parts: nothing may be completed under the wrong name.
    const large = await generatedBlob(`${name}-claimed`, largeBytes);
    const actual = await generatedBlob(`${name}-actual`, largeBytes);
    expect(await codeOf(backend.upload(NS, large.digest, actual.stream(), largeBytes))).toBe('ERR_DIGEST_MISMATCH');
    expect(await codeOf(backend.stat(NS, large.digest))).toBe('ERR_BACKEND_BLOB_NOT_FOUND');
    expect((await backend.list()).digests).toEqual([]);
  });

  it('leaves nothing visible when the body fails midway, small or larger than a part', async () => {
    const backend = get();
    const small = smallBlob(1000);
    expect(await codeOf(backend.upload(NS, small.digest, failingBody(small.bytes.subarray(0, 500)), 1000))).not.toBe('resolved');
    expect(await codeOf(backend.stat(NS, small.digest))).toBe('ERR_BACKEND_BLOB_NOT_FOUND');

    const large = await generatedBlob(`${name}-truncated`, largeBytes);
    const firstChunks = Math.ceil((largeBytes * 0.6) / CHUNK_BYTES);
    expect(await codeOf(backend.upload(NS, large.digest, failingBody(chunks(`${name}-truncated`, firstChunks * CHUNK_BYTES)), large.size))).not.toBe(
      'resolved',
    );
    expect(await codeOf(backend.stat(NS, large.digest))).toBe('ERR_BACKEND_BLOB_NOT_FOUND');
    expect((await backend.list()).digests).toEqual([]);
  });

  it('cancels an upload when its signal fires, storing nothing', async () => {
    const backend = get();
    const blob = smallBlob(2000);
    // A body that sends half and then stalls, like a client that stopped sending.
    const body = new Readable({ read() {} });
    body.push(blob.bytes.subarray(0, 1000));
    const controller = new AbortController();
    const upload = codeOf(backend.upload(NS, blob.digest, body, 2000, controller.signal));
    setTimeout(() => controller.abort(), 50);
    expect(await upload).toBe('ERR_BACKEND_CANCELED');
    expect(await codeOf(backend.stat(NS, blob.digest))).toBe('ERR_BACKEND_BLOB_NOT_FOUND');
  });

  it('stores one intact blob when the same digest is uploaded concurrently', async () => {
    const backend = get();
    const blob = await generatedBlob(`${name}-concurrent`, 3 * 1024 * 1024 + 17);
    await Promise.all([1, 2, 3, 4].map(() => backend.upload(NS, blob.digest, blob.stream(), blob.size)));
    expect(await backend.stat(NS, blob.digest)).toEqual({ size: blob.size });
    expect(await hashStream(await backend.download(NS, blob.digest))).toEqual({ size: blob.size, digest: blob.digest });
  });

  it('lists every blob exactly once across pages of two', async () => {
    const backend = get();
    const stored = new Set<Digest>();
    for (let i = 0; i < 5; i++) {
      const blob = smallBlob(100 + i);
      await backend.upload(NS, blob.digest, Readable.from([blob.bytes]), blob.bytes.length);
      stored.add(blob.digest);
    }
    const seen: Digest[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await backend.list({ limit: 2, ...(cursor !== undefined ? { cursor } : {}) });
      expect(page.digests.length).toBeLessThanOrEqual(2);
      seen.push(...page.digests);
      cursor = page.cursor;
      pages++;
      expect(pages).toBeLessThan(10);
    } while (cursor !== undefined);
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(seen.length).toBe(5);
    expect(new Set(seen)).toEqual(stored);
  });
}

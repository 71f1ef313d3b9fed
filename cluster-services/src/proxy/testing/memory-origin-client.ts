import { Readable } from 'node:stream';
import {
  Digester, InvalidArgumentError, NotFoundError, PieceHasher, UnavailableError, parseDigest, pieceLengthFor,
  type Digest, type Metainfo,
} from '@krill/lib';
import type { BlobSource, OriginClient } from '../../origin/index.js';

/**
 * An in-memory OriginClient for proxy tests, keeping the real client's contract: uploads are
 * verified against their digest (ERR_DIGEST_MISMATCH, nothing stored) and read through
 * `source.open()` like a real upload attempt; a missing blob is NotFound ERR_BLOB_NOT_FOUND;
 * ranges are inclusive; `fetchBytes` refuses more than `maxBytes` with ERR_SIZE_INVALID; while
 * "down" every call is Unavailable ERR_ORIGIN_UNAVAILABLE, as when no origin answers. Upload
 * sessions take chunks all or nothing and verify at commit, as an origin's do.
 */
export interface MemoryOriginClient extends OriginClient {
  /** Blobs by digest, with the namespaces they were uploaded under. */
  readonly blobs: ReadonlyMap<Digest, { bytes: Buffer; namespaces: Set<string> }>;
  /** Makes every call fail as if no origin answered, until set back. */
  setDown(down: boolean): void;
}

export function createMemoryOriginClient(): MemoryOriginClient {
  const blobs = new Map<Digest, { bytes: Buffer; namespaces: Set<string> }>();
  let down = false;
  const sessions = new Map<string, Buffer>();
  let nextSession = 0;
  const unavailable = (what: string) => new UnavailableError(`${what}: no origin answered`, { code: 'ERR_ORIGIN_UNAVAILABLE' });
  function session(id: string): Buffer {
    const bytes = sessions.get(id);
    if (!bytes) throw new NotFoundError(`upload ${id} does not exist`, { code: 'ERR_UPLOAD_NOT_FOUND' });
    return bytes;
  }

  function get(namespace: string, digest: Digest): Buffer {
    if (down) throw new UnavailableError(`no origin answered for ${digest}`, { code: 'ERR_ORIGIN_UNAVAILABLE' });
    parseDigest(digest);
    if (namespace === '') throw new InvalidArgumentError('namespace is empty', { code: 'ERR_NAMESPACE_INVALID' });
    const blob = blobs.get(digest);
    if (!blob) throw new NotFoundError(`blob ${digest} not found`, { code: 'ERR_BLOB_NOT_FOUND' });
    return blob.bytes;
  }

  return {
    blobs,
    setDown(d) {
      down = d;
    },
    owners: () => ['memory://origin'],
    async stat(namespace, digest) {
      return { size: get(namespace, digest).length };
    },
    async download(namespace, digest, options = {}) {
      const bytes = get(namespace, digest);
      const r = options.range;
      if (r && (r.start > r.end || r.start >= bytes.length)) {
        throw new InvalidArgumentError(`range ${r.start}-${r.end} is not satisfiable for ${bytes.length} bytes`, { code: 'ERR_RANGE_INVALID' });
      }
      const part = r ? bytes.subarray(r.start, Math.min(r.end, bytes.length - 1) + 1) : bytes;
      return { size: bytes.length, body: Readable.from([part]) };
    },
    async peerEndpoint(origin) {
      throw new NotFoundError(`the in-memory origins have no peer endpoint (${origin})`, { code: 'ERR_PEER_NOT_CONFIGURED' });
    },
    async locate(namespace, digest) {
      return { origin: 'memory://origin', size: get(namespace, digest).length };
    },
    async fetchBytes(namespace, digest, maxBytes) {
      const bytes = get(namespace, digest);
      if (bytes.length > maxBytes) {
        throw new InvalidArgumentError(`blob ${digest} is ${bytes.length} bytes, more than the ${maxBytes} allowed here`, { code: 'ERR_SIZE_INVALID' });
      }
      return Buffer.from(bytes);
    },
    async upload(namespace, digest, source: BlobSource) {
      if (down) throw new UnavailableError(`upload ${digest}: no origin answered`, { code: 'ERR_ORIGIN_UNAVAILABLE' });
      parseDigest(digest);
      const digester = new Digester();
      const chunks: Buffer[] = [];
      for await (const c of await source.open()) {
        digester.update(c as Buffer);
        chunks.push(c as Buffer);
      }
      if (digester.size !== source.size) {
        throw new InvalidArgumentError(`upload ${digest}: ${digester.size} bytes arrived, ${source.size} were declared`, { code: 'ERR_SIZE_INVALID' });
      }
      const actual = digester.digest();
      if (actual !== digest) {
        throw new InvalidArgumentError(`upload ${digest}: content hashes to ${actual}`, { code: 'ERR_DIGEST_MISMATCH' });
      }
      const entry = blobs.get(digest) ?? { bytes: Buffer.concat(chunks), namespaces: new Set<string>() };
      entry.namespaces.add(namespace);
      blobs.set(digest, entry);
    },
    async openUpload(namespace) {
      if (down) throw unavailable('open upload');
      if (namespace === '') throw new InvalidArgumentError('namespace is empty', { code: 'ERR_NAMESPACE_INVALID' });
      const id = String(nextSession++);
      sessions.set(id, Buffer.alloc(0));
      return { origin: 'memory://origin', id };
    },
    async appendUpload(upload, offset, body) {
      if (down) {
        body.destroy();
        throw unavailable('append upload');
      }
      const held = session(upload.id);
      if (offset !== held.length) {
        body.resume();
        throw new InvalidArgumentError(`upload ${upload.id}: append at ${offset}, but ${held.length} bytes were received`, { code: 'ERR_UPLOAD_OFFSET' });
      }
      const chunks: Buffer[] = [];
      try {
        for await (const c of body) chunks.push(c as Buffer);
      } catch (err) {
        // All or nothing, as on a real origin: the session keeps only what it had.
        throw new InvalidArgumentError(`upload ${upload.id}: the chunk broke off and was discarded`, { code: 'ERR_UPLOAD_INVALID', cause: err });
      }
      if (!sessions.has(upload.id)) throw new NotFoundError(`upload ${upload.id} does not exist`, { code: 'ERR_UPLOAD_NOT_FOUND' });
      const next = Buffer.concat([held, ...chunks]);
      sessions.set(upload.id, next);
      return next.length;
    },
    async commitUpload(upload, namespace, digest) {
      if (down) throw unavailable(`commit ${digest}`);
      parseDigest(digest);
      const bytes = session(upload.id);
      sessions.delete(upload.id);
      const digester = new Digester();
      digester.update(bytes);
      const actual = digester.digest();
      if (actual !== digest) throw new InvalidArgumentError(`upload ${upload.id}: content hashes to ${actual}, not ${digest}`, { code: 'ERR_DIGEST_MISMATCH' });
      const entry = blobs.get(digest) ?? { bytes, namespaces: new Set<string>() };
      entry.namespaces.add(namespace);
      blobs.set(digest, entry);
    },
    async abortUpload(upload) {
      sessions.delete(upload.id);
    },
    async metainfo(namespace, digest): Promise<Metainfo> {
      const hasher = new PieceHasher(pieceLengthFor(get(namespace, digest).length));
      hasher.update(get(namespace, digest));
      return hasher.finish(digest);
    },
    async close() {},
  };
}

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
 * "down" every call is Unavailable ERR_ORIGIN_UNAVAILABLE, as when no origin answers.
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
    async metainfo(namespace, digest): Promise<Metainfo> {
      const hasher = new PieceHasher(pieceLengthFor(get(namespace, digest).length));
      hasher.update(get(namespace, digest));
      return hasher.finish(digest);
    },
    async close() {},
  };
}

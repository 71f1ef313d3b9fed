import { createHash, type Hash } from 'node:crypto';
import { InvalidArgumentError } from './errors.js';

/** A content digest in OCI form, `sha256:<64 lowercase hex>`. Only sha256 is accepted. */
export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
// OCI image-spec descriptor.md#digests: algorithm ":" encoded; used to tell "malformed" from "unsupported".
const ANY_DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && DIGEST_RE.test(s);
}

/** Parses a digest string; throws InvalidArgument (ERR_DIGEST_INVALID / ERR_DIGEST_UNSUPPORTED). */
export function parseDigest(s: string): Digest {
  if (isDigest(s)) return s;
  if (ANY_DIGEST_RE.test(s) && !s.startsWith('sha256:')) {
    throw new InvalidArgumentError(`digest ${JSON.stringify(s)}: only sha256 is supported`, { code: 'ERR_DIGEST_UNSUPPORTED' });
  }
  throw new InvalidArgumentError(`digest ${JSON.stringify(s)} is not of the form sha256:<64 hex>`, { code: 'ERR_DIGEST_INVALID' });
}

export function hexOf(d: Digest): string {
  return d.slice(7);
}

export function sha256(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** An incremental SHA-256 that also counts bytes. */
export class Digester {
  private readonly hash: Hash = createHash('sha256');
  size = 0;

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.size += chunk.length;
  }

  digest(): Digest {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

import { Transform, type TransformCallback } from 'node:stream';
import { Digester, type Digest } from '@krill/lib';
import { checkDigest, sizeMismatch } from '../mismatch.js';

export interface Verifier extends Transform {
  /** After the stream has ended: throws unless exactly `size` bytes hashing to `digest` passed. */
  check(): void;
}

/**
 * A pass-through that counts and hashes what flows through it. It fails as soon as more than
 * `size` bytes arrive, so an oversized body never fills the disk; `check()` catches a short body
 * and a wrong digest once the stream has ended.
 */
export function createVerifier(digest: Digest, size: number): Verifier {
  const digester = new Digester();
  const verifier = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      digester.update(chunk);
      if (digester.size > size) {
        callback(sizeMismatch(digest, size, `more than ${size}`));
        return;
      }
      callback(null, chunk);
    },
  }) as Verifier;
  verifier.check = () => {
    if (digester.size !== size) throw sizeMismatch(digest, size, String(digester.size));
    checkDigest(digest, digester);
  };
  return verifier;
}

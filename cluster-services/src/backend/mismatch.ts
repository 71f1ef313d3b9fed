import { InvalidArgumentError, type Digest, type Digester, type KrillError } from '@krill/lib';

/** InvalidArgument ERR_SIZE_INVALID: the body did not have the declared number of bytes. */
export function sizeMismatch(digest: Digest, size: number, got: string): KrillError {
  return new InvalidArgumentError(`blob ${digest}: declared size ${size} but the body has ${got} bytes`, { code: 'ERR_SIZE_INVALID' });
}

/** Throws InvalidArgument ERR_DIGEST_MISMATCH unless the bytes hashed by `digester` are `digest`. */
export function checkDigest(digest: Digest, digester: Digester): void {
  const actual = digester.digest();
  if (actual !== digest) {
    throw new InvalidArgumentError(`blob ${digest}: content hashes to ${actual}`, { code: 'ERR_DIGEST_MISMATCH' });
  }
}

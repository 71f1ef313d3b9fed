import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { sha256 } from '../digest.js';
import { PieceHasher, type Metainfo } from '../metainfo.js';

/** For the p2p tests: random bytes of `size` and their metainfo, cut into `pieceLength` pieces. */
export function testBlob(size: number, pieceLength: number): { bytes: Buffer; metainfo: Metainfo } {
  const bytes = randomBytes(size);
  const h = new PieceHasher(pieceLength);
  h.update(bytes);
  return { bytes, metainfo: h.finish(sha256(bytes)) };
}

/** Flips the byte at `at` of the file at `path` on disk (its right value is `bytes[at]`), behind a piece file's back. */
export function flipOnDisk(path: string, at: number, bytes: Buffer): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from([bytes[at]! ^ 0xff]), 0, 1, at);
  closeSync(fd);
}

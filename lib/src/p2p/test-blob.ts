import { randomBytes } from 'node:crypto';
import { sha256 } from '../digest.js';
import { PieceHasher, type Metainfo } from '../metainfo.js';

/** For the p2p tests: random bytes of `size` and their metainfo, cut into `pieceLength` pieces. */
export function testBlob(size: number, pieceLength: number): { bytes: Buffer; metainfo: Metainfo } {
  const bytes = randomBytes(size);
  const h = new PieceHasher(pieceLength);
  h.update(bytes);
  return { bytes, metainfo: h.finish(sha256(bytes)) };
}

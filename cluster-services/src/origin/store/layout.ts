import { join } from 'node:path';
import { hexOf, type Digest } from '@krill/lib';

/**
 * Where an origin keeps things under its store directory:
 * - `blobs/<hex[0:2]>/<hex>/data` and `metainfo.json` beside it, visible only once verified;
 * - `uploads/<id>` for resumable uploads in progress;
 * - `tmp/` for blobs being written; emptied at start, since anything there was never verified.
 */
export interface StoreLayout {
  blobDir(digest: Digest): string;
  data(digest: Digest): string;
  metainfo(digest: Digest): string;
  readonly blobs: string;
  readonly uploads: string;
  readonly tmp: string;
}

export function storeLayout(dir: string): StoreLayout {
  const blobs = join(dir, 'blobs');
  const blobDir = (d: Digest) => join(blobs, hexOf(d).slice(0, 2), hexOf(d));
  return {
    blobs,
    uploads: join(dir, 'uploads'),
    tmp: join(dir, 'tmp'),
    blobDir,
    data: (d) => join(blobDir(d), 'data'),
    metainfo: (d) => join(blobDir(d), 'metainfo.json'),
  };
}

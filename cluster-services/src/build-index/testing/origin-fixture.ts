import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { MediaType, sha256, validateConfig, type Descriptor, type Digest, type Logger } from '@krill/lib';
import {
  createOriginClient, originConfigSchema, startOrigin, type OriginClient, type OriginConfig, type RunningOrigin,
} from '../../origin/index.js';

/**
 * A real origin on 127.0.0.1 port 0 over a temporary store, and helpers that put images on it
 * with the real origin client, for the build-index's tests. `close` stops it and removes `dir`.
 */
export interface OriginFixture {
  /** A temporary directory the test may use too (it is removed by close). */
  dir: string;
  origin: RunningOrigin;
  client: OriginClient;
  /** Uploads bytes under `repo` and returns their digest. */
  put(repo: string, bytes: Buffer | string): Promise<Digest>;
  /** Uploads a config and one layer per seed (unless listed in `skip`) and an image manifest naming them. */
  image(repo: string, seed: string, o?: { skip?: Array<'config' | 'layer'>; extraLayers?: Descriptor[] }): Promise<ImageRefs>;
  /** Uploads an index naming `children` (OCI image manifests unless a descriptor says otherwise). */
  index(repo: string, children: Array<Digest | Descriptor>): Promise<Digest>;
  close(): Promise<void>;
}

export interface ImageRefs {
  manifest: Digest;
  config: Digest;
  layer: Digest;
}

export async function startOriginFixture(o: { logger: Logger }): Promise<OriginFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'krill-build-index-'));
  const origin = await startOrigin(validateConfig<OriginConfig>(originConfigSchema, { listen: { port: 0 }, store: { dir: join(dir, 'origin') } }), { logger: o.logger });
  const client = createOriginClient({ origins: [origin.url], replicas: 1, logger: o.logger });

  const put = async (repo: string, bytes: Buffer | string): Promise<Digest> => {
    const b = Buffer.from(bytes);
    const digest = sha256(b);
    await client.upload(repo, digest, { size: b.length, open: () => Readable.from([b]) });
    return digest;
  };
  const blob = async (repo: string, bytes: string, upload: boolean, mediaType: string): Promise<Descriptor> => ({
    mediaType, digest: upload ? await put(repo, bytes) : sha256(bytes), size: Buffer.byteLength(bytes),
  });

  return {
    dir, origin, client, put,
    async image(repo, seed, opts = {}) {
      const config = await blob(repo, `{"seed":"${seed}"}`, !opts.skip?.includes('config'), MediaType.OciConfig);
      const layer = await blob(repo, `layer of ${seed}`, !opts.skip?.includes('layer'), MediaType.OciLayerGzip);
      const manifest = await put(repo, JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer, ...(opts.extraLayers ?? [])] }));
      return { manifest, config: config.digest, layer: layer.digest };
    },
    async index(repo, children) {
      const manifests = children.map((c) => (typeof c === 'string' ? { mediaType: MediaType.OciManifest, digest: c, size: 1 } : c));
      return put(repo, JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
    },
    async close() {
      await client.close();
      await origin.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

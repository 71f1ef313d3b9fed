import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_MANIFEST_BYTES, MediaType, sha256, silentLogger, type Descriptor, type Digest } from '@krill/lib';
import { startOriginFixture, type OriginFixture } from '../testing/origin-fixture.js';
import { MAX_INDEX_DEPTH, MAX_REFERENCES, checkDependencies } from './dependencies.js';
import { createLimiter } from './limiter.js';

const logger = silentLogger();
const repo = 'team/app';
let fx: OriginFixture;

beforeEach(async () => {
  fx = await startOriginFixture({ logger });
});
afterEach(async () => {
  await fx.close();
});

const check = (digest: Digest) => checkDependencies({ origins: fx.client, repo, digest });
const failure = (p: Promise<unknown>) => p.then(
  () => ({ code: 'resolved', message: '' }),
  (e: { code?: string; message: string }) => ({ code: e.code ?? 'no code', message: e.message }),
);
const indexOf = (d: Digest): Descriptor => ({ mediaType: MediaType.OciIndex, digest: d, size: 1 });

describe('dependency check', () => {
  it('accepts an index of indexes down to the depth bound and refuses one level more', async () => {
    expect(MAX_INDEX_DEPTH).toBe(2);
    const img = await fx.image(repo, 'leaf');
    const inner = await fx.index(repo, [img.manifest]);
    const outer = await fx.index(repo, [indexOf(inner)]);
    expect(await check(outer)).toMatchObject({ isIndex: true, mediaType: MediaType.OciIndex });
    const tooDeep = await fx.index(repo, [indexOf(outer)]);
    const err = await failure(check(tooDeep));
    expect(err.code).toBe('ERR_MANIFEST_TOO_DEEP');
    expect(err.message).toContain(inner);
  });

  it('checks the blobs of an image inside a nested index', async () => {
    const broken = await fx.image(repo, 'nested', { skip: ['config'] });
    const inner = await fx.index(repo, [broken.manifest]);
    const err = await failure(check(await fx.index(repo, [indexOf(inner)])));
    expect(err.code).toBe('ERR_TAG_DEPENDENCY_MISSING');
    expect(err.message.startsWith(`blob ${broken.config} referenced by ${broken.manifest}`)).toBe(true);
  });

  it('checks a shared blob once and accepts Docker schema 2 manifest lists', async () => {
    const a = await fx.image(repo, 'shared');
    // Same config and layer as `a`, different annotations: a second manifest naming the same blobs.
    const b = await fx.put(repo, JSON.stringify({
      schemaVersion: 2, mediaType: MediaType.DockerManifest, annotations: { v: 'b' },
      config: { mediaType: MediaType.DockerConfig, digest: a.config, size: 1 },
      layers: [{ mediaType: MediaType.DockerLayerGzip, digest: a.layer, size: 1 }],
    }));
    const list = await fx.put(repo, JSON.stringify({
      schemaVersion: 2, mediaType: MediaType.DockerManifestList,
      manifests: [{ mediaType: MediaType.OciManifest, digest: a.manifest, size: 1 }, { mediaType: MediaType.DockerManifest, digest: b, size: 1 }],
    }));
    expect((await check(list)).mediaType).toBe(MediaType.DockerManifestList);
  });

  it('skips foreign layers that carry URLs and checks those that do not', async () => {
    const foreign = (urls?: string[]): Descriptor => ({
      mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', digest: sha256(`foreign ${String(urls)}`), size: 1, ...(urls ? { urls } : {}),
    } as Descriptor);
    const withUrls = await fx.image(repo, 'windows', { extraLayers: [foreign(['https://example.invalid/layer'])] });
    await check(withUrls.manifest);
    const without = foreign();
    const err = await failure(check((await fx.image(repo, 'windows2', { extraLayers: [without] })).manifest));
    expect(err.code).toBe('ERR_TAG_DEPENDENCY_MISSING');
    expect(err.message).toContain(without.digest);
  });

  it('refuses manifests it cannot check, naming them', async () => {
    const notJson = await fx.put(repo, 'not a manifest');
    const e1 = await failure(check(notJson));
    expect(e1.code).toBe('ERR_MANIFEST_INVALID');
    expect(e1.message).toContain(notJson);
    const unsupported = await fx.put(repo, JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-nope', layers: [] }));
    expect((await failure(check(unsupported))).code).toBe('ERR_MANIFEST_UNSUPPORTED');
    const big = await fx.put(repo, Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20));
    expect((await failure(check(big))).code).toBe('ERR_MANIFEST_TOO_LARGE');
  });

  it('refuses a manifest naming more digests than the bound before checking them all', async () => {
    const layers = Array.from({ length: MAX_REFERENCES }, (_, i) => ({ mediaType: MediaType.OciLayerGzip, digest: sha256(`l${i}`), size: 1 }));
    const config = { mediaType: MediaType.OciConfig, digest: sha256('c'), size: 1 };
    const huge = await fx.put(repo, JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers }));
    expect((await failure(check(huge))).code).toBe('ERR_MANIFEST_TOO_MANY_REFERENCES');
  });
});

describe('limiter', () => {
  it('never runs more calls at once than its limit, and runs them all', async () => {
    const limit = createLimiter(3);
    let active = 0;
    let peak = 0;
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => limit(async () => {
      peak = Math.max(peak, ++active);
      await new Promise((r) => setTimeout(r, 1 + (i % 3)));
      active--;
      return i;
    })));
    expect(peak).toBe(3);
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('frees the slot of a call that throws', async () => {
    const limit = createLimiter(1);
    await expect(limit(async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(await limit(async () => 'next')).toBe('next');
  });
});

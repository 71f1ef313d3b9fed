import { describe, expect, it } from 'vitest';
import { parseDigest, sha256 } from './digest.js';
import { MediaType, parseManifest, parseRepository, parseTag } from './oci.js';

const d = sha256('x');
const manifest = (extra: object = {}) => Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: MediaType.OciManifest,
  config: { mediaType: MediaType.OciConfig, digest: d, size: 1 },
  layers: [{ mediaType: MediaType.OciLayer, digest: d, size: 1 }], ...extra,
}));

function code(fn: () => unknown): string | undefined {
  try { fn(); } catch (err) { return (err as { code?: string }).code; }
  return undefined;
}

describe('oci', () => {
  it('parses image manifests and indexes into their references', () => {
    expect(parseManifest(manifest()).references.map((r) => r.digest)).toEqual([d, d]);
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [{ mediaType: MediaType.OciManifest, digest: d, size: 3, platform: { os: 'linux', architecture: 'arm64' } }] }));
    expect(parseManifest(index)).toMatchObject({ isIndex: true, references: [{ digest: d }] });
  });

  it('rejects bad manifests with codes', () => {
    expect(code(() => parseManifest(Buffer.from('{')))).toBe('ERR_MANIFEST_INVALID');
    expect(code(() => parseManifest(manifest({ schemaVersion: 1 })))).toBe('ERR_MANIFEST_INVALID');
    expect(code(() => parseManifest(manifest({ layers: [{ digest: 'sha256:zz', size: 1, mediaType: 'x' }] })))).toBe('ERR_MANIFEST_INVALID');
    expect(code(() => parseManifest(manifest(), 'application/vnd.example+json'))).toBe('ERR_MANIFEST_UNSUPPORTED');
    expect(code(() => parseManifest(manifest(), MediaType.DockerManifest))).toBe('ERR_MANIFEST_INVALID');
  });

  it('validates repository names, tags and digests', () => {
    expect(parseRepository('team/app-1.x')).toBe('team/app-1.x');
    for (const bad of ['', '..', 'a/../b', 'UPPER', '-x', 'a//b', 'a/', 'x'.repeat(256)]) expect(code(() => parseRepository(bad))).toBe('ERR_NAME_INVALID');
    expect(code(() => parseTag('.hidden'))).toBe('ERR_TAG_INVALID');
    expect(parseTag('v1.2_3-rc')).toBe('v1.2_3-rc');
    expect(code(() => parseDigest('sha256:abc'))).toBe('ERR_DIGEST_INVALID');
    expect(code(() => parseDigest('sha512:' + 'a'.repeat(128)))).toBe('ERR_DIGEST_UNSUPPORTED');
  });
});

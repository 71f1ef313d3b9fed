import { describe, expect, it } from 'vitest';
import { parseV2Path } from './paths.js';

const code = (f: () => unknown) => {
  try {
    f();
    return 'no error';
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

describe('parseV2Path', () => {
  it('takes apart every endpoint, with slashes in the name', () => {
    expect(parseV2Path('/v2/')).toEqual({ kind: 'base' });
    expect(parseV2Path('/v2')).toEqual({ kind: 'base' });
    expect(parseV2Path('/v2/_catalog')).toEqual({ kind: 'catalog' });
    expect(parseV2Path('/v2/a/b/c/tags/list')).toEqual({ kind: 'tags', name: 'a/b/c' });
    expect(parseV2Path('/v2/team/app/manifests/v1.0')).toEqual({ kind: 'manifest', name: 'team/app', reference: 'v1.0' });
    expect(parseV2Path('/v2/team/app/manifests/sha256:abc')).toEqual({ kind: 'manifest', name: 'team/app', reference: 'sha256:abc' });
    expect(parseV2Path('/v2/app/blobs/sha256:abc')).toEqual({ kind: 'blob', name: 'app', digest: 'sha256:abc' });
    expect(parseV2Path('/v2/team/app/blobs/uploads/')).toEqual({ kind: 'uploads', name: 'team/app' });
    expect(parseV2Path('/v2/team/app/blobs/uploads')).toEqual({ kind: 'uploads', name: 'team/app' });
    expect(parseV2Path('/v2/team/app/blobs/uploads/1234-5678')).toEqual({ kind: 'upload', name: 'team/app', id: '1234-5678' });
  });

  it('finds the endpoint from the end, so names may contain endpoint words', () => {
    expect(parseV2Path('/v2/blobs/manifests/tags/list')).toEqual({ kind: 'tags', name: 'blobs/manifests' });
    expect(parseV2Path('/v2/x/blobs/uploads/blobs/sha256:abc')).toEqual({ kind: 'blob', name: 'x/blobs/uploads', digest: 'sha256:abc' });
    expect(parseV2Path('/v2/manifests/manifests/latest')).toEqual({ kind: 'manifest', name: 'manifests', reference: 'latest' });
  });

  it('answers undefined for paths that are no endpoint', () => {
    expect(parseV2Path('/v2/team/app')).toBeUndefined();
    expect(parseV2Path('/v2/team/app/blobs/')).toBeUndefined();
    expect(parseV2Path('/v2/team/app/manifests/')).toBeUndefined();
    expect(parseV2Path('/v2/team/app/tags')).toBeUndefined();
  });

  it('refuses invalid repository names with ERR_NAME_INVALID', () => {
    for (const name of ['..', 'a/../b', 'UPPER', '-x', 'a//b', 'a/', 'x'.repeat(256), 'a/%2e%2e/b', '%2e%2e', 'a%2fb/../c', 'team/app.']) {
      expect(code(() => parseV2Path(`/v2/${name}/tags/list`)), name).toBe('ERR_NAME_INVALID');
    }
    expect(code(() => parseV2Path('/v2/%zz/tags/list'))).toBe('ERR_NAME_INVALID');
    expect(parseV2Path(`/v2/${'x'.repeat(255)}/tags/list`)).toEqual({ kind: 'tags', name: 'x'.repeat(255) });
  });
});

import { describe, expect, it } from 'vitest';
import { parseImageReference } from './reference.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseImageReference', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox:x', 'docker.io/library/busybox:x'],
    ['team/app:v1', 'docker.io/team/app:v1'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/app:v1', 'localhost:5000/app:v1'],
    ['127.0.0.1:5000/a/b/c:v1', '127.0.0.1:5000/a/b/c:v1'],
    ['registry.krill/team/app', 'registry.krill/team/app:latest'],
    ['[::1]:5000/app:v2', '[::1]:5000/app:v2'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
    [`quay.io/x/y:v1@${D}`, `quay.io/x/y@${D}`],
    ['a__b/c.d-e:T_1.0-x', 'docker.io/a__b/c.d-e:T_1.0-x'],
  ])('%s → %s', (ref, normalized) => {
    expect(parseImageReference(ref).normalized).toBe(normalized);
  });

  it('splits domain, path, tag and digest', () => {
    expect(parseImageReference('localhost:5000/team/app:v1')).toEqual({ domain: 'localhost:5000', path: 'team/app', tag: 'v1', name: 'localhost:5000/team/app', normalized: 'localhost:5000/team/app:v1' });
    expect(parseImageReference(`x.io/app@${D}`)).toEqual({ domain: 'x.io', path: 'app', digest: D, name: 'x.io/app', normalized: `x.io/app@${D}` });
  });

  it.each([
    ['', /empty/],
    ['Busybox', /lowercase/],
    ['docker.io/Team/app', /lowercase/],
    ['busybox:', /tag "" is not valid/],
    ['busybox:-x', /tag "-x"/],
    ['busybox@sha256:abc', /not a sha256 digest/],
    ['busybox@md5:' + 'a'.repeat(32), /not a sha256 digest/],
    ['a//b', /repository "a\/\/b" is not valid/],
    ['-x/y', /registry host|repository/],
    ['x y', /whitespace/],
    ['bad_host.io:x/app', /registry host|tag/],
    [`x.io/${'a'.repeat(260)}`, /longer than 255/],
  ])('rejects %j', (ref, why) => {
    expect(() => parseImageReference(ref)).toThrow(why);
    try {
      parseImageReference(ref);
    } catch (err) {
      expect((err as { code: string }).code).toBe('ERR_REFERENCE_INVALID');
    }
  });
});

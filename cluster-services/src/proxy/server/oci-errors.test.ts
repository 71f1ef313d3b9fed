import { describe, expect, it } from 'vitest';
import {
  FailedPreconditionError, InvalidArgumentError, KrillError, NotFoundError, UnauthenticatedError, UnavailableError, parseDigest, sha256,
} from '@krill/lib';
import { toOciError, type OciContext } from './oci-errors.js';

const of = (err: unknown, context: OciContext = 'blob') => {
  const e = toOciError(err, context);
  return [e.body.errors[0]!.code, e.status];
};

describe('toOciError', () => {
  it('maps domain codes to the spec codes and statuses', () => {
    const cases: Array<[string, string, number]> = [
      ['ERR_DIGEST_INVALID', 'DIGEST_INVALID', 400],
      ['ERR_DIGEST_UNSUPPORTED', 'DIGEST_INVALID', 400],
      ['ERR_DIGEST_MISMATCH', 'DIGEST_INVALID', 400],
      ['ERR_NAME_INVALID', 'NAME_INVALID', 400],
      ['ERR_TAG_INVALID', 'TAG_INVALID', 400],
      ['ERR_MANIFEST_INVALID', 'MANIFEST_INVALID', 400],
      ['ERR_MANIFEST_TOO_LARGE', 'MANIFEST_INVALID', 413],
      ['ERR_MANIFEST_UNSUPPORTED', 'UNSUPPORTED', 415],
      ['ERR_MANIFEST_BLOB_UNKNOWN', 'MANIFEST_BLOB_UNKNOWN', 400],
      ['ERR_UPLOAD_INVALID', 'BLOB_UPLOAD_INVALID', 400],
      ['ERR_UPLOAD_OFFSET', 'RANGE_INVALID', 416],
      ['ERR_RANGE_INVALID', 'RANGE_INVALID', 416],
      ['ERR_SIZE_INVALID', 'SIZE_INVALID', 400],
      ['ERR_PAGINATION_INVALID', 'PAGINATION_NUMBER_INVALID', 400],
    ];
    for (const [code, oci, status] of cases) expect(of(new InvalidArgumentError('x', { code })), code).toEqual([oci, status]);
    expect(of(new NotFoundError('x', { code: 'ERR_UPLOAD_NOT_FOUND' }))).toEqual(['BLOB_UPLOAD_UNKNOWN', 404]);
    expect(of(new NotFoundError('x', { code: 'ERR_TAG_NOT_FOUND' }))).toEqual(['MANIFEST_UNKNOWN', 404]);
    expect(of(new NotFoundError('x', { code: 'ERR_NAME_UNKNOWN' }))).toEqual(['NAME_UNKNOWN', 404]);
  });

  it('maps a missing blob by the endpoint it was missed at', () => {
    const missing = new NotFoundError('blob not found', { code: 'ERR_BLOB_NOT_FOUND' });
    expect(of(missing, 'blob')).toEqual(['BLOB_UNKNOWN', 404]);
    expect(of(missing, 'manifest')).toEqual(['MANIFEST_UNKNOWN', 404]);
    expect(of(missing, 'upload')).toEqual(['BLOB_UPLOAD_UNKNOWN', 404]);
    expect(of(missing, 'tags')).toEqual(['NAME_UNKNOWN', 404]);
  });

  it('maps categories: credentials, outages, bugs', () => {
    const refused = new UnauthenticatedError('upstream registry.example refused the credentials', { code: 'ERR_UPSTREAM_UNAUTHORIZED' });
    expect(toOciError(refused, 'manifest')).toEqual({ status: 401, body: { errors: [{ code: 'UNAUTHORIZED', message: refused.message }] } });
    expect(of(new UnavailableError('down', { code: 'ERR_ORIGIN_UNAVAILABLE' }))).toEqual(['UNAVAILABLE', 503]);
    expect(of(new InvalidArgumentError('odd', { code: 'ERR_SOMETHING' }), 'manifest')).toEqual(['MANIFEST_INVALID', 400]);
    expect(of(new InvalidArgumentError('odd', { code: 'ERR_SOMETHING' }), 'upload')).toEqual(['BLOB_UPLOAD_INVALID', 400]);
    expect(of(new KrillError('Internal', 'ERR_BUG', 'oops'))).toEqual(['UNKNOWN', 500]);
    // Anything that is not a domain error is a bug; its message (maybe a path) stays inside.
    expect(toOciError(new TypeError('secret /etc/path'), 'blob')).toEqual({ status: 500, body: { errors: [{ code: 'UNKNOWN', message: 'internal error' }] } });
  });

  it('passes parseDigest errors through as DIGEST_INVALID', () => {
    for (const d of ['sha256:zz', 'md5:abc', 'x']) {
      let err: unknown;
      try {
        parseDigest(d);
      } catch (e) {
        err = e;
      }
      expect(of(err)).toEqual(['DIGEST_INVALID', 400]);
    }
  });

  it('names the missing digest in the detail of MANIFEST_BLOB_UNKNOWN, also from the build-index message', () => {
    const d = sha256('gone');
    const own = Object.assign(new InvalidArgumentError('missing', { code: 'ERR_MANIFEST_BLOB_UNKNOWN' }), { detail: { digest: d } });
    expect(toOciError(own, 'manifest').body.errors[0]).toEqual({ code: 'MANIFEST_BLOB_UNKNOWN', message: 'missing', detail: { digest: d } });
    const remote = new FailedPreconditionError(`build-index PUT /tags: blob ${d} of team/app is not on the origins`, { code: 'ERR_TAG_DEPENDENCY_MISSING' });
    expect(toOciError(remote, 'manifest')).toMatchObject({ status: 400, body: { errors: [{ code: 'MANIFEST_BLOB_UNKNOWN', detail: { digest: d } }] } });
  });
});

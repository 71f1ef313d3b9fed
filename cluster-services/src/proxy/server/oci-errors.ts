import { isKrillError } from '@krill/lib';

/** Where an error happened, so that a NotFound becomes BLOB_UNKNOWN or MANIFEST_UNKNOWN. */
export type OciContext = 'blob' | 'upload' | 'manifest' | 'tags' | 'base';

export interface OciError {
  status: number;
  body: { errors: Array<{ code: string; message: string; detail?: unknown }> };
}

// Domain error codes to OCI distribution-spec error codes (spec "Error Codes", end-1..end-13).
const BY_CODE: Record<string, [string, number]> = {
  ERR_DIGEST_INVALID: ['DIGEST_INVALID', 400],
  ERR_DIGEST_UNSUPPORTED: ['DIGEST_INVALID', 400],
  ERR_DIGEST_MISMATCH: ['DIGEST_INVALID', 400],
  ERR_NAME_INVALID: ['NAME_INVALID', 400],
  ERR_TAG_INVALID: ['TAG_INVALID', 400],
  ERR_MANIFEST_INVALID: ['MANIFEST_INVALID', 400],
  ERR_MANIFEST_TOO_LARGE: ['MANIFEST_INVALID', 413],
  ERR_MANIFEST_UNSUPPORTED: ['UNSUPPORTED', 415],
  ERR_MANIFEST_BLOB_UNKNOWN: ['MANIFEST_BLOB_UNKNOWN', 400],
  ERR_TAG_DEPENDENCY_MISSING: ['MANIFEST_BLOB_UNKNOWN', 400],
  ERR_TAG_NOT_FOUND: ['MANIFEST_UNKNOWN', 404],
  ERR_UPLOAD_NOT_FOUND: ['BLOB_UPLOAD_UNKNOWN', 404],
  ERR_UPLOAD_INVALID: ['BLOB_UPLOAD_INVALID', 400],
  ERR_UPLOAD_OFFSET: ['RANGE_INVALID', 416],
  ERR_RANGE_INVALID: ['RANGE_INVALID', 416],
  ERR_SIZE_INVALID: ['SIZE_INVALID', 400],
  ERR_UNSUPPORTED: ['UNSUPPORTED', 405],
};

/** Translates any error into the OCI error JSON and HTTP status; the only place that does. */
export function toOciError(err: unknown, context: OciContext): OciError {
  const one = (code: string, status: number, message: string, detail?: unknown): OciError =>
    ({ status, body: { errors: [{ code, message, ...(detail === undefined ? {} : { detail }) }] } });
  if (!isKrillError(err)) return one('UNKNOWN', 500, 'internal error');
  const mapped = BY_CODE[err.code];
  const detail = (err as { detail?: unknown }).detail;
  if (mapped) return one(mapped[0], mapped[1], err.message, detail);
  switch (err.category) {
    case 'NotFound':
      if (context === 'manifest') return one('MANIFEST_UNKNOWN', 404, err.message);
      if (context === 'upload') return one('BLOB_UPLOAD_UNKNOWN', 404, err.message);
      if (context === 'tags') return one('NAME_UNKNOWN', 404, err.message);
      return one('BLOB_UNKNOWN', 404, err.message);
    case 'InvalidArgument':
      return one(context === 'manifest' ? 'MANIFEST_INVALID' : context === 'upload' ? 'BLOB_UPLOAD_INVALID' : 'UNSUPPORTED', 400, err.message);
    case 'Unauthenticated':
      return one('UNAUTHORIZED', 401, err.message);
    case 'FailedPrecondition':
      return one('DENIED', 403, err.message);
    case 'Unavailable':
      return one('UNAVAILABLE', 503, err.message);
    default:
      return one('UNKNOWN', 500, err.message);
  }
}

import { isKrillError, type KrillError } from '@krill/lib';

/** Where an error happened, so that a NotFound becomes BLOB_UNKNOWN or MANIFEST_UNKNOWN. */
export type OciContext = 'blob' | 'upload' | 'manifest' | 'tags' | 'base';

export interface OciError {
  status: number;
  body: { errors: Array<{ code: string; message: string; detail?: unknown }> };
}

/**
 * Domain error codes to distribution-spec error codes and statuses (OCI distribution spec v1.1,
 * "Error Codes"). Codes not listed fall back to their category, refined by the endpoint.
 */
const BY_CODE: Record<string, [code: string, status: number]> = {
  ERR_DIGEST_INVALID: ['DIGEST_INVALID', 400],
  ERR_DIGEST_UNSUPPORTED: ['DIGEST_INVALID', 400],
  // A commit or manifest whose bytes do not hash to the digest the client named.
  ERR_DIGEST_MISMATCH: ['DIGEST_INVALID', 400],
  ERR_NAME_INVALID: ['NAME_INVALID', 400],
  ERR_NAME_UNKNOWN: ['NAME_UNKNOWN', 404],
  ERR_TAG_INVALID: ['TAG_INVALID', 400],
  ERR_MANIFEST_INVALID: ['MANIFEST_INVALID', 400],
  // Spec "Pushing Manifests": a registry that limits manifest size SHOULD answer 413.
  ERR_MANIFEST_TOO_LARGE: ['MANIFEST_INVALID', 413],
  ERR_MANIFEST_UNSUPPORTED: ['UNSUPPORTED', 415],
  ERR_MANIFEST_BLOB_UNKNOWN: ['MANIFEST_BLOB_UNKNOWN', 400],
  ERR_MANIFEST_NOT_FOUND: ['MANIFEST_UNKNOWN', 404],
  // The build-index's own check that a tagged manifest's references exist.
  ERR_TAG_DEPENDENCY_MISSING: ['MANIFEST_BLOB_UNKNOWN', 400],
  ERR_TAG_NOT_FOUND: ['MANIFEST_UNKNOWN', 404],
  ERR_UPLOAD_NOT_FOUND: ['BLOB_UPLOAD_UNKNOWN', 404],
  ERR_UPLOAD_INVALID: ['BLOB_UPLOAD_INVALID', 400],
  // A chunk that does not start at the bytes received so far, or is not as long as it declared.
  ERR_UPLOAD_OFFSET: ['RANGE_INVALID', 416],
  ERR_RANGE_INVALID: ['RANGE_INVALID', 416],
  ERR_SIZE_INVALID: ['SIZE_INVALID', 400],
  ERR_PAGINATION_INVALID: ['PAGINATION_NUMBER_INVALID', 400],
  // A method the endpoint does not take.
  ERR_UNSUPPORTED: ['UNSUPPORTED', 405],
  // The origins' disks are full: 507 Insufficient Storage (RFC 4918); the spec has no code of its own.
  ERR_STORE_FULL: ['UNKNOWN', 507],
};

/** NotFound by endpoint: what is missing is the thing the endpoint serves. */
const NOT_FOUND: Record<OciContext, string> = {
  blob: 'BLOB_UNKNOWN', upload: 'BLOB_UPLOAD_UNKNOWN', manifest: 'MANIFEST_UNKNOWN', tags: 'NAME_UNKNOWN', base: 'NAME_UNKNOWN',
};

/** InvalidArgument without a code of its own, by endpoint. */
const INVALID: Record<OciContext, string> = {
  blob: 'UNSUPPORTED', upload: 'BLOB_UPLOAD_INVALID', manifest: 'MANIFEST_INVALID', tags: 'UNSUPPORTED', base: 'UNSUPPORTED',
};

/**
 * Translates any error into the OCI error JSON and HTTP status; the only place that does.
 * Messages pass through (an upstream's refusal of credentials reaches the client as it was
 * worded); errors that are not KrillErrors are bugs and say only "internal error".
 */
export function toOciError(err: unknown, context: OciContext): OciError {
  if (!isKrillError(err)) return one('UNKNOWN', 500, 'internal error');
  const mapped = BY_CODE[err.code];
  if (mapped) return one(mapped[0], mapped[1], err.message, detailOf(err, mapped[0]));
  switch (err.category) {
    case 'NotFound': return one(NOT_FOUND[context], 404, err.message);
    case 'InvalidArgument': return one(INVALID[context], 400, err.message);
    case 'Unauthenticated': return one('UNAUTHORIZED', 401, err.message);
    case 'FailedPrecondition': return one('DENIED', 403, err.message);
    case 'Unavailable': return one('UNAVAILABLE', 503, err.message);
    case 'AlreadyExists': return one('DENIED', 409, err.message);
    default: return one('UNKNOWN', 500, err.message);
  }
}

function one(code: string, status: number, message: string, detail?: unknown): OciError {
  return { status, body: { errors: [{ code, message, ...(detail === undefined ? {} : { detail }) }] } };
}

/**
 * The `detail` of an error: what the error carries, or for MANIFEST_BLOB_UNKNOWN (spec: "the
 * detail contains the digest of the missing blob") the digest named in the message, which is
 * all an error that crossed HTTP from the build-index still has.
 */
function detailOf(err: KrillError, code: string): unknown {
  const own = (err as { detail?: unknown }).detail;
  if (own !== undefined) return own;
  if (code !== 'MANIFEST_BLOB_UNKNOWN') return undefined;
  const digest = /sha256:[a-f0-9]{64}/.exec(err.message)?.[0];
  return digest === undefined ? undefined : { digest };
}

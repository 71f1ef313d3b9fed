import {
  CanceledError,
  FailedPreconditionError,
  NotFoundError,
  UnauthenticatedError,
  UnavailableError,
  isKrillError,
  type KrillError,
} from '@krill/lib';

interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

const AUTH_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  // The default provider chain found no credentials at all.
  'CredentialsProviderError',
]);

/**
 * Translates an @aws-sdk/client-s3 error into a krill domain error with `context`
 * (`s3 stat sha256:...`) in the message and the SDK error as cause:
 * missing object → NotFound ERR_BACKEND_BLOB_NOT_FOUND; refused credentials → Unauthenticated
 * ERR_BACKEND_UNAUTHORIZED; a missing bucket → FailedPrecondition ERR_BACKEND_BUCKET_NOT_FOUND;
 * aborted → Canceled ERR_BACKEND_CANCELED; network errors, timeouts, throttling and 5xx →
 * Unavailable ERR_BACKEND_UNAVAILABLE; any other 4xx → FailedPrecondition ERR_BACKEND_REJECTED.
 */
export function mapS3Error(err: unknown, context: string): KrillError {
  if (isKrillError(err)) return err;
  const e = (err ?? {}) as SdkError;
  const name = e.Code ?? e.name ?? '';
  const status = e.$metadata?.httpStatusCode;
  const detail = `${context}: ${name || 'error'}${status ? ` (HTTP ${status})` : ''}: ${(err as Error)?.message ?? String(err)}`;
  if (name === 'AbortError') return new CanceledError(`${context}: aborted`, { code: 'ERR_BACKEND_CANCELED', cause: err });
  if (name === 'NoSuchBucket') return new FailedPreconditionError(detail, { code: 'ERR_BACKEND_BUCKET_NOT_FOUND', cause: err });
  if (name === 'NotFound' || name === 'NoSuchKey' || status === 404) {
    return new NotFoundError(`${context}: blob not found`, { code: 'ERR_BACKEND_BLOB_NOT_FOUND', cause: err });
  }
  if (AUTH_CODES.has(name) || status === 401 || status === 403) {
    return new UnauthenticatedError(detail, { code: 'ERR_BACKEND_UNAUTHORIZED', cause: err });
  }
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
    return new FailedPreconditionError(detail, { code: 'ERR_BACKEND_REJECTED', cause: err });
  }
  return new UnavailableError(detail, { code: 'ERR_BACKEND_UNAVAILABLE', cause: err });
}

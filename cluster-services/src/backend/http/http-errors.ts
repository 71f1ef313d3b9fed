import {
  CanceledError,
  FailedPreconditionError,
  UnauthenticatedError,
  UnavailableError,
  isKrillError,
  type KrillError,
} from '@krill/lib';

/**
 * The krill error for an unexpected HTTP status: 401/403 → Unauthenticated
 * ERR_BACKEND_UNAUTHORIZED; 408, 429 and 5xx → Unavailable ERR_BACKEND_UNAVAILABLE (worth a
 * retry); anything else (a redirect past the limit, 400, 410...) → FailedPrecondition
 * ERR_BACKEND_REJECTED. 404 is handled by the caller, which knows the digest.
 */
export function statusError(status: number, context: string): KrillError {
  const message = `${context}: HTTP ${status}${status >= 300 && status < 400 ? ' (a redirect past the limit)' : ''}`;
  if (status === 401 || status === 403) return new UnauthenticatedError(message, { code: 'ERR_BACKEND_UNAUTHORIZED' });
  if (status === 408 || status === 429 || status >= 500) return new UnavailableError(message, { code: 'ERR_BACKEND_UNAVAILABLE' });
  return new FailedPreconditionError(message, { code: 'ERR_BACKEND_REJECTED' });
}

/** Network errors and timeouts become Unavailable, aborts Canceled; krill errors pass through. */
export function mapHttpError(err: unknown, context: string): KrillError {
  if (isKrillError(err)) return err;
  const e = err as { name?: string; code?: string; message?: string } | undefined;
  if (e?.name === 'AbortError' || e?.code === 'UND_ERR_ABORTED') {
    return new CanceledError(`${context}: aborted`, { code: 'ERR_BACKEND_CANCELED', cause: err });
  }
  // undici's redirect interceptor refuses a redirect back to a URL it has already visited.
  if (e?.code === 'UND_ERR_INVALID_ARG' && /redirect/i.test(e.message ?? '')) {
    return new FailedPreconditionError(`${context}: redirect loop: ${e.message}`, { code: 'ERR_BACKEND_REJECTED', cause: err });
  }
  return new UnavailableError(`${context}: ${e?.code ?? e?.name ?? 'error'}: ${e?.message ?? String(err)}`, {
    code: 'ERR_BACKEND_UNAVAILABLE',
    cause: err,
  });
}

const CONTENT_RANGE_RE = /^bytes (?:\d+-\d+|\*)\/(\d+)$/;

/** The total length in `Content-Range: bytes 0-0/1234`, or in the `bytes *` form a 416 carries. */
export function totalFromContentRange(header: string | string[] | undefined): number | undefined {
  if (typeof header !== 'string') return undefined;
  const m = CONTENT_RANGE_RE.exec(header.trim());
  if (!m) return undefined;
  const total = Number(m[1]);
  return Number.isSafeInteger(total) ? total : undefined;
}

/**
 * Domain errors by category, independent of transport. Each carries a stable `code`
 * (`ERR_<AREA>_<WHAT>`) that tests and callers match on, and an optional `cause`.
 * Only the edges (HTTP handlers, gRPC services) translate a category into a status.
 */
export type ErrorCategory =
  | 'NotFound'
  | 'AlreadyExists'
  | 'InvalidArgument'
  | 'FailedPrecondition'
  | 'Unavailable'
  | 'Canceled'
  | 'Unauthenticated'
  | 'Internal';

export class KrillError extends Error {
  readonly category: ErrorCategory;
  readonly code: string;

  constructor(category: ErrorCategory, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.category = category;
    this.code = code;
    this.name = `${category}Error`;
  }
}

type Ctor = new (message: string, options?: { code?: string; cause?: unknown }) => KrillError;

function category(cat: ErrorCategory, defaultCode: string): Ctor {
  return class extends KrillError {
    constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
      super(cat, options.code ?? defaultCode, message, options.cause === undefined ? undefined : { cause: options.cause });
    }
  };
}

export const NotFoundError = category('NotFound', 'ERR_NOT_FOUND');
export const AlreadyExistsError = category('AlreadyExists', 'ERR_ALREADY_EXISTS');
export const InvalidArgumentError = category('InvalidArgument', 'ERR_INVALID_ARGUMENT');
export const FailedPreconditionError = category('FailedPrecondition', 'ERR_FAILED_PRECONDITION');
export const UnavailableError = category('Unavailable', 'ERR_UNAVAILABLE');
export const CanceledError = category('Canceled', 'ERR_CANCELED');
export const UnauthenticatedError = category('Unauthenticated', 'ERR_UNAUTHENTICATED');
export const InternalError = category('Internal', 'ERR_INTERNAL');

export function isKrillError(err: unknown): err is KrillError {
  return err instanceof KrillError;
}

/** True when `err` is a KrillError of the given category. */
export function isCategory(err: unknown, cat: ErrorCategory): err is KrillError {
  return err instanceof KrillError && err.category === cat;
}

/** The HTTP status that corresponds to a category; used by HTTP edges only. */
export function httpStatusOf(err: unknown): number {
  if (!(err instanceof KrillError)) return 500;
  switch (err.category) {
    case 'NotFound': return 404;
    case 'AlreadyExists': return 409;
    case 'InvalidArgument': return 400;
    case 'FailedPrecondition': return 412;
    case 'Unavailable': return 503;
    case 'Canceled': return 499;
    case 'Unauthenticated': return 401;
    case 'Internal': return 500;
  }
}

/** Rebuilds a KrillError from the JSON body an HTTP edge produced with `errorBody`. */
export function errorFromBody(status: number, body: unknown, context: string): KrillError {
  const b = (body ?? {}) as { category?: ErrorCategory; code?: string; message?: string };
  const cat: ErrorCategory = b.category ?? categoryOfStatus(status);
  return new KrillError(cat, b.code ?? `ERR_HTTP_${status}`, `${context}: ${b.message ?? `HTTP ${status}`}`);
}

/** The JSON body krill's internal HTTP APIs answer errors with. */
export function errorBody(err: KrillError): { category: ErrorCategory; code: string; message: string } {
  return { category: err.category, code: err.code, message: err.message };
}

function categoryOfStatus(status: number): ErrorCategory {
  if (status === 404) return 'NotFound';
  if (status === 409) return 'AlreadyExists';
  if (status === 400 || status === 413 || status === 416) return 'InvalidArgument';
  if (status === 401 || status === 403) return 'Unauthenticated';
  if (status === 412) return 'FailedPrecondition';
  if (status >= 500) return 'Unavailable';
  return 'Internal';
}

/** Node's codes for a full disk or an exhausted quota. */
const NO_SPACE = new Set(['ENOSPC', 'EDQUOT']);

/**
 * A write that failed because the disk (or the quota) is full, as a domain error naming what was
 * being written: ERR_STORE_FULL, Unavailable (another replica or a later try may have room).
 * Any other error is returned as it was. Storage code calls this where it writes, so that the
 * edges answer "no space left" (HTTP 507 at the registry API) rather than a bare internal error.
 */
export function diskError(err: unknown, what: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === undefined || !NO_SPACE.has(code)) return err;
  return new KrillError('Unavailable', 'ERR_STORE_FULL', `${what}: no space left on the device (${code})`, { cause: err });
}

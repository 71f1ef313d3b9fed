import { status, type ServiceError } from '@grpc/grpc-js';
import { isKrillError, type ErrorCategory } from '@krill/lib';

const CODES: Record<ErrorCategory, status> = {
  NotFound: status.NOT_FOUND,
  AlreadyExists: status.ALREADY_EXISTS,
  InvalidArgument: status.INVALID_ARGUMENT,
  FailedPrecondition: status.FAILED_PRECONDITION,
  Unavailable: status.UNAVAILABLE,
  Canceled: status.CANCELLED,
  Unauthenticated: status.UNAUTHENTICATED,
  Internal: status.INTERNAL,
};

/**
 * The gRPC status for an error thrown inside krill: the edge where domain categories become
 * codes. An error that already carries a gRPC code (one of containerd's answers) keeps it. A
 * cancellation caused by the caller's deadline is DEADLINE_EXCEEDED, as kubelet and critest
 * expect.
 */
export function toGrpcStatus(err: unknown, o: { deadlinePassed: boolean }): Pick<ServiceError, 'code' | 'details'> {
  if (o.deadlinePassed) return { code: status.DEADLINE_EXCEEDED, details: `deadline exceeded: ${(err as Error)?.message ?? err}` };
  if (isKrillError(err)) return { code: CODES[err.category], details: err.message };
  const e = err as Partial<ServiceError> | undefined;
  if (e && typeof e.code === 'number' && e.code in status) return { code: e.code, details: e.details ?? e.message ?? '' };
  return { code: status.INTERNAL, details: e?.message ?? String(err) };
}

/** The name of a status code for logs and metric labels (`NOT_FOUND`). */
export function codeName(code: number): string {
  return status[code] ?? String(code);
}

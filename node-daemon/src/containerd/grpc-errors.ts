import { status } from '@grpc/grpc-js';
import { KrillError, type ErrorCategory } from '@krill/lib';

const CATEGORY: Partial<Record<number, ErrorCategory>> = {
  [status.NOT_FOUND]: 'NotFound',
  [status.ALREADY_EXISTS]: 'AlreadyExists',
  [status.INVALID_ARGUMENT]: 'InvalidArgument',
  [status.FAILED_PRECONDITION]: 'FailedPrecondition',
  [status.UNAVAILABLE]: 'Unavailable',
  [status.DEADLINE_EXCEEDED]: 'Unavailable',
  [status.CANCELLED]: 'Canceled',
  [status.UNAUTHENTICATED]: 'Unauthenticated',
};

/** The gRPC code of a containerd answer, when it is one. */
export function grpcCode(err: unknown): number | undefined {
  const c = (err as { code?: unknown } | undefined)?.code;
  return typeof c === 'number' ? c : undefined;
}

/** containerd's gRPC error as a KrillError naming the call (`containerd content.Write: ...`). */
export function fromGrpc(err: unknown, call: string): KrillError {
  if (err instanceof KrillError) return err;
  const code = grpcCode(err);
  const details = (err as { details?: string; message?: string } | undefined)?.details ?? (err as Error)?.message ?? String(err);
  const cat = (code === undefined ? undefined : CATEGORY[code]) ?? 'Internal';
  return new KrillError(cat, `ERR_CONTAINERD_${cat.replace(/[A-Z]/g, (c, i: number) => (i ? '_' : '') + c).toUpperCase()}`, `containerd ${call}: ${details}`, { cause: err });
}

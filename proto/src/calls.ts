import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';

/**
 * The largest message either side may send. kubelet's CRI client and containerd's gRPC server
 * both use 16 MiB; grpc-js's default receive limit of 4 MiB is too small for a large
 * ListImages or ListContainers answer.
 */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Options for a grpc-js client or server talking CRI or containerd: the 16 MiB limits. */
export const channelOptions: grpc.ChannelOptions = Object.freeze({
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
});

/** The grpc-js target for a unix socket: `unix:` and the absolute path. */
export function unixTarget(socketPath: string): string {
  return `unix:${resolve(socketPath)}`;
}

/** containerd reads the namespace of every call from this header (FAILED_PRECONDITION without it). */
export const CONTAINERD_NAMESPACE_HEADER = 'containerd-namespace';
/** Objects a call creates while this header names a lease belong to that lease. */
export const CONTAINERD_LEASE_HEADER = 'containerd-lease';

/** Metadata for a containerd call in `namespace` (the CRI's is `k8s.io`), optionally under a lease. */
export function containerdMetadata(o: { namespace: string; lease?: string }): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(CONTAINERD_NAMESPACE_HEADER, o.namespace);
  if (o.lease !== undefined) md.set(CONTAINERD_LEASE_HEADER, o.lease);
  return md;
}

/** Per-call options of unary() and serverStream(). */
export interface CallOptions {
  /** Request headers, e.g. containerdMetadata(). */
  metadata?: grpc.Metadata;
  /** An absolute deadline (a Date or ms since the epoch); past it the call fails with DEADLINE_EXCEEDED. */
  deadline?: Date | number;
  /** Aborting it cancels the call, which then fails with grpc-js's CANCELLED error. */
  signal?: AbortSignal;
}

type Kind = 'unary' | 'server-stream';
type Invoke = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback?: grpc.requestCallback<unknown>) => grpc.ClientUnaryCall | grpc.ClientReadableStream<unknown>;

/**
 * The client's function for RPC `method`, which may be named as in the .proto (`PullImage`) or
 * in camelCase (`pullImage`): grpc-js defines both on every client. Throws a TypeError for a
 * name that is not an RPC of the client's service or whose streaming kind is not `kind`.
 */
function lookup(client: grpc.Client, method: string, kind: Kind): Invoke {
  const ctor = client.constructor as Partial<grpc.ServiceClientConstructor>;
  const entry = Object.entries(ctor.service ?? {}).find(([name, d]) => name === method || d.originalName === method);
  const where = `${ctor.serviceName ?? 'client'}.${method}`;
  if (!entry) throw new TypeError(`${where} is not an RPC of this client's service`);
  const [name, def] = entry;
  const actual: Kind | 'other' = def.requestStream ? 'other' : def.responseStream ? 'server-stream' : 'unary';
  if (actual !== kind) throw new TypeError(`${where} is not a ${kind} RPC`);
  return ((client as unknown as Record<string, Invoke>)[name]!).bind(client);
}

function grpcOptions(o: CallOptions): grpc.CallOptions {
  return o.deadline === undefined ? {} : { deadline: o.deadline };
}

/**
 * Calls a unary RPC and resolves with its response (typed by the caller, e.g.
 * `unary<PullImageResponse>(images, 'PullImage', { image: { image: ref } })`). Rejects with
 * grpc-js's ServiceError (`code`, `details`, `metadata`) when the call fails, is past its
 * deadline (DEADLINE_EXCEEDED) or is aborted (CANCELLED); translating codes into domain errors is
 * the caller's job. Safe to call concurrently on one client.
 */
export function unary<Res>(client: grpc.Client, method: string, request: object, o: CallOptions = {}): Promise<Res> {
  return new Promise<Res>((resolvePromise, reject) => {
    const invoke = lookup(client, method, 'unary');
    const { signal } = o;
    const onAbort = () => call.cancel();
    const call = invoke(request, o.metadata ?? new grpc.Metadata(), grpcOptions(o), (err, res) => {
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolvePromise(res as Res);
    });
    if (signal?.aborted) call.cancel();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Calls a server-streaming RPC and yields its messages. The call starts on the first `next()`;
 * leaving the loop early (break, throw) cancels it. Iteration throws grpc-js's ServiceError when
 * the call fails, passes its deadline or is aborted, after the messages that arrived before.
 * One iteration per returned iterable.
 */
export async function* serverStream<Res>(client: grpc.Client, method: string, request: object, o: CallOptions = {}): AsyncGenerator<Res, void, undefined> {
  const invoke = lookup(client, method, 'server-stream');
  const call = invoke(request, o.metadata ?? new grpc.Metadata(), grpcOptions(o)) as grpc.ClientReadableStream<Res>;
  const { signal } = o;
  const onAbort = () => call.cancel();
  if (signal?.aborted) call.cancel();
  else signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const message of call) yield message as Res;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // Cancelling an early-left call reports CANCELLED through an 'error' event after the
    // iterator has detached; without a listener that event would be thrown.
    call.on('error', () => {});
    call.cancel();
  }
}

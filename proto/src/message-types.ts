/**
 * How decoded messages look and what a request may be written as, for the hand-written types in
 * `cri-*-types.ts` and `containerd-types.ts`. Each message type there describes a message as
 * the loader (LOADER_OPTIONS) decodes it: every field present, scalars at their zero value
 * (`''`, `0`, `false`, the first enum name), unset messages `null`, lists `[]`, maps `{}`,
 * 64-bit integers as `number`, bytes as `Buffer`, enums as their names.
 */

/**
 * A message as a caller may write it for serialisation: every field optional (proto3 has no
 * required fields; a missing scalar is its zero value on the wire), nested messages likewise,
 * `null` for an unset message, bytes also as a Uint8Array or base64 string.
 */
export type Input<T> = T extends Buffer
  ? Uint8Array | string
  : T extends readonly (infer U)[]
    ? Input<U>[]
    : T extends object
      ? { [K in keyof T]?: Input<T[K]> }
      : T;

/** google.protobuf.Timestamp. */
export interface Timestamp {
  seconds: number;
  nanos: number;
}

/** google.protobuf.FieldMask: for containerd, paths like `labels` or `labels.<key>`. */
export interface FieldMask {
  paths: string[];
}

/** google.protobuf.Any. */
export interface Any {
  typeUrl: string;
  value: Buffer;
}

/** google.protobuf.Empty, the answer of containerd's Delete, Commit, Remove, Abort and others. */
export type Empty = Record<string, never>;

/** google.rpc.Status, as containerd's introspection reports a plugin's init error. */
export interface RpcStatus {
  /** A google.rpc.Code (grpc.status). */
  code: number;
  message: string;
  details: Any[];
}

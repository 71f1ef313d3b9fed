import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * The folder that holds the .proto files, in their import-path layout (`k8s.io/...`,
 * `github.com/containerd/...`, `google/rpc/...`). This module sits in `proto/src/` when vitest
 * runs the sources and in `proto/dist/` once compiled; both are one level below it.
 */
export const PROTO_ROOT: string = fileURLToPath(new URL('..', import.meta.url));

/**
 * How messages become JavaScript objects: camelCase field names, 64-bit integers as `number`
 * (exact up to 2^53, far above any size, offset or timestamp in these APIs), enums as their
 * names, every field present on decoded messages (scalars at their zero value, unset messages as
 * `null`, lists as `[]`, maps as `{}`), and oneofs named by a virtual field. `src/*-types.ts`
 * describe the objects this produces.
 */
export const LOADER_OPTIONS = Object.freeze({
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});

/** The CRI, `runtime.v1` (RuntimeService and ImageService). */
export const CRI_FILES: readonly string[] = Object.freeze(['k8s.io/cri-api/pkg/apis/runtime/v1/api.proto']);

/** The containerd services krill drives; their `types/` and google imports load with them. */
export const CONTAINERD_FILES: readonly string[] = Object.freeze(
  ['content/v1/content', 'images/v1/images', 'leases/v1/leases', 'snapshots/v1/snapshots', 'diff/v1/diff',
    'introspection/v1/introspection', 'version/v1/version', 'namespaces/v1/namespace']
    .map((f) => `github.com/containerd/containerd/api/services/${f}.proto`),
);

/**
 * Parses `files` (paths relative to PROTO_ROOT) with LOADER_OPTIONS and returns grpc-js's
 * package tree. Not cached: each call parses again (tens of milliseconds). Throws protobufjs's
 * error for a missing file or a syntax error.
 */
export function loadPackage(files: readonly string[]): grpc.GrpcObject {
  const definition = protoLoader.loadSync([...files], { ...LOADER_OPTIONS, includeDirs: [PROTO_ROOT] });
  return grpc.loadPackageDefinition(definition);
}

/** The service at a dotted path of a package tree, e.g. `runtime.v1.ImageService`. */
function service(root: grpc.GrpcObject, path: string): grpc.ServiceClientConstructor {
  let node: unknown = root;
  for (const part of path.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  if (typeof node !== 'function' || !('service' in node)) throw new Error(`no gRPC service ${path} in the loaded .proto files`);
  return node as grpc.ServiceClientConstructor;
}

/** The CRI services; `new ImageService(target, credentials, channelOptions)` makes a client. */
export interface CriServices {
  ImageService: grpc.ServiceClientConstructor;
  RuntimeService: grpc.ServiceClientConstructor;
}

/** containerd's services (package `containerd.services.<name>.v1`). */
export interface ContainerdServices {
  Content: grpc.ServiceClientConstructor;
  Images: grpc.ServiceClientConstructor;
  Leases: grpc.ServiceClientConstructor;
  Snapshots: grpc.ServiceClientConstructor;
  Diff: grpc.ServiceClientConstructor;
  Introspection: grpc.ServiceClientConstructor;
  Version: grpc.ServiceClientConstructor;
  Namespaces: grpc.ServiceClientConstructor;
}

// The parsed definitions are immutable and the same for every caller, so one copy per process
// is enough; they are parsed on first use, not at import.
let criCache: CriServices | undefined;
let containerdCache: ContainerdServices | undefined;

/**
 * The CRI runtime.v1 client constructors. Each has `.service`, the ServiceDefinition a
 * grpc.Server takes in `addService` (keys are the RPC names, `PullImage`). Parsed on the first
 * call, then cached.
 */
export function cri(): CriServices {
  if (!criCache) {
    const root = loadPackage(CRI_FILES);
    criCache = Object.freeze({
      ImageService: service(root, 'runtime.v1.ImageService'),
      RuntimeService: service(root, 'runtime.v1.RuntimeService'),
    });
  }
  return criCache;
}

/** containerd's client constructors, like cri(). Parsed on the first call, then cached. */
export function containerd(): ContainerdServices {
  if (!containerdCache) {
    const root = loadPackage(CONTAINERD_FILES);
    const at = (name: string, svc: string) => service(root, `containerd.services.${name}.v1.${svc}`);
    containerdCache = Object.freeze({
      Content: at('content', 'Content'),
      Images: at('images', 'Images'),
      Leases: at('leases', 'Leases'),
      Snapshots: at('snapshots', 'Snapshots'),
      Diff: at('diff', 'Diff'),
      Introspection: at('introspection', 'Introspection'),
      Version: at('version', 'Version'),
      Namespaces: at('namespaces', 'Namespaces'),
    });
  }
  return containerdCache;
}

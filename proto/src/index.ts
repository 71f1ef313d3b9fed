/**
 * @krill/proto: the .proto files of the CRI (runtime.v1) and of containerd's services, loaded
 * at run time with @grpc/proto-loader, hand-written types for the messages krill uses, and
 * promise helpers for grpc-js calls. krill's own peer wire protocol (krill/p2p/v1/wire.proto)
 * is loaded by lib/src/wire/, not here.
 *
 * Method names: a client made from cri().ImageService has each RPC twice, as in the .proto
 * (`client.PullImage`) and in camelCase (`client.pullImage`); unary() and serverStream() take
 * either. A service definition (`ImageService.service`), which a grpc.Server's addService
 * takes, is keyed by the .proto names (`PullImage`); addService finds a handler under either name.
 */
export { PROTO_ROOT, LOADER_OPTIONS, CRI_FILES, CONTAINERD_FILES, loadPackage, cri, containerd } from './loader.js';
export type { CriServices, ContainerdServices } from './loader.js';
export {
  MAX_MESSAGE_BYTES, channelOptions, unixTarget, CONTAINERD_NAMESPACE_HEADER, CONTAINERD_LEASE_HEADER,
  containerdMetadata, unary, serverStream,
} from './calls.js';
export type { CallOptions } from './calls.js';
export type * from './message-types.js';
export type * from './cri-image-types.js';
export type * from './cri-runtime-types.js';
export type { types, content, images, leases } from './containerd-types.js';
export type { snapshots, diff, introspection, version, namespaces } from './containerd-snapshot-types.js';

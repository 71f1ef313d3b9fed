export type * from './cri-proxy.js';
export { startCriServer } from './server/cri-server.js';
export { toGrpcStatus } from './server/grpc-status.js';

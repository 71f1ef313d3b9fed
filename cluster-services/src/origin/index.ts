export type * from './store/blob-store.js';
export type * from './client/origin-client.js';
export { createBlobStore, type FsBlobStoreOptions } from './store/fs-blob-store.js';
export { createOriginClient, type OriginClientOptions } from './client/http-origin-client.js';
export { createWritebackQueue, type WritebackQueue, type WritebackOptions } from './writeback/writeback-queue.js';
export { originConfigSchema, type OriginConfig } from './config.js';
export { startOrigin, type RunningOrigin } from './server/origin-server.js';
export type * from './seeder/seeder.js';
export { peerConfigSchema, trackersConfigSchema, type PeerConfig, type TrackersConfig } from './seeder/config.js';

export type * from './client/tracker-client.js';
export { createTrackerClient } from './client/http-tracker-client.js';
export { trackerConfigSchema, type TrackerConfig } from './config.js';
export { startTracker } from './server/tracker-server.js';
export { createPeerStore } from './store/memory-peer-store.js';
export type { PeerInfo, PeerStore } from './store/peer-store.js';
export { connectAnnounceStream, type AnnounceConnection } from './stream/stream-client.js';

export type * from './client/build-index-client.js';
export { createBuildIndexClient, type BuildIndexClientOptions } from './client/http-build-index-client.js';
export { buildIndexConfigSchema, type BuildIndexConfig } from './config.js';
export { startBuildIndex } from './server/build-index-server.js';
export { openTagStore, type TagStore, type TagRecord } from './store/tag-store.js';

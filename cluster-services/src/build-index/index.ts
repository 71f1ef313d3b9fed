export type * from './client/build-index-client.js';
export { createBuildIndexClient, type BuildIndexClientOptions } from './client/http-build-index-client.js';
export { buildIndexConfigSchema, type BuildIndexConfig } from './config.js';
export { startBuildIndex, type BuildIndexDeps, type RunningBuildIndex } from './server/build-index-server.js';
export type { PullThroughRule } from './server/resolver.js';
export { openTagStore, type TagStore, type TagRecord, type TagStoreOptions } from './store/tag-store.js';

export { createMemoryOriginClient, type MemoryOriginClient } from './memory-origin-client.js';
export { createMemoryBuildIndexClient, type MemoryBuildIndexClient } from './memory-build-index-client.js';
export { startTestProxy, type TestProxy } from './test-proxy.js';

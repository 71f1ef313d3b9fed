export * from './backend/index.js';
export * from './upstream/index.js';
export * from './origin/index.js';
export * from './build-index/index.js';
export * from './proxy/index.js';
export * from './tracker/index.js';

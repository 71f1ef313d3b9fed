export type * from './agent/agent.js';
export type * from './agent/blob-cache.js';
export { openBlobCache } from './agent/cache/fs-blob-cache.js';
export { agentConfigSchema, type AgentConfig } from './agent/config.js';
export { createAgent, type AgentDeps } from './agent/core/agent-core.js';
export { startAgent, type RunningAgent } from './agent-server.js';

export type * from './registry-client.js';
export { registryHostsSchema, resolveNamespace, type UpstreamRef } from './hosts.js';
export { createRegistryClient, type RegistryClientOptions } from './http-registry-client.js';

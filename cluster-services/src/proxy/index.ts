export { proxyConfigSchema, type ProxyConfig } from './config.js';
export { startProxy } from './server/proxy-server.js';
export { toOciError, type OciContext, type OciError } from './server/oci-errors.js';
export { pageParams, parseV2Path, type V2Path } from './server/paths.js';

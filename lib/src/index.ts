export * from './errors.js';
export * from './digest.js';
export * from './config.js';
export * from './logger.js';
export * from './http-service.js';
export * from './hash-ring.js';
export * from './metainfo.js';
export * from './oci.js';

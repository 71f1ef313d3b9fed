export type * from './backend.js';
export { createFsBackend, fsBackendSchema, type FsBackendConfig, type FsBackendOptions } from './fs/fs-backend.js';
export { createS3Backend, type S3BackendOptions } from './s3/s3-backend.js';
export { s3BackendSchema, MIN_PART_SIZE_BYTES, type S3BackendConfig } from './s3/s3-config.js';
export { createHttpBackend, httpBackendSchema, type HttpBackendConfig, type HttpBackendOptions } from './http/http-backend.js';
export { createBackendRouter, type BackendRouterOptions, type RegistriesConfig } from './router.js';
export { backendRulesSchema, backendRuleSchema, BACKEND_KINDS, type BackendKind, type BackendRuleConfig } from './config.js';
export { instrumentBackend, type InstrumentOptions } from './instrumented.js';
export { validateNamespace, blobKey, metainfoKey } from './blob-key.js';

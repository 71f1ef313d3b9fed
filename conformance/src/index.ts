export * from './fixtures/oci-image.js';
export * from './harness/skopeo.js';
export * from './harness/krill-process.js';
export * from './lab/index.js';

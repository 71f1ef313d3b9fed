export * from './fixtures/oci-image.js';
export * from './harness/skopeo.js';
export * from './harness/krill-process.js';
export * from './lab/index.js';
export { availableContainerds, startContainerd, type Containerd, type ContainerdOptions, type ContainerdVersion } from './harness/containerd.js';

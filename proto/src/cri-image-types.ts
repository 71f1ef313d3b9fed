/**
 * CRI runtime.v1 ImageService messages, and the pod-sandbox config PullImage carries, as the
 * loader decodes them (see message-types.ts; requests are written as `Input<...>`). Field
 * names and meaning follow `k8s.io/cri-api/pkg/apis/runtime/v1/api.proto` in this package.
 */

/** An image reference or ID, with the context it is used in. */
export interface ImageSpec {
  /** A reference (`docker.io/library/busybox:latest`), an image ID or a digest. */
  image: string;
  annotations: Record<string, string>;
  /** The reference as the user wrote it, when known (cri-api v0.28+). */
  userSpecifiedImage: string;
  /** Runtime handler to pull for; empty is the default (v0.29+). */
  runtimeHandler: string;
  /** An image volume's image digest (v0.36+). */
  imageRef: string;
}

/** Registry credentials for one pull. Secret fields must never be logged. */
export interface AuthConfig {
  username: string;
  password: string;
  /** base64 of `user:password`. */
  auth: string;
  /** When set and not the image's registry host, containerd uses no credentials. */
  serverAddress: string;
  identityToken: string;
  registryToken: string;
}

export interface Int64Value {
  value: number;
}

export interface UInt64Value {
  value: number;
}

export interface Image {
  /** The image ID; must equal PullImageResponse.imageRef (containerd: the config digest). */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** Bytes; kubelet treats 0 as an error. */
  size: number;
  /** The default user's uid, or null when `username` names it. */
  uid: Int64Value | null;
  username: string;
  spec: ImageSpec | null;
  /** A recommendation to exempt the image from garbage collection. */
  pinned: boolean;
}

export interface ImageFilter {
  image: ImageSpec | null;
}

export interface ListImagesRequest {
  filter: ImageFilter | null;
}

export interface ListImagesResponse {
  images: Image[];
}

/** StreamImages (cri-api v0.36+, feature gate CRIListStreaming); containerd 1.6 lacks it. */
export interface StreamImagesRequest {
  filter: ImageFilter | null;
}

export interface StreamImagesResponse {
  images: Image[];
}

export interface ImageStatusRequest {
  image: ImageSpec | null;
  verbose: boolean;
}

export interface ImageStatusResponse {
  /** null when the image is not present. */
  image: Image | null;
  /** JSON values, only when verbose (containerd: key `info`, `{chainID, imageSpec}`). */
  info: Record<string, string>;
}

export interface PullImageRequest {
  image: ImageSpec | null;
  auth: AuthConfig | null;
  sandboxConfig: PodSandboxConfig | null;
}

export interface PullImageResponse {
  /** The pulled image's ID; kubelet treats `''` as an error. */
  imageRef: string;
}

export interface RemoveImageRequest {
  image: ImageSpec | null;
}

export type RemoveImageResponse = Record<string, never>;

export type ImageFsInfoRequest = Record<string, never>;

export interface FilesystemIdentifier {
  mountpoint: string;
}

export interface FilesystemUsage {
  /** Nanoseconds since the epoch. */
  timestamp: number;
  fsId: FilesystemIdentifier | null;
  usedBytes: UInt64Value | null;
  inodesUsed: UInt64Value | null;
}

export interface ImageFsInfoResponse {
  imageFilesystems: FilesystemUsage[];
  /** Set only when container storage is separate from image storage (v0.29+). */
  containerFilesystems: FilesystemUsage[];
}

/** NamespaceMode. */
export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';

export interface IDMapping {
  hostId: number;
  containerId: number;
  length: number;
}

export interface UserNamespace {
  mode: NamespaceMode;
  uids: IDMapping[];
  gids: IDMapping[];
}

export interface NamespaceOption {
  network: NamespaceMode;
  pid: NamespaceMode;
  ipc: NamespaceMode;
  /** The container whose namespace TARGET means. */
  targetId: string;
  usernsOptions: UserNamespace | null;
}

export interface SELinuxOption {
  user: string;
  role: string;
  type: string;
  level: string;
}

export interface SecurityProfile {
  profileType: 'RuntimeDefault' | 'Unconfined' | 'Localhost';
  localhostRef: string;
}

export type SupplementalGroupsPolicy = 'Merge' | 'Strict';

export interface LinuxSandboxSecurityContext {
  namespaceOptions: NamespaceOption | null;
  selinuxOptions: SELinuxOption | null;
  runAsUser: Int64Value | null;
  runAsGroup: Int64Value | null;
  readonlyRootfs: boolean;
  supplementalGroups: number[];
  supplementalGroupsPolicy: SupplementalGroupsPolicy;
  privileged: boolean;
  seccomp: SecurityProfile | null;
  apparmor: SecurityProfile | null;
  /** Deprecated for `seccomp`. */
  seccompProfilePath: string;
}

/** Linux resources; zero or empty fields are "not specified". */
export interface LinuxContainerResources {
  cpuPeriod: number;
  cpuQuota: number;
  cpuShares: number;
  memoryLimitInBytes: number;
  oomScoreAdj: number;
  cpusetCpus: string;
  cpusetMems: string;
  hugepageLimits: { pageSize: string; limit: number }[];
  /** cgroup v2 files, e.g. `memory.max`. */
  unified: Record<string, string>;
  memorySwapLimitInBytes: number;
}

export interface LinuxPodSandboxConfig {
  cgroupParent: string;
  securityContext: LinuxSandboxSecurityContext | null;
  sysctls: Record<string, string>;
  overhead: LinuxContainerResources | null;
  resources: LinuxContainerResources | null;
}

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
}

export interface DNSConfig {
  servers: string[];
  searches: string[];
  options: string[];
}

export interface PortMapping {
  protocol: 'TCP' | 'UDP' | 'SCTP';
  containerPort: number;
  hostPort: number;
  hostIp: string;
}

/**
 * A pod sandbox's config. `windows` (WindowsPodSandboxConfig) is typed loosely: krill never
 * reads it.
 */
export interface PodSandboxConfig {
  metadata: PodSandboxMetadata | null;
  hostname: string;
  /** Host directory of the pod's container logs; ContainerConfig.logPath is relative to it. */
  logDirectory: string;
  dnsConfig: DNSConfig | null;
  portMappings: PortMapping[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  linux: LinuxPodSandboxConfig | null;
  windows: Record<string, unknown> | null;
}

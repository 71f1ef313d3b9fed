import type { ImageSpec, IDMapping, Int64Value, LinuxContainerResources, NamespaceOption, PodSandboxConfig, SecurityProfile, SELinuxOption, SupplementalGroupsPolicy } from './cri-image-types.js';

/**
 * The CRI runtime.v1 RuntimeService messages krill's tests and tools call, as the loader decodes
 * them (see message-types.ts). Windows-only and rarely used parts are typed loosely.
 */

export interface VersionRequest {
  /** The kubelet's runtime API version, e.g. `v1`. */
  version: string;
}

export interface VersionResponse {
  version: string;
  runtimeName: string;
  runtimeVersion: string;
  runtimeApiVersion: string;
}

export interface RunPodSandboxRequest {
  config: PodSandboxConfig | null;
  /** RuntimeClass handler; empty is the default. */
  runtimeHandler: string;
}

export interface RunPodSandboxResponse {
  podSandboxId: string;
}

export interface StopPodSandboxRequest {
  podSandboxId: string;
}

export type StopPodSandboxResponse = Record<string, never>;

export interface RemovePodSandboxRequest {
  podSandboxId: string;
}

export type RemovePodSandboxResponse = Record<string, never>;

export interface ContainerMetadata {
  name: string;
  attempt: number;
}

export interface KeyValue {
  key: string;
  value: string;
}

export type MountPropagation = 'PROPAGATION_PRIVATE' | 'PROPAGATION_HOST_TO_CONTAINER' | 'PROPAGATION_BIDIRECTIONAL';

export interface Mount {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  selinuxRelabel: boolean;
  propagation: MountPropagation;
  uidMappings: IDMapping[];
  gidMappings: IDMapping[];
  recursiveReadOnly: boolean;
  /** An image volume; `hostPath` is empty then. */
  image: ImageSpec | null;
  imageSubPath: string;
}

export interface Device {
  containerPath: string;
  hostPath: string;
  /** Any of `r`, `w`, `m`. */
  permissions: string;
}

export interface Capability {
  addCapabilities: string[];
  dropCapabilities: string[];
  addAmbientCapabilities: string[];
}

export interface LinuxContainerSecurityContext {
  capabilities: Capability | null;
  privileged: boolean;
  namespaceOptions: NamespaceOption | null;
  selinuxOptions: SELinuxOption | null;
  runAsUser: Int64Value | null;
  runAsGroup: Int64Value | null;
  runAsUsername: string;
  readonlyRootfs: boolean;
  supplementalGroups: number[];
  supplementalGroupsPolicy: SupplementalGroupsPolicy;
  noNewPrivs: boolean;
  maskedPaths: string[];
  readonlyPaths: string[];
  seccomp: SecurityProfile | null;
  apparmor: SecurityProfile | null;
  /** Deprecated for `apparmor`. */
  apparmorProfile: string;
  /** Deprecated for `seccomp`. */
  seccompProfilePath: string;
}

export interface LinuxContainerConfig {
  resources: LinuxContainerResources | null;
  securityContext: LinuxContainerSecurityContext | null;
}

/** Signal: RUNTIME_DEFAULT or a signal name as in signal(7), SIGRTMIN+n and SIGRTMAX-n spelt out. */
export type Signal =
  | 'RUNTIME_DEFAULT' | 'SIGABRT' | 'SIGALRM' | 'SIGBUS' | 'SIGCHLD' | 'SIGCLD' | 'SIGCONT' | 'SIGFPE'
  | 'SIGHUP' | 'SIGILL' | 'SIGINT' | 'SIGIO' | 'SIGIOT' | 'SIGKILL' | 'SIGPIPE' | 'SIGPOLL' | 'SIGPROF'
  | 'SIGPWR' | 'SIGQUIT' | 'SIGSEGV' | 'SIGSTKFLT' | 'SIGSTOP' | 'SIGSYS' | 'SIGTERM' | 'SIGTRAP'
  | 'SIGTSTP' | 'SIGTTIN' | 'SIGTTOU' | 'SIGURG' | 'SIGUSR1' | 'SIGUSR2' | 'SIGVTALRM' | 'SIGWINCH'
  | 'SIGXCPU' | 'SIGXFSZ' | 'SIGRTMIN' | 'SIGRTMAX'
  | `SIGRTMINPLUS${1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14 | 15}`
  | `SIGRTMAXMINUS${1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14}`;

/** A container's config. `windows` is typed loosely: krill never reads it. */
export interface ContainerConfig {
  metadata: ContainerMetadata | null;
  image: ImageSpec | null;
  /** The entrypoint. */
  command: string[];
  args: string[];
  workingDir: string;
  envs: KeyValue[];
  mounts: Mount[];
  devices: Device[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Relative to PodSandboxConfig.logDirectory. */
  logPath: string;
  stdin: boolean;
  stdinOnce: boolean;
  tty: boolean;
  linux: LinuxContainerConfig | null;
  windows: Record<string, unknown> | null;
  /** Upstream field `CDI_devices`. */
  CDIDevices: { name: string }[];
  stopSignal: Signal;
}

export interface CreateContainerRequest {
  podSandboxId: string;
  config: ContainerConfig | null;
  /** The config the sandbox was run with. */
  sandboxConfig: PodSandboxConfig | null;
}

export interface CreateContainerResponse {
  containerId: string;
}

export interface StartContainerRequest {
  containerId: string;
}

export type StartContainerResponse = Record<string, never>;

export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';

export interface ContainerFilter {
  id: string;
  state: { state: ContainerState } | null;
  podSandboxId: string;
  labelSelector: Record<string, string>;
}

export interface ListContainersRequest {
  filter: ContainerFilter | null;
}

export interface Container {
  id: string;
  podSandboxId: string;
  metadata: ContainerMetadata | null;
  image: ImageSpec | null;
  imageRef: string;
  state: ContainerState;
  /** Nanoseconds since the epoch. */
  createdAt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  imageId: string;
}

export interface ListContainersResponse {
  containers: Container[];
}

export interface ContainerStatusRequest {
  containerId: string;
  verbose: boolean;
}

/** A container's status; `resources` and `user` are typed loosely. */
export interface ContainerStatus {
  id: string;
  metadata: ContainerMetadata | null;
  state: ContainerState;
  /** Nanoseconds since the epoch; 0 means not yet, for the three times. */
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  image: ImageSpec | null;
  /** containerd: `repo@<manifest digest>` when the image has a repo digest. */
  imageRef: string;
  reason: string;
  message: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  mounts: Mount[];
  logPath: string;
  resources: Record<string, unknown> | null;
  imageId: string;
  user: Record<string, unknown> | null;
  stopSignal: Signal;
}

export interface ContainerStatusResponse {
  status: ContainerStatus | null;
  /** JSON values, only when verbose. */
  info: Record<string, string>;
}

export interface ExecSyncRequest {
  containerId: string;
  cmd: string[];
  /** Seconds; 0 runs without a limit. */
  timeout: number;
}

export interface ExecSyncResponse {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

export interface StatusRequest {
  verbose: boolean;
}

export interface RuntimeCondition {
  /** `RuntimeReady`, `NetworkReady` or an informative type. */
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

export interface RuntimeHandler {
  name: string;
  features: { recursiveReadOnlyMounts: boolean; userNamespaces: boolean } | null;
}

export interface StatusResponse {
  status: { conditions: RuntimeCondition[] } | null;
  /** JSON values, only when verbose; containerd's CRI config is under `config`. */
  info: Record<string, string>;
  runtimeHandlers: RuntimeHandler[];
  features: { supplementalGroupsPolicy: boolean; userNamespacesHostNetwork: boolean } | null;
}

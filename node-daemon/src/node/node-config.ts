import type { Schema } from '@krill/lib';
import { agentConfigSchema, type AgentConfig } from '../agent/config.js';

/** How PullImage treats one registry host. */
export type PullMode = 'auto' | 'krill' | 'direct';

export interface RegistryRule {
  /** `host[:port]` exactly as in the normalized reference (`docker.io`, `registry.krill:5000`). */
  host: string;
  /**
   * `auto`: through krill, handed to containerd's own pull when krill cannot serve it;
   * `krill`: through krill only (its errors are the answer); `direct`: containerd's own pull.
   */
  mode: PullMode;
  /** krill's repository for `host/path` is `repositoryPrefix + path` (default "": just the path). */
  repositoryPrefix: string;
}

export interface CriConfig {
  /** The CRI socket kubelet and crictl talk to (mode 0660). */
  socket: string;
  containerd: { socket: string; namespace: string };
  /** krill's attempt at one PullImage is abandoned after this and, in `auto`, handed to containerd. */
  pullTimeoutMs: number;
  /** The snapshotter to unpack into; default: the one containerd's CRI reports. */
  snapshotter?: string;
  registries: RegistryRule[];
  /** The mode of hosts no rule names. */
  defaultMode: PullMode;
}

/** `krill node`: the agent's configuration plus the CRI socket's. */
export interface NodeConfig extends AgentConfig {
  cri: CriConfig;
}

const mode: Schema = { type: 'string', enum: ['auto', 'krill', 'direct'] };

export const criConfigSchema: Schema = {
  type: 'object', additionalProperties: false, default: {},
  properties: {
    socket: { type: 'string', minLength: 1, default: '/run/krill/cri.sock' },
    containerd: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        socket: { type: 'string', minLength: 1, default: '/run/containerd/containerd.sock' },
        // The CRI sees only this namespace.
        namespace: { type: 'string', minLength: 1, default: 'k8s.io' },
      },
    },
    // Fifteen minutes: a 10 GB image at 20 MB/s, with room; a stuck attempt still leaves kubelet
    // time for containerd's own pull.
    pullTimeoutMs: { type: 'integer', minimum: 1000, default: 900_000 },
    snapshotter: { type: 'string', minLength: 1 },
    registries: {
      type: 'array', default: [],
      items: {
        type: 'object', additionalProperties: false, required: ['host', 'mode'],
        properties: { host: { type: 'string', minLength: 1 }, mode, repositoryPrefix: { type: 'string', default: '' } },
      },
    },
    defaultMode: { ...mode, default: 'auto' },
  },
};

export const nodeConfigSchema: Schema = {
  ...agentConfigSchema,
  properties: { ...(agentConfigSchema as { properties: Record<string, Schema> }).properties, cri: criConfigSchema },
};

/** The rule for `host`: its own, or the default mode with no prefix. */
export function registryRule(c: CriConfig, host: string): RegistryRule {
  return c.registries.find((r) => r.host === host) ?? { host, mode: c.defaultMode, repositoryPrefix: '' };
}

import { dnsMembersSchema, listenSchema, logLevelSchema, shutdownTimeoutSchema, type DnsMembersConfig, type Schema } from '@krill/lib';
import { backendRulesSchema, type BackendRuleConfig } from '../backend/index.js';
import { registryHostsSchema, type RegistryHosts } from '../upstream/index.js';
import { peerConfigSchema, trackersConfigSchema, type PeerConfig, type TrackersConfig } from './seeder/config.js';

const GiB = 1024 ** 3;

export interface OriginConfig {
  listen: { host: string; port: number };
  /** The URL other components reach this origin at; its identity on the hash ring. Default: the bound URL. */
  advertiseUrl?: string;
  /**
   * The ring: `origins` (static URLs) and the addresses `dns` resolves to, unioned; this origin
   * is always a member, under the resolved URL that is its own when there is one.
   */
  cluster: { origins: string[]; dns?: DnsMembersConfig; replicas: number };
  store: { dir: string; capacityBytes: number };
  backends: BackendRuleConfig[];
  registries: RegistryHosts;
  writeback: { retryMinMs: number; retryMaxMs: number; replicaDelayMs: number; concurrency: number };
  /** The P2P seeder's endpoint; absent, the origin serves blobs over HTTP only. */
  peer?: PeerConfig;
  /** Trackers the seeder announces its seed swarms to. */
  trackers: TrackersConfig;
  shutdownTimeoutMs: number;
  logLevel: string;
}

export const originConfigSchema: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['store'],
  properties: {
    listen: listenSchema(15002),
    advertiseUrl: { type: 'string', pattern: '^https?://' },
    cluster: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        // Empty, with no dns, means this origin alone.
        origins: { type: 'array', items: { type: 'string', pattern: '^https?://' }, default: [] },
        dns: dnsMembersSchema,
        // Three copies survive the loss of any two origins (Kraken's default too).
        replicas: { type: 'integer', minimum: 1, maximum: 16, default: 3 },
      },
    },
    store: {
      type: 'object', additionalProperties: false, required: ['dir'],
      properties: {
        dir: { type: 'string', minLength: 1 },
        capacityBytes: { type: 'integer', minimum: 1, default: 100 * GiB },
      },
    },
    backends: { ...backendRulesSchema, default: [] },
    registries: { ...registryHostsSchema, default: {} },
    writeback: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        retryMinMs: { type: 'integer', minimum: 1, default: 1000 },
        // Five minutes: a backend outage is retried often enough to drain soon after it ends.
        retryMaxMs: { type: 'integer', minimum: 1, default: 300_000 },
        // Replicas write back only if the accepting origin has not within 30 minutes (Kraken's choice).
        replicaDelayMs: { type: 'integer', minimum: 0, default: 1_800_000 },
        concurrency: { type: 'integer', minimum: 1, maximum: 64, default: 4 },
      },
    },
    peer: peerConfigSchema,
    trackers: trackersConfigSchema,
    shutdownTimeoutMs: shutdownTimeoutSchema,
    logLevel: logLevelSchema,
  },
};

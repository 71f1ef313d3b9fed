import {
  listenSchema, logLevelSchema, originsRefSchema, shutdownTimeoutSchema, trackersRefSchema,
  type OriginsRefConfig, type Schema, type TrackersRefConfig,
} from '@krill/lib';

export interface AgentConfig {
  /** The local registry API (OCI distribution, read only): loopback by default. */
  listen: { host: string; port: number };
  /** The peer endpoint; `advertise` is the address told to the tracker (default: `host`). */
  peer: { host: string; port: number; advertise?: string };
  /** Static `urls`, a `dns` name whose addresses are the trackers, or both; neither: origins only. */
  trackers: TrackersRefConfig;
  /** Static `urls`, a `dns` name (the origins' headless Service), or both. */
  origins: OriginsRefConfig;
  buildIndex: { urls: string[] };
  cache: { dir: string; capacityBytes: number };
  /** Per-process caps on all peer traffic, in MB/s (10^6 bytes); absent means no cap. */
  limits: { ingressMBps?: number; egressMBps?: number };
  p2p: { maxConnections: number; pipeline: number; requestTimeoutMs: number; announceRetryMs: number; redialMs: number };
  /** A download with no new verified piece for this long fails. */
  stallTimeoutMs: number;
  /** With no peer connection for this long, pieces are read from the origins over HTTP. */
  httpFallbackAfterMs: number;
  /** A completed blob keeps seeding this long after its download ended. */
  seedMs: number;
  /** How long the metainfo of a blob may take: trackers, then origins (which may fetch from a backend). */
  metainfoTimeoutMs: number;
  shutdownTimeoutMs: number;
  logLevel: string;
}

const urls: Schema = { type: 'array', items: { type: 'string', pattern: '^https?://' } };
const ipv4 = '^(25[0-5]|2[0-4]\\d|1?\\d?\\d)(\\.(25[0-5]|2[0-4]\\d|1?\\d?\\d)){3}$';

export const agentConfigSchema: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['origins', 'buildIndex', 'cache'],
  properties: {
    listen: listenSchema(15005),
    peer: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        host: { type: 'string', pattern: ipv4, default: '127.0.0.1' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 15006 },
        advertise: { type: 'string', pattern: ipv4 },
      },
    },
    trackers: trackersRefSchema,
    origins: originsRefSchema,
    buildIndex: { type: 'object', additionalProperties: false, required: ['urls'], properties: { urls: { ...urls, minItems: 1 } } },
    cache: {
      type: 'object', additionalProperties: false, required: ['dir'],
      properties: {
        dir: { type: 'string', minLength: 1 },
        // 20 GiB: a node's working set of images with room for a few multi-GB ones.
        capacityBytes: { type: 'integer', minimum: 1, default: 20 * 1024 ** 3 },
      },
    },
    limits: {
      type: 'object', additionalProperties: false, default: {},
      properties: { ingressMBps: { type: 'number', exclusiveMinimum: 0 }, egressMBps: { type: 'number', exclusiveMinimum: 0 } },
    },
    p2p: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        // Ten connections per blob, as Kraken: enough sources to fill a link, few enough to keep
        // each one's pipeline full.
        maxConnections: { type: 'integer', minimum: 1, maximum: 200, default: 10 },
        // Two outstanding pieces per peer: one arriving while the next is asked for, a round trip
        // at link speed for 1-4 MiB pieces (1 MiB at 25 MB/s takes 40 ms). Deeper pipelines piled
        // requests up at whichever peer announced a piece first while others stood idle
        // (bench:swarm, 10 hosts: p99 11.5-11.9 s with 1 or 2, 12.0-13.4 s with 4, 12.5-12.9 s with 8).
        pipeline: { type: 'integer', minimum: 1, maximum: 64, default: 2 },
        // 15 s: a 4 MiB piece at 1 MB/s still arrives; a dead peer's requests move on soon after.
        requestTimeoutMs: { type: 'integer', minimum: 100, default: 15_000 },
        // When a tracker fails, try again after one ordinary announce interval.
        announceRetryMs: { type: 'integer', minimum: 100, default: 3000 },
        // A peer that could not be reached is tried again after this.
        redialMs: { type: 'integer', minimum: 100, default: 10_000 },
      },
    },
    // A minute without a single verified piece: every source is gone or stuck.
    stallTimeoutMs: { type: 'integer', minimum: 100, default: 60_000 },
    // Five seconds without any peer connection (origins included) before HTTP is used instead.
    httpFallbackAfterMs: { type: 'integer', minimum: 0, default: 5000 },
    // Ten minutes: long enough for the rest of a rollout to fetch from this node.
    seedMs: { type: 'integer', minimum: 0, default: 600_000 },
    // Ten minutes: an origin may first fetch a GiB blob from a slow backend to hash it.
    metainfoTimeoutMs: { type: 'integer', minimum: 100, default: 600_000 },
    shutdownTimeoutMs: shutdownTimeoutSchema,
    logLevel: logLevelSchema,
  },
};

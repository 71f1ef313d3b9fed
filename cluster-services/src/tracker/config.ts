import { listenSchema, logLevelSchema, originsRefSchema, shutdownTimeoutSchema, type OriginsRefConfig, type Schema } from '@krill/lib';

export interface TrackerConfig {
  listen: { host: string; port: number };
  origins: OriginsRefConfig;
  /** How often agents are told to announce. */
  announceIntervalMs: number;
  /** A peer that has not announced for this long leaves the swarm. */
  peerTtlMs: number;
  /** Peers handed out per announce. */
  maxPeers: number;
  shutdownTimeoutMs: number;
  logLevel: string;
}

export const trackerConfigSchema: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['origins'],
  properties: {
    listen: listenSchema(15003),
    origins: originsRefSchema,
    // Three seconds, as Kraken's tracker answers: a new peer is known to the swarm within one interval.
    announceIntervalMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 3000 },
    // Ten intervals: a peer survives a few lost announces but a dead one leaves within half a minute.
    peerTtlMs: { type: 'integer', minimum: 1000, default: 30_000 },
    // 50 as Kraken: far more than the ~10 connections an agent keeps, so it has spares to try.
    maxPeers: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
    shutdownTimeoutMs: shutdownTimeoutSchema,
    logLevel: logLevelSchema,
  },
};

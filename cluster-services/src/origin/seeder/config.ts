import { trackersRefSchema, type Schema, type TrackersRefConfig } from '@krill/lib';

/**
 * The origin's peer endpoint (the P2P seeder). Absent from the origin's config, the origin does
 * not seed over the wire and serves blobs over HTTP only.
 */
export interface PeerConfig {
  /** Listen address. */
  host: string;
  /** Listen port; 0 picks a free one (tests). */
  port: number;
  /**
   * The IPv4 address told to the tracker and returned by `GET /peer`. Default: `host`, which is
   * right unless the origin listens on 0.0.0.0 or behind NAT; then set it.
   */
  advertise?: string;
  /** A cap on the bytes a second all seed swarms together send, in MB (10^6 bytes); absent: none. */
  egressMBps?: number;
  /** A seed swarm nobody connected to or was served by for this long is closed. */
  idleMs: number;
}

/** Trackers the seeder announces its seed swarms to (`urls`, `dns` or both); with neither it announces nothing. */
export type TrackersConfig = TrackersRefConfig;

/** Dotted-quad IPv4, as the tracker's peer records hold. */
const IPV4 = '^(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)$';

export const peerConfigSchema: Schema = {
  type: 'object', additionalProperties: false,
  properties: {
    host: { type: 'string', default: '127.0.0.1' },
    // 15001: Kraken's origin peer port, free beside krill's proxy (15000) and origin (15002).
    port: { type: 'integer', minimum: 0, maximum: 65535, default: 15001 },
    advertise: { type: 'string', pattern: IPV4 },
    // At most 100 GB/s: above any NIC an origin has, so a larger number is a typo.
    egressMBps: { type: 'number', exclusiveMinimum: 0, maximum: 100_000 },
    // Five minutes: Kraken's seeder_tti; an agent pulling a layer comes back within it or never.
    idleMs: { type: 'integer', minimum: 1, default: 300_000 },
  },
};

export const trackersConfigSchema: Schema = trackersRefSchema;

import type { Schema } from './config.js';
import type { DnsMembersConfig } from './membership.js';

/** Schema fragments every krill service config shares. */

/** `listen: { host, port }`: loopback unless configured otherwise. */
export function listenSchema(defaultPort: number): Schema {
  return {
    type: 'object', additionalProperties: false, default: {},
    properties: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'integer', minimum: 0, maximum: 65535, default: defaultPort },
    },
  };
}

const urlSchema: Schema = { type: 'string', pattern: '^https?://' };

/**
 * `dns: { name, records, port, scheme, refreshMs }`: members are the addresses `name` resolves to
 * (A records, else AAAA) at `<scheme>://<ip>:<port>`, or its SRV records' targets at
 * `<scheme>://<target>:<port>` (see membership.ts).
 */
export const dnsMembersSchema: Schema = {
  type: 'object', additionalProperties: false, required: ['name'],
  properties: {
    records: { enum: ['A', 'SRV'], default: 'A' },
    // A DNS name, fully qualified: node:dns does not apply resolv.conf's search list.
    name: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$' },
    // Required for A records; with SRV, the records' own ports unless this is set.
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    // krill's services speak plain HTTP to each other today; the key is there for TLS later.
    scheme: { enum: ['http'], default: 'http' },
    // Ten seconds: a scaled or restarted member joins every ring within it (plus the DNS TTL,
    // 5 s for Kubernetes' headless Services), for one small query per client per interval.
    refreshMs: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 10_000 },
  },
  // An address carries no port: A records need one here.
  if: { properties: { records: { const: 'A' } } },
  then: { required: ['port'] },
};

/** The message a config gets when it names neither `urls` nor `dns`. */
const MEMBERS_MESSAGE = 'needs urls (a static list of base URLs), dns ({ name, port } or { name, records: SRV }: a headless Service whose pods are the members) or both';

/** `origins: { urls, dns, replicas }` for services that talk to the origin ring: urls, dns or both. */
export const originsRefSchema: Schema = {
  type: 'object', additionalProperties: false,
  properties: {
    urls: { type: 'array', items: urlSchema, default: [] },
    dns: dnsMembersSchema,
    // Three copies survive the loss of any two origins (Kraken's default too).
    replicas: { type: 'integer', minimum: 1, maximum: 16, default: 3 },
  },
  anyOf: [{ required: ['dns'] }, { required: ['urls'], properties: { urls: { minItems: 1 } } }],
  errorMessage: MEMBERS_MESSAGE,
};

/** `origins:` as originsRefSchema gives it: `urls` defaults to [] when only `dns` is set. */
export interface OriginsRefConfig {
  urls: string[];
  dns?: DnsMembersConfig;
  replicas: number;
}

/** `trackers:` as trackersRefSchema gives it. */
export interface TrackersRefConfig {
  urls: string[];
  dns?: DnsMembersConfig;
}

/** `trackers: { urls, dns }`, optional: with neither, there are no trackers. */
export const trackersRefSchema: Schema = {
  type: 'object', additionalProperties: false, default: {},
  properties: {
    urls: { type: 'array', items: urlSchema, default: [] },
    dns: dnsMembersSchema,
  },
};

/** pino's levels. */
export const logLevelSchema: Schema = { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' };

/** How long SIGTERM waits for in-flight transfers: 30 s lets a GiB finish on a slow link. */
export const shutdownTimeoutSchema: Schema = { type: 'integer', minimum: 0, default: 30_000 };

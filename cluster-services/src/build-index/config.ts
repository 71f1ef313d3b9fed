import { listenSchema, logLevelSchema, originsRefSchema, shutdownTimeoutSchema, type OriginsRefConfig, type Schema } from '@krill/lib';
import { registryHostsSchema, type RegistryHosts } from '../upstream/index.js';
import type { PullThroughRule } from './server/resolver.js';

export interface BuildIndexConfig {
  /** Where the API listens; loopback by default. */
  listen: { host: string; port: number };
  /** The SQLite file holding the tags (its directory is created). */
  db: string;
  /** The origin ring that a tag's manifest and blobs must be on before the tag is accepted. */
  origins: OriginsRefConfig;
  /** Repositories resolved by their upstream registry, first match wins. */
  pullThrough: PullThroughRule[];
  /** How to reach each upstream registry (endpoints, credentials), as for the origins' registry backend. */
  registries: RegistryHosts;
  shutdownTimeoutMs: number;
  logLevel: string;
}

export const buildIndexConfigSchema: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['db', 'origins'],
  properties: {
    // 15004: beside the proxy (15000) and the origins (15002, ...), as in the devcluster.
    listen: listenSchema(15004),
    db: { type: 'string', minLength: 1, description: 'SQLite file holding the tags.' },
    origins: originsRefSchema,
    pullThrough: {
      type: 'array', default: [],
      items: {
        type: 'object', additionalProperties: false, required: ['namespace'],
        properties: {
          namespace: { type: 'string', minLength: 1, description: 'Regular expression over repository names, e.g. ^docker\\.io/.' },
          // Five minutes: a moved upstream tag is seen within that, and upstream gets one question per tag per TTL.
          tagTtlSeconds: { type: 'integer', minimum: 0, default: 300 },
        },
      },
    },
    registries: { ...registryHostsSchema, default: {} },
    shutdownTimeoutMs: shutdownTimeoutSchema,
    logLevel: logLevelSchema,
  },
};

import { listenSchema, logLevelSchema, originsRefSchema, shutdownTimeoutSchema, type Schema } from '@krill/lib';
import { registryHostsSchema, type RegistryHosts } from '../upstream/index.js';
import type { PullThroughRule } from './server/resolver.js';

export interface BuildIndexConfig {
  listen: { host: string; port: number };
  /** SQLite file holding the tags. */
  db: string;
  origins: { urls: string[]; replicas: number };
  pullThrough: PullThroughRule[];
  registries: RegistryHosts;
  shutdownTimeoutMs: number;
  logLevel: string;
}

export const buildIndexConfigSchema: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['db', 'origins'],
  properties: {
    listen: listenSchema(15004),
    db: { type: 'string', minLength: 1 },
    origins: originsRefSchema,
    pullThrough: {
      type: 'array', default: [],
      items: {
        type: 'object', additionalProperties: false, required: ['namespace'],
        properties: {
          namespace: { type: 'string', minLength: 1 },
          // Five minutes: a moved upstream tag is seen within that, and upstream sees one query per tag per TTL.
          tagTtlSeconds: { type: 'integer', minimum: 0, default: 300 },
        },
      },
    },
    registries: { ...registryHostsSchema, default: {} },
    shutdownTimeoutMs: shutdownTimeoutSchema,
    logLevel: logLevelSchema,
  },
};

import type { Schema } from '@krill/lib';
import { logLevelSchema } from '../origin/index.js';
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
    listen: {
      type: 'object', additionalProperties: false, default: {},
      properties: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'integer', minimum: 0, maximum: 65535, default: 15004 } },
    },
    db: { type: 'string', minLength: 1 },
    origins: {
      type: 'object', additionalProperties: false, required: ['urls'],
      properties: {
        urls: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://' } },
        replicas: { type: 'integer', minimum: 1, maximum: 16, default: 3 },
      },
    },
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
    shutdownTimeoutMs: { type: 'integer', minimum: 0, default: 30_000 },
    logLevel: logLevelSchema,
  },
};

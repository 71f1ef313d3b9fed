import type { Schema } from '@krill/lib';
import { logLevelSchema } from '../origin/index.js';

export interface ProxyConfig {
  listen: { host: string; port: number };
  origins: { urls: string[]; replicas: number };
  buildIndex: { urls: string[] };
  /** Where upload sessions are spooled until their digest is verified. */
  uploadDir: string;
  uploadTtlSeconds: number;
  shutdownTimeoutMs: number;
  logLevel: string;
}

export const proxyConfigSchema: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['origins', 'buildIndex', 'uploadDir'],
  properties: {
    listen: {
      type: 'object', additionalProperties: false, default: {},
      properties: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'integer', minimum: 0, maximum: 65535, default: 15000 } },
    },
    origins: {
      type: 'object', additionalProperties: false, required: ['urls'],
      properties: {
        urls: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://' } },
        replicas: { type: 'integer', minimum: 1, maximum: 16, default: 3 },
      },
    },
    buildIndex: {
      type: 'object', additionalProperties: false, required: ['urls'],
      properties: { urls: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://' } } },
    },
    uploadDir: { type: 'string', minLength: 1 },
    // An hour: a client that has not touched its upload session for that long has gone.
    uploadTtlSeconds: { type: 'integer', minimum: 1, default: 3600 },
    shutdownTimeoutMs: { type: 'integer', minimum: 0, default: 30_000 },
    logLevel: logLevelSchema,
  },
};

import { listenSchema, logLevelSchema, originsRefSchema, shutdownTimeoutSchema, type Schema } from '@krill/lib';

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
    listen: listenSchema(15000),
    origins: originsRefSchema,
    buildIndex: {
      type: 'object', additionalProperties: false, required: ['urls'],
      properties: { urls: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://' } } },
    },
    uploadDir: { type: 'string', minLength: 1 },
    // An hour: a client that has not touched its upload session for that long has gone.
    uploadTtlSeconds: { type: 'integer', minimum: 1, default: 3600 },
    shutdownTimeoutMs: shutdownTimeoutSchema,
    logLevel: logLevelSchema,
  },
};

import { listenSchema, logLevelSchema, originsRefSchema, shutdownTimeoutSchema, type OriginsRefConfig, type Schema } from '@krill/lib';

export interface ProxyConfig {
  listen: { host: string; port: number };
  origins: OriginsRefConfig;
  buildIndex: { urls: string[] };
  /**
   * Where earlier versions spooled upload sessions; chunks now stream through to an origin, and
   * this directory is only cleared of leftover spool files at start. Kept so configs stay valid.
   */
  uploadDir: string;
  uploadTtlSeconds: number;
  blobs: BlobsConfig;
  shutdownTimeoutMs: number;
  logLevel: string;
}

/** How blob GETs are answered. */
export interface BlobsConfig {
  /**
   * Answer `GET /v2/<name>/blobs/<digest>` with a 307 to the origin that holds the blob, as
   * distribution redirects to S3 or GCS, instead of streaming it through this proxy. Off by
   * default: it needs clients to reach the origins, whose API is internal and unauthenticated
   * (it takes PUT and DELETE), and it bypasses the proxy's pulled-bytes metrics.
   */
  redirect: boolean;
  /**
   * The origins' URLs as clients reach them, in the order of `origins.urls` (the same length);
   * default `origins.urls` themselves. Not with `origins.dns`: resolved origins are reached at
   * their own addresses.
   */
  originUrls?: string[];
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
    blobs: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        redirect: { type: 'boolean', default: false },
        originUrls: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://' } },
      },
    },
    shutdownTimeoutMs: shutdownTimeoutSchema,
    logLevel: logLevelSchema,
  },
};

import type { Schema } from './config.js';

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

/** `origins: { urls, replicas }` for services that talk to the origin ring. */
export const originsRefSchema: Schema = {
  type: 'object', additionalProperties: false, required: ['urls'],
  properties: {
    urls: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://' } },
    // Three copies survive the loss of any two origins (Kraken's default too).
    replicas: { type: 'integer', minimum: 1, maximum: 16, default: 3 },
  },
};

/** pino's levels. */
export const logLevelSchema: Schema = { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' };

/** How long SIGTERM waits for in-flight transfers: 30 s lets a GiB finish on a slow link. */
export const shutdownTimeoutSchema: Schema = { type: 'integer', minimum: 0, default: 30_000 };

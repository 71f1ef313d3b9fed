import type { Logger } from '@krill/lib';
import type { BuildIndexClient } from '../../build-index/index.js';
import type { OriginClient } from '../../origin/index.js';
import type { ProxyMetrics } from './proxy-metrics.js';
import type { UploadSessions } from './upload-sessions.js';

/** What the proxy's handlers work with. */
export interface ProxyContext {
  origins: OriginClient;
  buildIndex: BuildIndexClient;
  uploads: UploadSessions;
  logger: Logger;
  metrics: ProxyMetrics;
  /** With `blobs.redirect`: an origin's URL as clients reach it; blob GETs are redirected there. */
  redirect: ((origin: string) => string) | undefined;
}

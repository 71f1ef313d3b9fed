import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from '@krill/lib';
import { codeName } from './grpc-status.js';

/** The one place every CRI call is logged and counted, whichever way it was answered. */
export interface RpcLog {
  /** Records one finished call. `fields` must never hold credentials (AuthConfig stays out). */
  done(method: string, code: number, startedMs: number, fields?: Record<string, unknown>): void;
}

/** `/runtime.v1.ImageService/PullImage` → `ImageService/PullImage`, the label metrics carry. */
export function methodLabel(path: string): string {
  const m = /^\/(?:[\w]+\.)*(\w+)\/(\w+)$/.exec(path);
  return m ? `${m[1]}/${m[2]}` : 'unknown';
}

export function createRpcLog(logger: Logger, registry: Registry): RpcLog {
  const requests = new Counter({ name: 'krill_cri_requests_total', help: 'CRI calls on krill\'s socket, by method and gRPC code.', labelNames: ['method', 'code'], registers: [registry] });
  // Buckets from a cached ImageStatus (milliseconds) to a multi-GB pull (minutes).
  const seconds = new Histogram({
    name: 'krill_cri_request_duration_seconds', help: 'Duration of CRI calls on krill\'s socket, by method.', labelNames: ['method'], registers: [registry],
    buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1200],
  });
  return {
    done(path, code, startedMs, fields = {}) {
      const method = methodLabel(path);
      const ms = performance.now() - startedMs;
      requests.inc({ method, code: codeName(code) });
      seconds.observe({ method }, ms / 1000);
      const level = code === 0 ? 'debug' : 'info';
      // PullImage is rare and what operators look for, so it is logged at info even when it works.
      logger[method.endsWith('/PullImage') ? 'info' : level]({ method, code: codeName(code), ms: Math.round(ms), ...fields }, 'cri call');
    },
  };
}

import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { errorBody, httpStatusOf, isKrillError } from './errors.js';
import type { Logger } from './logger.js';

export interface HttpServiceOptions {
  /** The component name, used as a metric label and in logs. */
  name: string;
  logger: Logger;
  /** Resolves when the service can take traffic; a rejection makes `/ready` answer 503 with its message. */
  ready?: () => Promise<void>;
  /** Largest request body buffered by fastify's parsers (streamed routes are not bound by it). */
  bodyLimit?: number;
  /** How long SIGTERM waits for in-flight requests before closing their connections. */
  shutdownTimeoutMs?: number;
}

export interface HttpService {
  readonly app: FastifyInstance;
  /** The service's own Prometheus registry; modules register their figures here. */
  readonly metrics: Registry;
  /** Listens and returns the `http://host:port` base URL actually bound (port 0 picks one). */
  listen(host: string, port: number): Promise<string>;
  /** Stops accepting, waits for in-flight requests up to the shutdown timeout, then closes. */
  close(): Promise<void>;
}

/**
 * A fastify server with what every krill HTTP service has: `/health` (liveness), `/ready`,
 * Prometheus `/metrics` with request counts and latency by route and status, JSON logs and a
 * bounded graceful close.
 */
export function createHttpService(options: HttpServiceOptions): HttpService {
  const app = Fastify({
    loggerInstance: options.logger as unknown as FastifyBaseLogger,
    // One debug line per request from the onResponse hook below instead of fastify's two info lines.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    // Blob transfers of several GB take minutes; the default request timeouts would cut them.
    requestTimeout: 0,
    connectionTimeout: 0,
    keepAliveTimeout: 65_000,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    // Repository names (and so paths) reach 255 characters, digests 71.
    routerOptions: { maxParamLength: 1024 },
  });
  const metrics = new Registry();
  metrics.setDefaultLabels({ service: options.name });
  collectDefaultMetrics({ register: metrics });
  const requests = new Counter({
    name: 'krill_http_requests_total',
    help: 'HTTP requests by route, method and status.',
    labelNames: ['route', 'method', 'status'],
    registers: [metrics],
  });
  const latency = new Histogram({
    name: 'krill_http_request_duration_seconds',
    help: 'HTTP request latency by route, method and status.',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60, 300],
    registers: [metrics],
  });

  let closing: Promise<void> | undefined;
  // A keep-alive connection whose request was in flight at close would otherwise stay open until
  // the shutdown timeout; answering with `Connection: close` lets it end with its response.
  app.addHook('onSend', async (_req, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (req, reply) => {
    const labels = { route: req.routeOptions.url ?? 'unmatched', method: req.method, status: String(reply.statusCode) };
    requests.inc(labels);
    latency.observe(labels, reply.elapsedTime / 1000);
    req.log.debug({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/ready', async (_req, reply) => {
    try {
      await options.ready?.();
      return { status: 'ready' };
    } catch (err) {
      return reply.code(503).send({ status: 'not ready', reason: (err as Error).message });
    }
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.contentType);
    return metrics.metrics();
  });

  return {
    app,
    metrics,
    async listen(host, port) {
      await app.listen({ host, port });
      const addr = app.server.address();
      if (addr === null || typeof addr === 'string') throw new Error(`${options.name}: unexpected listen address ${String(addr)}`);
      const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      return `http://${h}:${addr.port}`;
    },
    close() {
      closing ??= (async () => {
        const timer = setTimeout(() => app.server.closeAllConnections(), options.shutdownTimeoutMs ?? 30_000);
        try {
          await app.close();
        } finally {
          clearTimeout(timer);
        }
      })();
      return closing;
    },
  };
}

/**
 * Answers errors as krill's internal JSON `{ category, code, message }` with the category's HTTP
 * status (the edge translation for internal APIs); anything else is logged and answered 500, or
 * with fastify's own 4xx for malformed requests.
 */
export function useJsonErrors(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    if (isKrillError(err)) {
      if (httpStatusOf(err) >= 500) req.log.warn({ err: err.message, code: err.code, url: req.url }, 'request failed');
      return reply.code(httpStatusOf(err)).send(errorBody(err));
    }
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (status >= 500) req.log.error({ err, url: req.url }, 'request failed');
    return reply.code(status).send({ category: status < 500 ? 'InvalidArgument' : 'Internal', code: 'ERR_HTTP', message: (err as Error).message });
  });
}

/** Wraps a close function so that every call after the first returns the first call's promise. */
export function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}

/**
 * Reads what is left of a request body and drops it, waiting until it has ended (at most
 * `maxMs`), before the caller answers with an error. An error answered while the client was
 * still sending raced the rest of the body: the connection could close under the client, which
 * then lost the answer (a full disk reached the registry client as a bare 503).
 */
export async function drainBody(body: Readable, maxMs = 10_000): Promise<void> {
  if (body.destroyed || body.readableEnded) return;
  body.resume();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([finished(body).catch(() => undefined), new Promise<void>((r) => { timer = setTimeout(r, maxMs); })]);
  clearTimeout(timer);
}

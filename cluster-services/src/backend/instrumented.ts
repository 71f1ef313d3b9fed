import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import { Counter, Histogram, type Registry } from 'prom-client';
import { CanceledError, UnavailableError, isKrillError, type Digest, type KrillError, type Metainfo } from '@krill/lib';
import type { Backend, BackendBlobInfo, ListPage } from './backend.js';
import { validateDigest, validateLimit, validateNamespace, validateUploadArgs } from './blob-key.js';

interface BackendMetrics {
  operations: Counter<'backend' | 'op' | 'result'>;
  bytes: Counter<'backend' | 'direction'>;
  duration: Histogram<'backend' | 'op'>;
}

/**
 * The metrics of every backend in one Prometheus registry, created once per registry and shared
 * by all decorated backends (prom-client refuses a second metric of the same name).
 */
function metricsFor(registry: Registry): BackendMetrics {
  const existing = registry.getSingleMetric('krill_backend_operations_total');
  if (existing) {
    return {
      operations: existing as Counter<'backend' | 'op' | 'result'>,
      bytes: registry.getSingleMetric('krill_backend_bytes_total') as Counter<'backend' | 'direction'>,
      duration: registry.getSingleMetric('krill_backend_operation_duration_seconds') as Histogram<'backend' | 'op'>,
    };
  }
  return {
    operations: new Counter({
      name: 'krill_backend_operations_total',
      help: 'Backend operations by backend kind, operation and result (ok or the error category).',
      labelNames: ['backend', 'op', 'result'],
      registers: [registry],
    }),
    bytes: new Counter({
      name: 'krill_backend_bytes_total',
      help: 'Bytes moved to (upload) and from (download) backends.',
      labelNames: ['backend', 'direction'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'krill_backend_operation_duration_seconds',
      help: 'Backend operation latency; for download, the time until the stream is open.',
      labelNames: ['backend', 'op'],
      // From a local stat (1 ms) to a multi-GB upload to S3 (minutes).
      buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60, 300, 1200],
      registers: [registry],
    }),
  };
}

export interface InstrumentOptions {
  /** The Prometheus registry to record into; absent records nothing. */
  metrics?: Registry | undefined;
}

/**
 * The one decorator every configured backend is wrapped in (distribution's storagedriver
 * `base.go`): it validates arguments before the backend sees them (InvalidArgument with
 * ERR_BACKEND_NAMESPACE_INVALID, ERR_DIGEST_INVALID, ERR_SIZE_INVALID, ERR_BACKEND_LIMIT_INVALID),
 * records `krill_backend_*` metrics, and turns anything that is not a krill error into
 * Unavailable ERR_BACKEND_UNAVAILABLE with context (`s3 stat sha256:...`), or Canceled
 * ERR_BACKEND_CANCELED when the caller's signal fired. Errors of a download stream after it has
 * opened are normalised the same way.
 */
export function instrumentBackend(backend: Backend, options: InstrumentOptions = {}): Backend {
  const kind = backend.kind;
  const m = options.metrics ? metricsFor(options.metrics) : undefined;

  async function run<T>(op: string, subject: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const end = m?.duration.startTimer({ backend: kind, op });
    try {
      const result = await fn();
      m?.operations.inc({ backend: kind, op, result: 'ok' });
      return result;
    } catch (err) {
      const e = normalise(err, `${kind} ${op}${subject ? ` ${subject}` : ''}`, signal);
      m?.operations.inc({ backend: kind, op, result: e.category });
      throw e;
    } finally {
      end?.();
    }
  }

  const sidecar = backend.putMetainfo && backend.getMetainfo ? { put: backend.putMetainfo.bind(backend), get: backend.getMetainfo.bind(backend) } : undefined;

  return {
    kind,
    readOnly: backend.readOnly,

    // Only a backend that keeps sidecars gets the methods, so callers can tell by their presence.
    ...(sidecar && {
      putMetainfo(namespace: string, digest: Digest, metainfo: Metainfo, signal?: AbortSignal): Promise<void> {
        return run('put_metainfo', String(digest), signal, async () => {
          validateNamespace(namespace);
          return sidecar.put(namespace, validateDigest(digest), metainfo, signal);
        });
      },
      getMetainfo(namespace: string, digest: Digest, signal?: AbortSignal): Promise<Metainfo | undefined> {
        return run('get_metainfo', String(digest), signal, async () => {
          validateNamespace(namespace);
          return sidecar.get(namespace, validateDigest(digest), signal);
        });
      },
    }),

    stat(namespace: string, digest: Digest, signal?: AbortSignal): Promise<BackendBlobInfo> {
      return run('stat', String(digest), signal, async () => {
        validateNamespace(namespace);
        return backend.stat(namespace, validateDigest(digest), signal);
      });
    },

    download(namespace: string, digest: Digest, signal?: AbortSignal): Promise<Readable> {
      return run('download', String(digest), signal, async () => {
        validateNamespace(namespace);
        const source = await backend.download(namespace, validateDigest(digest), signal);
        return counted(source, `${kind} download ${digest}`, signal, (n) => m?.bytes.inc({ backend: kind, direction: 'download' }, n));
      });
    },

    upload(namespace: string, digest: Digest, body: Readable, size: number, signal?: AbortSignal): Promise<void> {
      return run('upload', String(digest), signal, async () => {
        validateUploadArgs(namespace, digest, size, body);
        await backend.upload(namespace, digest, body, size, signal);
        m?.bytes.inc({ backend: kind, direction: 'upload' }, size);
      });
    },

    list(opts: { limit?: number; cursor?: string; signal?: AbortSignal } = {}): Promise<ListPage> {
      return run('list', '', opts.signal, async () => {
        validateLimit(opts.limit);
        return backend.list(opts);
      });
    },

    async close(): Promise<void> {
      await backend.close();
    },
  };
}

function normalise(err: unknown, context: string, signal: AbortSignal | undefined): KrillError {
  if (isKrillError(err)) return err;
  if (signal?.aborted || (err as { name?: string } | undefined)?.name === 'AbortError') {
    return new CanceledError(`${context}: canceled`, { code: 'ERR_BACKEND_CANCELED', cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new UnavailableError(`${context}: ${message}`, { code: 'ERR_BACKEND_UNAVAILABLE', cause: err });
}

/**
 * Passes a download through a counting transform. Destroying the returned stream destroys the
 * source (pipeline), and a source error reaches the reader normalised.
 */
function counted(source: Readable, context: string, signal: AbortSignal | undefined, record: (n: number) => void): Readable {
  let bytes = 0;
  let recorded = false;
  // Called at the end and again by auto-destroy, or only by destroy when the read stops early.
  const recordOnce = (): void => {
    if (!recorded) record(bytes);
    recorded = true;
  };
  const out = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      bytes += chunk.length;
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      recordOnce();
      callback();
    },
    destroy(err: Error | null, callback: (error: Error | null) => void) {
      recordOnce();
      callback(err ? normalise(err, context, signal) : null);
    },
  });
  pipeline(source, out, () => {
    // Errors reach the reader through `out`; nothing else to do here.
  });
  return out;
}

import { Counter, Gauge, type Registry } from 'prom-client';

/** The proxy's own figures, beside the request counts every service has. */
export interface ProxyMetrics {
  /** Blob bytes stored through the proxy (`push`) and served by it (`pull`). */
  blobBytes: Counter<'direction'>;
  /** Blob GETs answered with a redirect to an origin (`blobs.redirect`); their bytes are not counted. */
  blobRedirects: Counter;
  /** Blobs committed, by result: `ok`, `digest_mismatch`, `failed`. */
  blobCommits: Counter<'result'>;
  /** Manifests pushed, by kind: `manifest`, `index`. */
  manifestPushes: Counter<'kind'>;
}

export function createProxyMetrics(registry: Registry, openSessions: () => number): ProxyMetrics {
  new Gauge({
    name: 'krill_proxy_upload_sessions', help: 'Blob upload sessions open on this proxy.', registers: [registry],
    collect() {
      this.set(openSessions());
    },
  });
  return {
    blobBytes: new Counter({ name: 'krill_proxy_blob_bytes_total', help: 'Blob bytes pushed and pulled through the proxy.', labelNames: ['direction'], registers: [registry] }),
    blobRedirects: new Counter({ name: 'krill_proxy_blob_redirects_total', help: 'Blob GETs redirected to an origin.', registers: [registry] }),
    blobCommits: new Counter({ name: 'krill_proxy_blob_commits_total', help: 'Blob upload commits, by result.', labelNames: ['result'], registers: [registry] }),
    manifestPushes: new Counter({ name: 'krill_proxy_manifest_pushes_total', help: 'Manifests pushed, by kind.', labelNames: ['kind'], registers: [registry] }),
  };
}

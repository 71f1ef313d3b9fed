import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { afterEach } from 'vitest';
import { sha256, silentLogger, validateConfig, type Digest } from '@krill/lib';
import { createFsBackend, type Backend } from '../../backend/index.js';
import { createOriginClient } from '../client/http-origin-client.js';
import type { BlobSource, OriginClient } from '../client/origin-client.js';
import { originConfigSchema, type OriginConfig } from '../config.js';
import { startOrigin, type RunningOrigin } from '../server/origin-server.js';

const logger = silentLogger();

/** Config keys to override for one origin; its store directory stays `<root>/o<i>` unless given. */
export type Overrides = Partial<Omit<OriginConfig, 'store'>> & { store?: Partial<OriginConfig['store']> };

export interface OriginCluster {
  origins: RunningOrigin[];
  urls: string[];
  client: OriginClient;
  /** The filesystem backend every origin writes back to (namespace `.*`). */
  backend: Backend;
  root: string;
  close(): Promise<void>;
}

/**
 * `n` real origins on 127.0.0.1 port 0, introduced to each other, sharing one filesystem
 * backend, with a client over all of them; for the origin's own tests. `configure(i)` may
 * override config keys of origin `i` (its store directory stays `<root>/o<i>` unless given).
 */
export async function startOriginCluster(n: number, o: { root?: string; replicas?: number; configure?: (i: number) => Overrides } = {}): Promise<OriginCluster> {
  const root = o.root ?? mkdtempSync(join(tmpdir(), 'krill-origins-'));
  const backendRoot = join(root, 'backend');
  const origins: RunningOrigin[] = [];
  for (let i = 0; i < n; i++) {
    const { store, ...rest } = o.configure?.(i) ?? {};
    const config = validateConfig<OriginConfig>(originConfigSchema, {
      listen: { port: 0 }, backends: [{ namespace: '.*', fs: { root: backendRoot } }],
      cluster: { replicas: o.replicas ?? 3 },
      writeback: { retryMinMs: 50, retryMaxMs: 200, replicaDelayMs: 3_600_000 }, shutdownTimeoutMs: 200, ...rest,
      store: { dir: join(root, `o${i}`), ...store },
    });
    origins.push(await startOrigin(config, { logger }));
  }
  const urls = origins.map((x) => x.url);
  for (const x of origins) x.setCluster(urls);
  const client = createOriginClient({ origins: urls, replicas: o.replicas ?? 3, logger });
  return {
    origins, urls, client, root,
    backend: createFsBackend({ root: backendRoot, logger }),
    async close() {
      await client.close();
      await Promise.all(origins.map((x) => x.close()));
    },
  };
}

export const randomBlob = (n: number) => { const b = randomBytes(n); return { b, d: sha256(b) }; };
export const bufferSource = (b: Buffer): BlobSource => ({ size: b.length, open: () => Readable.from([b]) });

export async function readAll(s: Readable): Promise<Buffer> {
  const c: Buffer[] = [];
  for await (const x of s) c.push(x as Buffer);
  return Buffer.concat(c);
}

export async function eventually(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const headStatus = async (url: string, d: Digest) => (await fetch(`${url}/blobs/${d}?local=1`, { method: 'HEAD' })).status;

/**
 * For a test file: a `cluster(...)` that starts an origin cluster and closes it after each test.
 * Call at the top level of the file (it registers an afterEach hook).
 */
export function trackedOriginClusters(): (...args: Parameters<typeof startOriginCluster>) => Promise<OriginCluster> {
  let clusters: OriginCluster[] = [];
  afterEach(async () => {
    await Promise.all(clusters.map((c) => c.close()));
    clusters = [];
  });
  return async (...args) => {
    const c = await startOriginCluster(...args);
    clusters.push(c);
    return c;
  };
}

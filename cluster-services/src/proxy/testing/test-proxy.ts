import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, validateConfig } from '@krill/lib';
import { proxyConfigSchema, type ProxyConfig } from '../config.js';
import { startProxy } from '../server/proxy-server.js';
import { createMemoryBuildIndexClient, type MemoryBuildIndexClient } from './memory-build-index-client.js';
import { createMemoryOriginClient, type MemoryOriginClient } from './memory-origin-client.js';

export interface TestProxy {
  url: string;
  /** `<url>/v2`. */
  v2: string;
  origins: MemoryOriginClient;
  tags: MemoryBuildIndexClient;
  uploadDir: string;
  close(): Promise<void>;
}

/**
 * A proxy on 127.0.0.1 port 0 over in-memory origins and build-index, for tests. The clients
 * and the upload directory may be passed in to restart a proxy over the same state.
 */
export async function startTestProxy(o: { config?: Partial<ProxyConfig>; origins?: MemoryOriginClient; tags?: MemoryBuildIndexClient; uploadDir?: string } = {}): Promise<TestProxy> {
  const origins = o.origins ?? createMemoryOriginClient();
  const tags = o.tags ?? createMemoryBuildIndexClient({ origins });
  const root = o.uploadDir === undefined ? mkdtempSync(join(tmpdir(), 'krill-proxy-')) : undefined;
  const uploadDir = o.uploadDir ?? join(root!, 'uploads');
  const config = validateConfig<ProxyConfig>(proxyConfigSchema, {
    // The URLs are never dialled: the in-memory clients stand in for them.
    listen: { port: 0 }, origins: { urls: ['http://127.0.0.1:1'] }, buildIndex: { urls: ['http://127.0.0.1:1'] }, uploadDir, ...o.config,
  });
  const proxy = await startProxy(config, { logger: silentLogger(), originClient: origins, buildIndexClient: tags });
  const close = async () => {
    await proxy.close();
    // Only a directory this call made; a passed-in one outlives restarts and belongs to the caller.
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  };
  return { url: proxy.url, v2: `${proxy.url}/v2`, origins, tags, uploadDir, close };
}

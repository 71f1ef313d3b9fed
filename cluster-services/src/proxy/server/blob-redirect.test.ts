import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256, silentLogger, validateConfig } from '@krill/lib';
import { bufferSource, randomBlob, trackedOriginClusters } from '../../origin/testing/origin-cluster.js';
import { proxyConfigSchema, type ProxyConfig } from '../config.js';
import { createMemoryBuildIndexClient } from '../testing/index.js';
import { startProxy } from './proxy-server.js';

const cluster = trackedOriginClusters();
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** A proxy over real origins, so that a redirect's Location can be followed. */
async function proxyOver(urls: string[], blobs: Partial<ProxyConfig['blobs']>) {
  const root = mkdtempSync(join(tmpdir(), 'krill-proxy-redirect-'));
  const config = validateConfig<ProxyConfig>(proxyConfigSchema, {
    listen: { port: 0 }, origins: { urls, replicas: 1 }, buildIndex: { urls: ['http://127.0.0.1:1'] }, uploadDir: join(root, 'uploads'), blobs,
  });
  const proxy = await startProxy(config, { logger: silentLogger(), buildIndexClient: createMemoryBuildIndexClient() });
  closers.push(async () => {
    await proxy.close();
    rmSync(root, { recursive: true, force: true });
  });
  return proxy;
}

describe('blobs.redirect', () => {
  it('answers a blob GET with a 307 to the origin that holds it, at its client-facing URL; Range works there', async () => {
    const c = await cluster(2, { replicas: 1 });
    const { b, d } = randomBlob(300_000);
    await c.client.upload('team/app', d, bufferSource(b));
    const holder = c.client.owners(d)[0]!;
    // Clients reach the origins under another name than the proxy does.
    const pub = c.urls.map((u) => u.replace('127.0.0.1', 'localhost'));
    const proxy = await proxyOver(c.urls, { redirect: true, originUrls: pub });

    const res = await fetch(`${proxy.url}/v2/team/app/blobs/${d}`, { redirect: 'manual' });
    expect(res.status).toBe(307);
    const location = new URL(res.headers.get('location')!);
    expect(location.origin).toBe(pub[c.urls.indexOf(holder)]);
    expect(location.searchParams.get('namespace')).toBe('team/app');

    const followed = await fetch(`${proxy.url}/v2/team/app/blobs/${d}`);
    expect(followed.status).toBe(200);
    expect(followed.headers.get('docker-content-digest')).toBe(d);
    expect(sha256(Buffer.from(await followed.arrayBuffer()))).toBe(d);
    const part = await fetch(`${proxy.url}/v2/team/app/blobs/${d}`, { headers: { range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(b.subarray(10, 20))).toBe(true);

    // HEAD is answered by the proxy itself; an unknown blob is the proxy's BLOB_UNKNOWN, not a redirect.
    const head = await fetch(`${proxy.url}/v2/team/app/blobs/${d}`, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-length')]).toEqual([200, String(b.length)]);
    const absent = await fetch(`${proxy.url}/v2/team/app/blobs/${sha256('absent')}`, { redirect: 'manual' });
    expect(absent.status).toBe(404);
    expect(((await absent.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('BLOB_UNKNOWN');
  });

  it('is off by default: the blob is streamed through the proxy', async () => {
    const c = await cluster(1, { replicas: 1 });
    const { b, d } = randomBlob(100_000);
    await c.client.upload('team/app', d, bufferSource(b));
    const proxy = await proxyOver(c.urls, {});
    const res = await fetch(`${proxy.url}/v2/team/app/blobs/${d}`, { redirect: 'manual' });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(b)).toBe(true);
  });

  it('refuses originUrls that do not pair one to one with origins.urls', async () => {
    const c = await cluster(2, { replicas: 1 });
    const err = await proxyOver(c.urls, { redirect: true, originUrls: [c.urls[0]!] }).catch((e: { code?: string }) => e);
    expect((err as { code?: string }).code).toBe('ERR_CONFIG_INVALID');
  });
});

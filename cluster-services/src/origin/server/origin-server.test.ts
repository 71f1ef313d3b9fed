import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256, silentLogger, validateConfig, type Digest } from '@krill/lib';
import { createFsBackend } from '../../backend/index.js';
import { createOriginClient } from '../client/http-origin-client.js';
import type { OriginClient } from '../client/origin-client.js';
import { originConfigSchema, type OriginConfig } from '../config.js';
import { startOrigin, type RunningOrigin } from './origin-server.js';

const logger = silentLogger();
let running: RunningOrigin[] = [];
let clients: OriginClient[] = [];
afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(running.map((o) => o.close()));
  running = [];
  clients = [];
});

async function cluster(n: number, root = mkdtempSync(join(tmpdir(), 'krill-origins-')), extra: Partial<OriginConfig> = {}) {
  const backendRoot = join(root, 'backend');
  const origins: RunningOrigin[] = [];
  for (let i = 0; i < n; i++) {
    const config = validateConfig<OriginConfig>(originConfigSchema, {
      listen: { port: 0 }, store: { dir: join(root, `o${i}`) }, backends: [{ namespace: '.*', fs: { root: backendRoot } }],
      writeback: { retryMinMs: 50, retryMaxMs: 200, replicaDelayMs: 3_600_000 }, ...extra,
    });
    origins.push(await startOrigin(config, { logger }));
  }
  running.push(...origins);
  const urls = origins.map((o) => o.url);
  for (const o of origins) o.setCluster(urls);
  const client = createOriginClient({ origins: urls, logger });
  clients.push(client);
  return { origins, urls, client, backend: createFsBackend({ root: backendRoot, logger }), root };
}

const blob = (n: number) => { const b = randomBytes(n); return { b, d: sha256(b) }; };
const source = (b: Buffer) => ({ size: b.length, open: () => Readable.from([b]) });
async function bytes(s: Readable): Promise<Buffer> {
  const c: Buffer[] = [];
  for await (const x of s) c.push(x as Buffer);
  return Buffer.concat(c);
}
async function eventually(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
const head = async (url: string, d: Digest) => (await fetch(`${url}/blobs/${d}`, { method: 'HEAD' })).status;

describe('origin server and client', () => {
  it('uploads to the owners, replicates, writes back and serves from any origin', async () => {
    const { urls, client, backend } = await cluster(3);
    const { b, d } = blob(3 * 1024 * 1024);
    await client.upload('team/app', d, source(b));
    await eventually(async () => (await Promise.all(urls.map((u) => head(u, d)))).every((s) => s === 200));
    await eventually(async () => (await backend.stat('team/app', d).then(() => true, () => false)));
    const { size, body } = await client.download('team/app', d);
    expect(size).toBe(b.length);
    expect((await bytes(body)).equals(b)).toBe(true);
    const part = await client.download('team/app', d, { range: { start: 100, end: 199 } });
    expect((await bytes(part.body)).equals(b.subarray(100, 200))).toBe(true);
    expect(await client.stat('team/app', d)).toEqual({ size: b.length });
    expect((await client.metainfo('team/app', d)).pieces).toHaveLength(3);
  });

  it('fails over to the next owner when the first is down', async () => {
    const { origins, client } = await cluster(3);
    const { b, d } = blob(100_000);
    const first = client.owners(d)[0]!;
    await origins.find((o) => o.url === first)!.close();
    await client.upload('team/app', d, source(b));
    expect((await bytes((await client.download('team/app', d)).body)).equals(b)).toBe(true);
  });

  it('fetches a blob missing from every origin from the backend once for concurrent readers', async () => {
    const { client, backend, urls } = await cluster(2);
    const { b, d } = blob(2 * 1024 * 1024);
    await backend.upload('team/app', d, Readable.from([b]), b.length);
    const [x, y] = await Promise.all([client.download('team/app', d), client.download('team/app', d)]);
    expect((await bytes(x.body)).equals(b)).toBe(true);
    expect((await bytes(y.body)).equals(b)).toBe(true);
    const metrics = await Promise.all(urls.map(async (u) => (await fetch(`${u}/metrics`)).text()));
    const fetched = metrics.map((m) => Number(/krill_origin_fetch_on_miss_total\{result="ok"[^}]*\} (\d+)/.exec(m)?.[1] ?? 0));
    expect(fetched.reduce((a, n) => a + n, 0)).toBe(1);
    expect(await client.stat('other/app', sha256('absent')).catch((e) => e.code)).toBe('ERR_BLOB_NOT_FOUND');
  });

  it('rejects bad digests and mismatched bytes, storing nothing', async () => {
    const { urls } = await cluster(1);
    const [u] = urls as [string];
    const bad = await fetch(`${u}/blobs/sha256:zz`);
    expect(bad.status).toBe(400);
    expect((await bad.json()).code).toBe('ERR_DIGEST_INVALID');
    const d = sha256('expected');
    const put = await fetch(`${u}/blobs/${d}?namespace=team/app`, { method: 'PUT', body: 'something else' });
    expect(put.status).toBe(400);
    expect((await put.json()).code).toBe('ERR_DIGEST_MISMATCH');
    expect(await head(u, d)).toBe(404);
    const noNs = await fetch(`${u}/blobs/${sha256('x')}`, { method: 'PUT', body: 'x' });
    expect((await noNs.json()).code).toBe('ERR_NAMESPACE_INVALID');
  });

  it('takes chunked uploads and discards a truncated one at commit', async () => {
    const { urls } = await cluster(1);
    const [u] = urls as [string];
    const { b, d } = blob(10_000);
    const start = async () => ((await (await fetch(`${u}/uploads?namespace=team/app`, { method: 'POST' })).json()) as { id: string }).id;
    const id = await start();
    const p1 = await fetch(`${u}/uploads/${id}`, { method: 'PATCH', body: b.subarray(0, 4000), headers: { 'upload-offset': '0' } });
    expect(p1.headers.get('upload-offset')).toBe('4000');
    const wrong = await fetch(`${u}/uploads/${id}`, { method: 'PATCH', body: b.subarray(0, 10), headers: { 'upload-offset': '10' } });
    expect((await wrong.json()).code).toBe('ERR_UPLOAD_OFFSET');
    await fetch(`${u}/uploads/${id}`, { method: 'PATCH', body: b.subarray(4000), headers: { 'upload-offset': '4000' } });
    expect((await fetch(`${u}/uploads/${id}/commit?digest=${d}&namespace=team/app`, { method: 'PUT' })).status).toBe(201);
    expect(await head(u, d)).toBe(200);

    const { b: b2, d: d2 } = blob(10_000);
    const id2 = await start();
    await fetch(`${u}/uploads/${id2}`, { method: 'PATCH', body: b2.subarray(0, 6000) });
    const commit = await fetch(`${u}/uploads/${id2}/commit?digest=${d2}&namespace=team/app`, { method: 'PUT' });
    expect(commit.status).toBe(400);
    expect((await commit.json()).code).toBe('ERR_DIGEST_MISMATCH');
    expect(await head(u, d2)).toBe(404);
  });

  it('retries a failing write-back until the backend takes it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'krill-origins-'));
    mkdirSync(root, { recursive: true });
    // A file where the backend's directory should be makes every write fail.
    writeFileSync(join(root, 'backend'), 'in the way');
    const { client, backend } = await cluster(1, root);
    const { b, d } = blob(1000);
    await client.upload('team/app', d, source(b));
    await new Promise((r) => setTimeout(r, 300));
    expect(await backend.stat('team/app', d).then(() => true, () => false)).toBe(false);
    rmSync(join(root, 'backend'));
    await eventually(async () => backend.stat('team/app', d).then(() => true, () => false));
  });
});

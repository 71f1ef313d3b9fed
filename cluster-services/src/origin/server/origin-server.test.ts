import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { sha256 } from '@krill/lib';
import {
  bufferSource, eventually, headStatus, randomBlob, readAll, trackedOriginClusters, type OriginCluster,
} from '../testing/origin-cluster.js';

const cluster = trackedOriginClusters();
const inBackend = (c: OriginCluster, ns: string, d: ReturnType<typeof sha256>) => c.backend.stat(ns, d).then(() => true, () => false);
const metric = async (urls: string[], re: RegExp) =>
  (await Promise.all(urls.map(async (u) => Number(re.exec(await (await fetch(`${u}/metrics`)).text())?.[1] ?? 0)))).reduce((a, n) => a + n, 0);

describe('origin server', () => {
  it('stores an upload on every owner, writes it back and serves it from each', async () => {
    const c = await cluster(3);
    const { b, d } = randomBlob(3 * 1024 * 1024);
    await c.client.upload('team/app', d, bufferSource(b));
    await eventually(async () => (await Promise.all(c.urls.map((u) => headStatus(u, d)))).every((s) => s === 200));
    await eventually(() => inBackend(c, 'team/app', d));
    for (const u of c.urls) {
      const res = await fetch(`${u}/blobs/${d}?local=1`);
      expect(Buffer.from(await res.arrayBuffer()).equals(b)).toBe(true);
    }
    const part = await fetch(`${c.urls[0]}/blobs/${d}`, { headers: { range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${b.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(b.subarray(100, 200))).toBe(true);
    expect((await fetch(`${c.urls[0]}/blobs/${d}`, { headers: { range: `bytes=${b.length}-` } })).status).toBe(400);
    expect(await (await fetch(`${c.urls[1]}/blobs/${d}/locations`)).json()).toEqual({ owners: c.client.owners(d) });
    expect(await metric(c.urls, /krill_origin_replications_total\{result="ok"[^}]*\} (\d+)/)).toBe(2);
    expect(await metric(c.urls, /krill_origin_store_blobs\{[^}]*\} (\d+)/)).toBe(3);
  });

  it('sends a blob of several buffers whole and by range, counts the GETs, and lets go of a blob whose reader went away', async () => {
    const c = await cluster(1);
    // Over three of the sender's 1 MiB buffers, and not a multiple of them.
    const { b, d } = randomBlob(3 * 1024 * 1024 + 12_345);
    await c.client.upload('team/app', d, bufferSource(b));
    const whole = await fetch(`${c.urls[0]}/blobs/${d}`);
    expect(whole.headers.get('content-length')).toBe(String(b.length));
    expect(whole.headers.get('docker-content-digest')).toBe(d);
    expect(Buffer.from(await whole.arrayBuffer()).equals(b)).toBe(true);
    // A range that starts inside the first buffer and ends inside the last.
    const part = await fetch(`${c.urls[0]}/blobs/${d}`, { headers: { range: `bytes=1000-${b.length - 7}` } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(b.subarray(1000, b.length - 6))).toBe(true);
    // The request metrics still see a GET whose body the sender wrote itself.
    const gets = (await (await fetch(`${c.urls[0]}/metrics`)).text()).split('\n')
      .filter((l) => l.startsWith('krill_http_requests_total{') && l.includes('method="GET"') && l.includes('route="/blobs/:digest"'));
    expect(gets.find((l) => l.includes('status="200"'))).toMatch(/ 1$/);
    expect(gets.find((l) => l.includes('status="206"'))).toMatch(/ 1$/);
    // A reader that stops after the first bytes: the hold ends with the connection, so the blob
    // can be deleted (a held blob is refused with ERR_BLOB_HELD).
    const abort = new AbortController();
    const reader = (await fetch(`${c.urls[0]}/blobs/${d}`, { signal: abort.signal })).body!.getReader();
    await reader.read();
    abort.abort();
    await eventually(async () => (await fetch(`${c.urls[0]}/blobs/${d}`, { method: 'DELETE' })).status === 204);
    expect(await headStatus(c.urls[0]!, d)).toBe(404);
  });

  it('fetches a blob missing from every origin from the backend once for concurrent readers', async () => {
    const c = await cluster(2);
    const { b, d } = randomBlob(2 * 1024 * 1024);
    await c.backend.upload('team/app', d, Readable.from([b]), b.length);
    const [x, y] = await Promise.all([c.client.download('team/app', d), c.client.download('team/app', d)]);
    expect((await readAll(x.body)).equals(b)).toBe(true);
    expect((await readAll(y.body)).equals(b)).toBe(true);
    expect(await metric(c.urls, /krill_origin_fetch_on_miss_total\{result="ok"[^}]*\} (\d+)/)).toBe(1);
    // A namespace whose backend lacks the blob is not answered from another namespace's fetch.
    expect(await c.client.stat('other/app', sha256('absent')).catch((e) => e.code)).toBe('ERR_BLOB_NOT_FOUND');
    const missing = await fetch(`${c.urls[0]}/blobs/${sha256('absent')}?namespace=team/app`);
    expect(missing.status).toBe(404);
    expect((await missing.json()).code).toBe('ERR_BLOB_NOT_FOUND');
  });

  it('rejects bad digests and mismatched bytes, storing nothing', async () => {
    const c = await cluster(1);
    const [u] = c.urls as [string];
    const cases = { 'sha256:zz': 'ERR_DIGEST_INVALID', [`sha256:${'A'.repeat(64)}`]: 'ERR_DIGEST_INVALID', '..%2F..%2Fetc': 'ERR_DIGEST_INVALID', 'md5:abc': 'ERR_DIGEST_UNSUPPORTED' };
    for (const [bad, want] of Object.entries(cases)) {
      const res = await fetch(`${u}/blobs/${bad}`);
      expect(res.status).toBe(400);
      expect((await res.json()).code).toBe(want);
    }
    const d = sha256('expected');
    const put = await fetch(`${u}/blobs/${d}?namespace=team/app`, { method: 'PUT', body: 'something else' });
    expect(put.status).toBe(400);
    expect((await put.json()).code).toBe('ERR_DIGEST_MISMATCH');
    expect(await headStatus(u, d)).toBe(404);
    const noNs = await fetch(`${u}/blobs/${sha256('x')}`, { method: 'PUT', body: 'x' });
    expect((await noNs.json()).code).toBe('ERR_NAMESPACE_INVALID');
    const commit = await fetch(`${u}/uploads/${'0'.repeat(32)}/commit?digest=nonsense&namespace=team/app`, { method: 'PUT' });
    expect((await commit.json()).code).toBe('ERR_DIGEST_INVALID');
    expect((await (await fetch(`${u}/uploads/..%2F..%2Fetc`)).json()).code).toBe('ERR_UPLOAD_NOT_FOUND');
    expect(readdirSync(join(c.root, 'o0', 'tmp'))).toEqual([]);
  });

  it('takes chunked uploads by offset or Content-Range and discards a truncated one at commit', async () => {
    const c = await cluster(1);
    const [u] = c.urls as [string];
    const { b, d } = randomBlob(10_000);
    const start = async () => ((await (await fetch(`${u}/uploads?namespace=team/app`, { method: 'POST' })).json()) as { id: string }).id;
    const patch = (id: string, body: Buffer, headers: Record<string, string>) => fetch(`${u}/uploads/${id}`, { method: 'PATCH', body, headers });
    const id = await start();
    expect((await patch(id, b.subarray(0, 4000), { 'upload-offset': '0' })).headers.get('upload-offset')).toBe('4000');
    expect((await (await patch(id, b.subarray(0, 10), { 'upload-offset': '10' })).json()).code).toBe('ERR_UPLOAD_OFFSET');
    expect((await (await patch(id, b.subarray(4000, 4010), { 'content-range': '4000-4019' })).json()).code).toBe('ERR_SIZE_INVALID');
    expect((await fetch(`${u}/uploads/${id}`)).headers.get('upload-offset')).toBe('4010');
    expect((await patch(id, b.subarray(4010), { 'content-range': `4010-${b.length - 1}` })).status).toBe(204);
    expect((await fetch(`${u}/uploads/${id}/commit?digest=${d}&namespace=team/app`, { method: 'PUT' })).status).toBe(201);
    expect(await headStatus(u, d)).toBe(200);

    const { b: b2, d: d2 } = randomBlob(10_000);
    const id2 = await start();
    await patch(id2, b2.subarray(0, 6000), {});
    const commit = await fetch(`${u}/uploads/${id2}/commit?digest=${d2}&namespace=team/app`, { method: 'PUT' });
    expect(commit.status).toBe(400);
    expect((await commit.json()).code).toBe('ERR_DIGEST_MISMATCH');
    expect(await headStatus(u, d2)).toBe(404);
    expect((await fetch(`${u}/uploads/${id2}`)).status).toBe(404);
  });

  it('an atomic PATCH keeps a chunk whole or not at all, and a commit with wait verifies what was kept', async () => {
    const c = await cluster(1);
    const [u] = c.urls as [string];
    const { b, d } = randomBlob(10_000);
    const { id } = (await (await fetch(`${u}/uploads?namespace=team/app`, { method: 'POST' })).json()) as { id: string };
    const patch = (body: Buffer, headers: Record<string, string>) => fetch(`${u}/uploads/${id}?atomic=1`, { method: 'PATCH', body, headers });
    expect((await patch(b.subarray(0, 4000), { 'upload-offset': '0' })).headers.get('upload-offset')).toBe('4000');
    // Shorter and longer than its Content-Range: discarded whole, unlike a plain PATCH.
    expect((await (await patch(b.subarray(4000, 4010), { 'content-range': '4000-4019' })).json()).code).toBe('ERR_SIZE_INVALID');
    expect((await (await patch(b.subarray(4000, 4030), { 'content-range': '4000-4019' })).json()).code).toBe('ERR_SIZE_INVALID');
    expect((await fetch(`${u}/uploads/${id}`)).headers.get('upload-offset')).toBe('4000');
    expect((await patch(b.subarray(4000), { 'upload-offset': '4000' })).status).toBe(204);
    expect((await fetch(`${u}/uploads/${id}/commit?digest=${d}&namespace=team/app&wait=1`, { method: 'PUT' })).status).toBe(201);
    expect(await headStatus(u, d)).toBe(200);
  });

  it('retries a failing write-back until the backend takes it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'krill-origins-'));
    mkdirSync(root, { recursive: true });
    // A file where the backend's directory should be makes every write fail.
    writeFileSync(join(root, 'backend'), 'in the way');
    const c = await cluster(1, { root });
    const { b, d } = randomBlob(1000);
    await c.client.upload('team/app', d, bufferSource(b));
    await new Promise((r) => setTimeout(r, 300));
    expect(await inBackend(c, 'team/app', d)).toBe(false);
    expect((await fetch(`${c.urls[0]}/blobs/${d}`, { method: 'DELETE' })).status).toBe(412);
    rmSync(join(root, 'backend'));
    await eventually(() => inBackend(c, 'team/app', d));
    await eventually(async () => (await fetch(`${c.urls[0]}/blobs/${d}`, { method: 'DELETE' })).status === 204);
  });
});

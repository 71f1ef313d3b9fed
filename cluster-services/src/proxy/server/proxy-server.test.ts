import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256, type Digest } from '@krill/lib';
import type { ProxyConfig } from '../config.js';
import { startTestProxy, type MemoryOriginClient, type TestProxy } from '../testing/index.js';

let proxy: TestProxy;
let origins: MemoryOriginClient;
let uploadDir: string;
let v2: string;

async function start(config: Partial<ProxyConfig> = {}): Promise<void> {
  proxy = await startTestProxy({ config, uploadDir, ...(origins === undefined ? {} : { origins }) });
  ({ origins, uploadDir, v2 } = proxy);
}

let root: string;
beforeEach(async () => {
  // The directory outlives proxy restarts within a test, so the test owns it.
  root = mkdtempSync(join(tmpdir(), 'krill-proxy-'));
  uploadDir = join(root, 'uploads');
  (origins as unknown) = undefined;
  await start();
});
afterEach(async () => {
  await proxy.close();
  rmSync(root, { recursive: true, force: true });
});

async function oci(res: Response): Promise<{ status: number; code: string | undefined }> {
  const body = (await res.json().catch(() => ({}))) as { errors?: Array<{ code: string }> };
  return { status: res.status, code: body.errors?.[0]?.code };
}
const abs = (res: Response) => new URL(res.headers.get('location')!, proxy.url).toString();
const withDigest = (url: string, d: string) => `${url}${url.includes('?') ? '&' : '?'}digest=${encodeURIComponent(d)}`;

async function session(repo = 'team/app'): Promise<string> {
  const res = await fetch(`${v2}/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(res.status).toBe(202);
  return abs(res);
}

async function pushBlob(bytes: Buffer | string, repo = 'team/app'): Promise<Digest> {
  const d = sha256(bytes);
  const res = await fetch(withDigest(`${v2}/${repo}/blobs/uploads/`, d), { method: 'POST', body: bytes });
  expect(res.status).toBe(201);
  return d;
}

/** A PATCH sent with chunked transfer encoding, so no Content-Length tells how long it is. */
function chunkedPatch(url: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'PATCH', headers }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Declares `declared` bytes, sends fewer, then drops the connection. */
function abortedPatch(url: string, declared: number, sent: Buffer): Promise<void> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname, () => {
      sock.write(`PATCH ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Length: ${declared}\r\n\r\n`);
      sock.write(sent, () => setTimeout(() => { sock.destroy(); resolve(); }, 100));
    });
    sock.on('error', reject);
  });
}

/** Declares `declared` bytes, sends fewer and keeps the connection open, as a stalled client does. */
function stalledPatch(url: string, declared: number, sent: Buffer): Promise<Socket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname, () => {
      sock.write(`PATCH ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Length: ${declared}\r\n\r\n`);
      sock.write(sent, () => setTimeout(() => resolve(sock), 100));
    });
    sock.on('error', reject);
  });
}

const rangeOf = async (url: string) => (await fetch(url)).headers.get('range');

describe('proxy: base and blobs', () => {
  it('answers GET /v2/ with the API version header', async () => {
    const res = await fetch(`${v2}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect(await res.json()).toEqual({});
  });

  it('monolithic upload, then HEAD, GET and ranged GET of the blob', async () => {
    const bytes = Buffer.from('0123456789abcdef');
    const d = sha256(bytes);
    const put = await fetch(withDigest(`${v2}/team/app/blobs/uploads/`, d), { method: 'POST', body: bytes });
    expect(put.status).toBe(201);
    expect(put.headers.get('location')).toBe(`/v2/team/app/blobs/${d}`);
    expect(put.headers.get('docker-content-digest')).toBe(d);
    expect([...origins.blobs.get(d)!.namespaces]).toEqual(['team/app']);

    const head = await fetch(`${v2}/team/app/blobs/${d}`, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-length'), head.headers.get('docker-content-digest')]).toEqual([200, '16', d]);
    const get = await fetch(`${v2}/team/app/blobs/${d}`);
    expect(Buffer.from(await get.arrayBuffer())).toEqual(bytes);
    const part = await fetch(`${v2}/team/app/blobs/${d}`, { headers: { range: 'bytes=4-7' } });
    expect([part.status, part.headers.get('content-range'), part.headers.get('content-length'), await part.text()]).toEqual([206, 'bytes 4-7/16', '4', '4567']);
    expect((await fetch(`${v2}/team/app/blobs/${d}`, { headers: { range: 'bytes=-3' } }).then((r) => r.text()))).toBe('def');
    expect(await oci(await fetch(`${v2}/team/app/blobs/${d}`, { headers: { range: 'bytes=16-' } }))).toEqual({ status: 416, code: 'RANGE_INVALID' });
    expect(await oci(await fetch(`${v2}/team/app/blobs/${sha256('absent')}`))).toEqual({ status: 404, code: 'BLOB_UNKNOWN' });
  });

  it('chunked upload: session headers, PATCH with and without Content-Range, status, PUT with a last chunk', async () => {
    const res = await fetch(`${v2}/team/app/blobs/uploads/`, { method: 'POST' });
    expect(res.status).toBe(202);
    const id = res.headers.get('docker-upload-uuid')!;
    expect(res.headers.get('location')).toBe(`/v2/team/app/blobs/uploads/${id}`);
    expect(res.headers.get('range')).toBe('0-0');
    const url = abs(res);
    const p1 = await fetch(url, { method: 'PATCH', body: 'hello ', headers: { 'content-range': '0-5' } });
    expect([p1.status, p1.headers.get('range'), p1.headers.get('location')]).toEqual([202, '0-5', `/v2/team/app/blobs/uploads/${id}`]);
    const p2 = await fetch(abs(p1), { method: 'PATCH', body: 'big ' });
    expect(p2.headers.get('range')).toBe('0-9');
    const status = await fetch(url);
    expect([status.status, status.headers.get('range')]).toEqual([204, '0-9']);
    const d = sha256('hello big world');
    const done = await fetch(withDigest(url, d), { method: 'PUT', body: 'world' });
    expect([done.status, done.headers.get('location'), done.headers.get('docker-content-digest')]).toEqual([201, `/v2/team/app/blobs/${d}`, d]);
    expect(origins.blobs.get(d)!.bytes.toString()).toBe('hello big world');
    expect(readdirSync(uploadDir)).toEqual([]);
    expect(await oci(await fetch(url))).toEqual({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
  });

  it('a chunk at the wrong offset, or not as long as its Content-Range, is 416 and leaves the upload as it was', async () => {
    const url = await session();
    expect((await fetch(url, { method: 'PATCH', body: 'abcd', headers: { 'content-range': '0-3' } })).status).toBe(202);
    expect(await oci(await fetch(url, { method: 'PATCH', body: 'abcd', headers: { 'content-range': '0-3' } }))).toEqual({ status: 416, code: 'RANGE_INVALID' });
    expect(await oci(await fetch(url, { method: 'PATCH', body: 'ef', headers: { 'content-range': '4-9' } }))).toEqual({ status: 416, code: 'RANGE_INVALID' });
    expect(await oci(await fetch(url, { method: 'PATCH', body: 'ef', headers: { 'content-range': 'four-five' } }))).toEqual({ status: 416, code: 'RANGE_INVALID' });
    // Chunked encoding: the shortfall shows only when the body ends.
    const short = await chunkedPatch(url, { 'content-range': '4-9' }, Buffer.from('ef'));
    expect([short.status, JSON.parse(short.body).errors[0].code]).toEqual([416, 'RANGE_INVALID']);
    const long = await chunkedPatch(url, { 'content-range': '4-5' }, Buffer.from('efgh'));
    expect([long.status, JSON.parse(long.body).errors[0].code]).toEqual([416, 'RANGE_INVALID']);
    expect(await rangeOf(url)).toBe('0-3');
    const ok = await chunkedPatch(url, { 'content-range': '4-5' }, Buffer.from('ef'));
    expect([ok.status, ok.headers['range']]).toEqual([202, '0-5']);
    expect((await fetch(withDigest(url, sha256('abcdef')), { method: 'PUT' })).status).toBe(201);
  });

  it('a client that drops the connection mid-PATCH loses only that chunk', async () => {
    const url = await session();
    expect((await fetch(url, { method: 'PATCH', body: 'first-' })).status).toBe(202);
    await abortedPatch(url, 100_000, Buffer.alloc(30_000, 1));
    // Sent at once, as a client retrying would: it supersedes the chunk the server may still be reading.
    expect((await fetch(url, { method: 'PATCH', body: 'second' })).status).toBe(202);
    const d = sha256('first-second');
    expect((await fetch(withDigest(url, d), { method: 'PUT' })).status).toBe(201);
    expect(origins.blobs.get(d)!.bytes.toString()).toBe('first-second');
  });

  it('a retry supersedes a chunk that is still being received, and a commit waits for none', async () => {
    const url = await session();
    expect((await fetch(url, { method: 'PATCH', body: 'first-' })).status).toBe(202);
    const stalled = await stalledPatch(url, 100_000, Buffer.alloc(30_000, 1));
    try {
      expect(await rangeOf(url)).toBe('0-5');
      const retry = await fetch(url, { method: 'PATCH', body: 'second', headers: { 'content-range': '6-11' } });
      expect([retry.status, retry.headers.get('range')]).toEqual([202, '0-11']);
      const again = await stalledPatch(url, 100_000, Buffer.alloc(30_000, 2));
      const d = sha256('first-second');
      expect((await fetch(withDigest(url, d), { method: 'PUT' })).status).toBe(201);
      expect(origins.blobs.get(d)!.bytes.toString()).toBe('first-second');
      again.destroy();
    } finally {
      stalled.destroy();
    }
    expect(readdirSync(uploadDir)).toEqual([]);
  });

  it('a commit whose bytes do not match the digest stores nothing and ends the session', async () => {
    const url = await session();
    await fetch(url, { method: 'PATCH', body: 'some bytes' });
    const claimed = sha256('other bytes');
    expect(await oci(await fetch(withDigest(url, claimed), { method: 'PUT' }))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    expect(origins.blobs.size).toBe(0);
    expect(readdirSync(uploadDir)).toEqual([]);
    expect(await oci(await fetch(url))).toEqual({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
    expect(await oci(await fetch(withDigest(`${v2}/team/app/blobs/uploads/`, claimed), { method: 'POST', body: 'x' }))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    expect(await oci(await fetch(withDigest(await session(), 'sha256:nope'), { method: 'PUT' }))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    expect(origins.blobs.size).toBe(0);
  });

  it('DELETE cancels an upload; sessions belong to their repository', async () => {
    const url = await session();
    await fetch(url, { method: 'PATCH', body: 'bytes' });
    expect((await fetch(url.replace('/team/app/', '/other/app/'))).status).toBe(404);
    expect((await fetch(url, { method: 'DELETE' })).status).toBe(204);
    expect(await oci(await fetch(url, { method: 'DELETE' }))).toEqual({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
    expect(readdirSync(uploadDir)).toEqual([]);
  });

  it('cross-repository mount: 201 when the blob exists, else a new session', async () => {
    const d = await pushBlob('shared layer', 'base/image');
    const mounted = await fetch(`${v2}/team/app/blobs/uploads/?mount=${d}&from=base/image`, { method: 'POST' });
    expect([mounted.status, mounted.headers.get('location'), mounted.headers.get('docker-content-digest')]).toEqual([201, `/v2/team/app/blobs/${d}`, d]);
    // The blob now belongs to the new namespace too, so its backend routing finds it.
    expect([...origins.blobs.get(d)!.namespaces].sort()).toEqual(['base/image', 'team/app']);
    const missing = await fetch(`${v2}/team/app/blobs/uploads/?mount=${sha256('nope')}&from=base/image`, { method: 'POST' });
    expect([missing.status, missing.headers.get('range')]).toEqual([202, '0-0']);
    expect(missing.headers.get('location')).toMatch(/^\/v2\/team\/app\/blobs\/uploads\/[0-9a-f-]{36}$/);
    expect(await oci(await fetch(`${v2}/team/app/blobs/uploads/?mount=${d}&from=..`, { method: 'POST' }))).toEqual({ status: 400, code: 'NAME_INVALID' });
  });

  it('an origin outage is 503 UNAVAILABLE', async () => {
    const d = await pushBlob('x');
    origins.setDown(true);
    expect(await oci(await fetch(`${v2}/team/app/blobs/${d}`))).toEqual({ status: 503, code: 'UNAVAILABLE' });
    expect(await oci(await fetch(withDigest(`${v2}/team/app/blobs/uploads/`, sha256('y')), { method: 'POST', body: 'y' }))).toEqual({ status: 503, code: 'UNAVAILABLE' });
    expect(readdirSync(uploadDir)).toEqual([]);
  });
});

describe('proxy: upload sessions over time', () => {
  it('abandoned sessions expire after uploadTtlSeconds', async () => {
    await proxy.close();
    await start({ uploadTtlSeconds: 1 });
    const url = await session();
    await fetch(url, { method: 'PATCH', body: 'abandoned' });
    await expect.poll(() => fetch(url).then((r) => r.status), { timeout: 5000, interval: 250 }).toBe(404);
    // The session leaves the table before its spool file is deleted.
    await expect.poll(() => readdirSync(uploadDir), { timeout: 5000, interval: 50 }).toEqual([]);
  });

  it('spool files of a previous run are removed at start, and nothing else in the directory', async () => {
    await proxy.close();
    writeFileSync(join(uploadDir, '0f0f0f0f-0000-4000-8000-000000000000.upload'), 'left over');
    writeFileSync(join(uploadDir, 'keep.txt'), 'not ours');
    await start();
    expect(readdirSync(uploadDir)).toEqual(['keep.txt']);
  });
});

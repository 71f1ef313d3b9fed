import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaType, sha256, type Digest } from '@krill/lib';
import { createBuildIndexClient, type BuildIndexClient } from '@krill/cluster-services';
import { silentLogger } from '@krill/lib';
import { startCluster, type Cluster } from './harness/cluster.js';

let cluster: Cluster;
let tags: BuildIndexClient;
let v2: string;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'krill-bad-input-'));
  cluster = await startCluster({ dir });
  tags = createBuildIndexClient({ urls: [cluster.buildIndexUrl], logger: silentLogger() });
  v2 = `${cluster.proxyUrl}/v2`;
});
afterAll(async () => {
  await tags?.close();
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function oci(res: Response): Promise<{ status: number; code: string | undefined }> {
  const body = (await res.json().catch(() => ({}))) as { errors?: Array<{ code: string }> };
  return { status: res.status, code: body.errors?.[0]?.code };
}

async function expectNotStored(repo: string, digest: Digest): Promise<void> {
  expect(await cluster.originClient.stat(repo, digest).then(() => 'stored', (e: { code?: string }) => e.code)).toBe('ERR_BLOB_NOT_FOUND');
}

async function startSession(repo: string): Promise<string> {
  const res = await fetch(`${v2}/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(res.status).toBe(202);
  return new URL(res.headers.get('location')!, cluster.proxyUrl).toString();
}

/** An HTTP request whose path goes on the wire exactly as given. */
function raw(method: string, path: string): Promise<{ status: number; body: string }> {
  const u = new URL(cluster.proxyUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, method, path }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const withDigest = (url: string, d: string) => `${url}${url.includes('?') ? '&' : '?'}digest=${encodeURIComponent(d)}`;

/** A PATCH sent with chunked transfer encoding, so no Content-Length tells how long it is. */
function chunkedPatch(url: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'PATCH', headers }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends a request that declares more body than it sends, then closes the connection. */
function truncatedPatch(url: string, declared: number, sent: Buffer): Promise<void> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname, () => {
      sock.write(`PATCH ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`);
      sock.write(sent, () => setTimeout(() => { sock.destroy(); resolve(); }, 200));
    });
    sock.on('error', reject);
  });
}

describe('bad input to the proxy (acceptance 5)', () => {
  it('malformed digests on every route that takes one', async () => {
    const bad = ['sha256:zz', 'sha256:' + 'A'.repeat(64), 'md5:abc', 'nodigest'];
    for (const d of bad) {
      expect(await oci(await fetch(`${v2}/team/app/blobs/${d}`))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
      expect((await fetch(`${v2}/team/app/blobs/${d}`, { method: 'HEAD' })).status).toBe(400);
      expect(await oci(await fetch(withDigest(`${v2}/team/app/blobs/uploads/`, d), { method: 'POST', body: 'x' }))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
      expect(await oci(await fetch(withDigest(await startSession('team/app'), d), { method: 'PUT' }))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
      expect(await oci(await fetch(`${v2}/team/app/blobs/uploads/?mount=${encodeURIComponent(d)}&from=other/app`, { method: 'POST' }))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
      if (d.includes(':')) {
        expect(await oci(await fetch(`${v2}/team/app/manifests/${d}`))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
        expect((await fetch(`${v2}/team/app/manifests/${d}`, { method: 'HEAD' })).status).toBe(400);
        expect(await oci(await fetch(`${v2}/team/app/manifests/${d}`, { method: 'PUT', body: '{}', headers: { 'content-type': MediaType.OciManifest } }))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
      }
    }
  });

  it('bytes that do not match their digest: monolithic, chunked commit and manifest by digest; nothing stored', async () => {
    const claimed = sha256('what the client said');
    expect(await oci(await fetch(withDigest(`${v2}/team/app/blobs/uploads/`, claimed), { method: 'POST', body: 'something else' }))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    const session = await startSession('team/app');
    const patched = await fetch(session, { method: 'PATCH', body: 'chunk one', headers: { 'content-range': '0-8' } });
    expect(patched.status).toBe(202);
    expect(patched.headers.get('range')).toBe('0-8');
    const commit = await fetch(withDigest(new URL(patched.headers.get('location')!, cluster.proxyUrl).toString(), claimed), { method: 'PUT', body: 'and two' });
    expect(await oci(commit)).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    await expectNotStored('team/app', claimed);
    await expectNotStored('team/app', sha256('chunk oneand two'));
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: claimed, size: 1 }, layers: [] });
    expect(await oci(await fetch(`${v2}/team/app/manifests/${claimed}`, { method: 'PUT', body: manifest, headers: { 'content-type': MediaType.OciManifest } }))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    await expectNotStored('team/app', sha256(manifest));
  });

  it('invalid repository names', async () => {
    const names = ['..', 'a/../b', 'UPPER/case', '-x', 'a//b', 'team/app.', 'x'.repeat(256), 'a/%2e%2e/b'];
    for (const n of names) {
      for (const [method, path] of [['GET', 'tags/list'], ['GET', 'manifests/latest'], ['POST', 'blobs/uploads/'], [`HEAD`, `blobs/${sha256('x')}`]] as const) {
        // Sent as written: fetch would normalise the dot segments away before they reached krill.
        const res = await raw(method, `/v2/${n}/${path}`);
        expect(res.status, `${method} ${n}/${path}`).toBe(400);
        if (method !== 'HEAD') expect(JSON.parse(res.body).errors[0].code).toBe('NAME_INVALID');
      }
    }
    expect((await tags.listRepositories()).items).toEqual([]);
  });

  it('a manifest over 4 MiB', async () => {
    const huge = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, annotations: { pad: 'x'.repeat(4 * 1024 * 1024) }, config: {}, layers: [] });
    const res = await fetch(`${v2}/team/app/manifests/huge`, { method: 'PUT', body: huge, headers: { 'content-type': MediaType.OciManifest } });
    expect(await oci(res)).toEqual({ status: 413, code: 'MANIFEST_INVALID' });
    await expectNotStored('team/app', sha256(huge));
    expect(await tags.getTag('team/app', 'huge').catch((e: { code?: string }) => e.code)).toBe('ERR_TAG_NOT_FOUND');
  });

  it('a manifest that references missing blobs, and an index that references a missing manifest', async () => {
    const missing = sha256('never pushed');
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: missing, size: 12 }, layers: [] });
    const res = await fetch(`${v2}/team/app/manifests/v1`, { method: 'PUT', body: manifest, headers: { 'content-type': MediaType.OciManifest } });
    const body = (await res.json()) as { errors: Array<{ code: string; detail?: { digest?: string } }> };
    expect(res.status).toBe(400);
    expect(body.errors[0]).toMatchObject({ code: 'MANIFEST_BLOB_UNKNOWN', detail: { digest: missing } });
    await expectNotStored('team/app', sha256(manifest));
    expect(await tags.getTag('team/app', 'v1').catch((e: { code?: string }) => e.code)).toBe('ERR_TAG_NOT_FOUND');
    const index = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [{ mediaType: MediaType.OciManifest, digest: missing, size: 100 }] });
    expect(await oci(await fetch(`${v2}/team/app/manifests/multi`, { method: 'PUT', body: index, headers: { 'content-type': MediaType.OciIndex } }))).toEqual({ status: 400, code: 'MANIFEST_BLOB_UNKNOWN' });
  });

  it('an unknown media type, and malformed manifests', async () => {
    const body = JSON.stringify({ schemaVersion: 2, config: {}, layers: [] });
    expect(await oci(await fetch(`${v2}/team/app/manifests/v1`, { method: 'PUT', body, headers: { 'content-type': 'application/vnd.example.thing+json' } }))).toEqual({ status: 415, code: 'UNSUPPORTED' });
    expect(await oci(await fetch(`${v2}/team/app/manifests/v1`, { method: 'PUT', body: '{not json', headers: { 'content-type': MediaType.OciManifest } }))).toEqual({ status: 400, code: 'MANIFEST_INVALID' });
    expect(await oci(await fetch(`${v2}/team/app/manifests/v1`, { method: 'PUT', body: JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { digest: 'sha256:zz' }, layers: [] }), headers: { 'content-type': MediaType.OciManifest } }))).toEqual({ status: 400, code: 'MANIFEST_INVALID' });
    expect(await oci(await fetch(`${v2}/team/app/manifests/bad..tag!`, { method: 'PUT', body, headers: { 'content-type': MediaType.OciManifest } }))).toEqual({ status: 400, code: 'TAG_INVALID' });
    expect(await tags.getTag('team/app', 'v1').catch((e: { code?: string }) => e.code)).toBe('ERR_TAG_NOT_FOUND');
  });

  it('a truncated chunked upload: Content-Range declaring more than is sent, then PUT; nothing stored', async () => {
    const full = Buffer.alloc(100_000, 7);
    const digest = sha256(full);
    const session = await startSession('team/app');
    // Content-Length says what is sent, Content-Range claims the whole blob: refused before reading.
    const short = await fetch(session, { method: 'PATCH', body: full.subarray(0, 40_000), headers: { 'content-range': `0-${full.length - 1}` } });
    expect(await oci(short)).toEqual({ status: 416, code: 'RANGE_INVALID' });
    // Chunked transfer encoding: the shortfall shows only when the body ends; the chunk is discarded.
    const chunked = await chunkedPatch(session, { 'content-range': `0-${full.length - 1}` }, full.subarray(0, 40_000));
    expect([chunked.status, JSON.parse(chunked.body).errors[0].code]).toEqual([416, 'RANGE_INVALID']);
    const status = await fetch(session);
    expect([status.status, status.headers.get('range')]).toEqual([204, '0-0']);
    expect(await oci(await fetch(withDigest(session, digest), { method: 'PUT' }))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    await expectNotStored('team/app', digest);
    await expectNotStored('team/app', sha256(full.subarray(0, 40_000)));
    await expectNotStored('team/app', sha256(''));
    // The failed commit ended the session.
    expect(await oci(await fetch(session))).toEqual({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
  });

  it('a client that aborts mid-PATCH: the chunk is discarded, a commit of the whole digest fails, nothing stored', async () => {
    const full = Buffer.alloc(100_000, 9);
    const digest = sha256(full);
    const session = await startSession('team/app');
    expect((await fetch(session, { method: 'PATCH', body: full.subarray(0, 10_000), headers: { 'content-range': '0-9999' } })).status).toBe(202);
    await truncatedPatch(session, 90_000, full.subarray(10_000, 50_000));
    await expect.poll(async () => (await fetch(session)).headers.get('range')).toBe('0-9999');
    expect(await oci(await fetch(withDigest(session, digest), { method: 'PUT' }))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    await expectNotStored('team/app', digest);
    await expectNotStored('team/app', sha256(full.subarray(0, 50_000)));
    await expectNotStored('team/app', sha256(full.subarray(0, 10_000)));
  });

  it('a chunk at the wrong offset, an unknown session, and upload routes under invalid names', async () => {
    const full = Buffer.alloc(20, 3);
    const again = await startSession('team/app');
    expect((await fetch(again, { method: 'PATCH', body: full.subarray(0, 10), headers: { 'content-range': '0-9' } })).status).toBe(202);
    expect(await oci(await fetch(again, { method: 'PATCH', body: full.subarray(0, 10), headers: { 'content-range': '0-9' } }))).toEqual({ status: 416, code: 'RANGE_INVALID' });
    expect(await oci(await fetch(again, { method: 'PATCH', body: full.subarray(10), headers: { 'content-range': '20-29' } }))).toEqual({ status: 416, code: 'RANGE_INVALID' });
    expect(await oci(await fetch(`${v2}/team/app/blobs/uploads/not-a-session`, { method: 'PATCH', body: 'x' }))).toEqual({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
    expect(await oci(await fetch(withDigest(`${v2}/team/app/blobs/uploads/not-a-session`, sha256('x')), { method: 'PUT', body: 'x' }))).toEqual({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
    await expectNotStored('team/app', sha256('x'));
    const id = new URL(again).pathname.split('/').pop()!;
    for (const method of ['GET', 'PATCH', 'PUT', 'DELETE']) {
      const res = await raw(method, `/v2/a/../b/blobs/uploads/${id}`);
      expect([res.status, JSON.parse(res.body).errors[0].code], method).toEqual([400, 'NAME_INVALID']);
    }
    // A mount whose blob is absent is an ordinary new session.
    const mount = await fetch(`${v2}/team/app/blobs/uploads/?mount=${sha256('absent')}&from=other/app`, { method: 'POST' });
    expect(mount.status).toBe(202);
    expect(mount.headers.get('location')).toMatch(/^\/v2\/team\/app\/blobs\/uploads\/./);
    expect(await oci(await fetch(`${v2}/team/app/blobs/uploads/?mount=${sha256('absent')}&from=UPPER`, { method: 'POST' }))).toEqual({ status: 400, code: 'NAME_INVALID' });
  });

  it('unknown blobs and manifests, and a method an endpoint does not take', async () => {
    expect(await oci(await fetch(`${v2}/team/app/blobs/${sha256('absent')}`))).toEqual({ status: 404, code: 'BLOB_UNKNOWN' });
    expect(await oci(await fetch(`${v2}/team/app/manifests/nope`))).toEqual({ status: 404, code: 'MANIFEST_UNKNOWN' });
    expect(await oci(await fetch(`${v2}/team/app/manifests/${sha256('absent')}`))).toEqual({ status: 404, code: 'MANIFEST_UNKNOWN' });
    expect((await oci(await fetch(`${v2}/team/app/blobs/${sha256('absent')}`, { method: 'DELETE' }))).code).toBe('UNSUPPORTED');
  });
});
